"""Ingestion of signed readings, native or OCMF: check each one, store the accepted ones durably.

A request carries one reading or a batch, each item either a native reading (`Submission`:
canonical bytes and their signature, docs/reading-format.md) or an OCMF record (`OcmfSubmission`,
docs/ocmf.md). Each is checked in this order, and the first failed check is its result (a stable
`code`, never an exception). A native reading starts with

    malformed_reading       the canonical (or signature) hex is not hex, or the bytes are not the
                            one canonical encoding (`ledger.readings.native.decode`)
    meter_mismatch          the body's `meter_id` is not the canonical bytes' meterId
    wrong_chain             the canonical chainId is not this ledger's chain

and an OCMF record with (its reading is built by the gateway, for this chain:
`ledger.readings.ocmf`)

    ocmf_malformed          not `OCMF|{payload}|{signature}` with JSON sections and a usable SD
    ocmf_bad_value          a value or time of `RD` is unusable (not a number, unit not kWh/Wh)
    ocmf_unmappable         valid OCMF, but not one ledger reading: no MS, PG not T<n>, no
                            import/export value, ...; or MS is not a valid meter id
    ocmf_unsupported_algorithm  `SA` is not ECDSA-<curve>-SHA256/384/512
    ocmf_unsupported_curve  `SA`'s curve is not one a MeterRegistry key can be on
                            (secp256r1 = P-256, secp256k1)
    meter_mismatch          the body's `meter_id` is not the record's meter serial `MS`

and then both go through the same checks (for OCMF, bad_signature is the ECDSA signature over the
exact payload bytes received, under the key of the reading's time):

    clock_skew              the reading's time is more than `clock_skew_s` ahead of our clock
    unknown_meter           no such meter in the MeterRegistry
    no_key_at_time          the meter had no key yet at the reading's time
    key_revoked             the key of the reading's time was revoked at or before that time
    bad_signature           the signature does not verify under that key
    conflicting_reading     another reading with the same (meter, seq) is stored (and the pair
                            is recorded as a meter-integrity event)
    seq_jump_too_large      the seq is more than `max_seq_jump` above the meter's latest stored
                            seq, or, for a meter's first reading, not below `FIRST_SEQ_LIMIT`
    register_decreased      a register is lower than the previous stored reading's, or higher
                            than the next one's (a late reading filling a gap)
    timestamp_out_of_order  the time is not after the previous stored reading's, or not before
                            the next one's

A reading whose (meter, seq) is already stored with the same canonical bytes is a `duplicate`
and gets the original receipt (for an OCMF record: the canonical bytes the gateway built from it).
A seq jump of at most `max_seq_jump` is accepted and the missing range is recorded as a gap for
auditors; a late reading may fill it when it fits between its stored neighbours. The bound keeps
one reading (a meter's counter or key gone wrong) from putting the meter's latest seq out of
reach: a meter always continues after its highest accepted seq (docs/reading-format.md).

The checks that need no database (up to the signature) run first, outside the store's lock; the
sequence checks and the inserts of a whole request then run in ONE write transaction (BEGIN
IMMEDIATE ... COMMIT), which is committed before the caller answers 202: acknowledged == durable.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from ledger.errors import ChainUnavailable, LedgerError, MeterError
from ledger.meters.keys import algorithm_of_curve
from ledger.meters.registry import KeyEpochView, meter_id_bytes, meter_id_text
from ledger.metrics import count_ingest_results
from ledger.readings.checks import (
    MAX_SEQ_JUMP,
    claimed_meter_id,
    neighbour_problem,
    ocmf_rejection,
    parse_hex,
    seq_jump_problem,
    update_gaps,
)
from ledger.readings.keys import KeyCache, key_for_time
from ledger.readings.native import (
    DOMAIN_TAG,
    ECDSA_ALGORITHMS,
    Reading,
    ReadingFormatError,
    ReadingSignatureError,
    anchored_leaf,
    decode,
    raw_ecdsa_verifies,
    verify_signature,
)
from ledger.readings.ocmf.errors import OcmfError
from ledger.readings.ocmf.record import parse_ocmf
from ledger.readings.ocmf.values import ledger_values
from ledger.readings.ocmf.verify import ocmf_signature_form, signature_method, verify_ocmf
from ledger.readings.results import (
    IngestResult,
    OcmfSubmission,
    Outcome,
    Receipt,
    Rejecter,
    Rejection,
    Submission,
)
from ledger.store.backends import utc_now_iso
from ledger.store.database import Store
from ledger.store.readings import IntegrityEvent, ReadingWriter, StoredReading


class BatchTooLarge(LedgerError):
    """A request carried more readings than `max_batch`; none of them was looked at."""

    code = "batch_too_large"
    http_status = 413

    def __init__(self, count: int, maximum: int) -> None:
        self.count = count
        self.maximum = maximum
        super().__init__(f"{count} readings in one request; at most {maximum} are accepted")


class ReadingNotFound(LedgerError):
    """No reading is stored under this (meter, seq)."""

    code = "reading_not_found"
    http_status = 404


@dataclass(frozen=True)
class _Verified:
    """A reading that passed every check that needs no database, with what its row will need
    that needs no database either (`leaf`; the receipt ids are drawn for the whole request):
    computed here, outside the store's lock, so that the write transaction, which serialises
    every request, does less."""

    index: int
    reading: Reading
    canonical: bytes
    signature: bytes
    key_epoch: int
    leaf: bytes
    source: str = "native"
    raw: bytes | None = None


_UUID7_RANDOM_MASK = ((1 << 80) - 1) & ~(0xF << 76) & ~(0x3 << 62)
_UUID7_BITS = (0x7 << 76) | (0x2 << 62)  # version 7, RFC 9562 variant


def _receipt_ids(count: int, unix_ms: int) -> list[str]:
    """`count` new receipt ids: UUIDs version 7 (RFC 9562) in hex, the 48-bit Unix time in
    milliseconds `unix_ms` followed by 74 random bits, drawn with ONE read of the OS's randomness
    for them all (a read per id cost about as much as the rest of it).

    Time first, because `receipt_id` is a unique index of the readings table: random ids (the
    version 4 ones of receipts issued before 2026-11-27) land all over it, each insert dirtying
    a page of its own that the commit then writes, more of them the larger the table; ids that
    grow with time are appended at its end. Measured on a table of the same schema, 2,500 rows a
    commit: 33 -> 53 us a row over the first 300,000 rows with random ids, 25 -> 33 with these,
    and a write-ahead log half the size."""
    random = os.urandom(10 * count)
    fixed = (unix_ms & (2**48 - 1)) << 80 | _UUID7_BITS
    return [
        f"{fixed | int.from_bytes(random[i : i + 10], 'big') & _UUID7_RANDOM_MASK:032x}"
        for i in range(0, 10 * count, 10)
    ]


def _verified(
    index: int,
    reading: Reading,
    canonical: bytes,
    signature: bytes,
    key_epoch: int,
    source: str = "native",
    raw: bytes | None = None,
    *,
    signed_bytes: bytes,
    signature_form: bytes,
) -> _Verified:
    # The leaf is the version-2 one (the signature's hash in it), which every batch anchored from
    # now on uses; docs/reading-format.md.
    return _Verified(
        index,
        reading,
        canonical,
        signature,
        key_epoch,
        leaf=anchored_leaf(canonical, signed_bytes, signature_form),
        source=source,
        raw=raw,
    )


_RAW_SIGNATURE_HEX = re.compile(r"0x(?!30)[0-9a-f]{128}")
"""A 64-byte r || s signature in lowercase hex that cannot also be read as DER (a DER
signature starts with 0x30; `native.verify_signature` then tries both readings)."""


def _canonical_hex(chain_id: int) -> re.Pattern[str]:
    """Lowercase hex of the canonical bytes of a reading for this chain, its fields in groups
    (meter id, seq, timestamp, import, export, status): the tag, the chain id and every zero
    padding byte are part of the pattern, so a match is canonical bytes by construction."""
    return re.compile(
        "0x"
        + DOMAIN_TAG.hex()
        + f"{chain_id:064x}"
        + "([0-9a-f]{64})"
        + "(?:0{48}([0-9a-f]{16}))" * 4
        + "0{56}([0-9a-f]{8})"
    )


class Ingestor:
    """Checks submitted readings and stores the accepted ones (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        keys: KeyCache,
        *,
        chain_id: int,
        max_batch: int,
        clock_skew_s: int,
        max_seq_jump: int = MAX_SEQ_JUMP,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._keys = keys
        self.chain_id = chain_id
        self.max_batch = max_batch
        self.clock_skew_s = clock_skew_s
        self.max_seq_jump = max_seq_jump
        self._clock = clock
        self._canonical_hex = _canonical_hex(chain_id)

    def submit(self, submissions: Sequence[Submission | OcmfSubmission]) -> list[IngestResult]:
        """One result per submission, in order; accepted readings are committed on return.

        Raises:
            BatchTooLarge: More than `max_batch` submissions (nothing is checked or stored).
        """
        if len(submissions) > self.max_batch:
            raise BatchTooLarge(len(submissions), self.max_batch)
        now = int(self._clock())
        refreshed: set[bytes] = set()
        checked = [self._verify(i, s, now, refreshed) for i, s in enumerate(submissions)]
        results = self._store_checked(checked)
        # Counted once committed (/metrics): a batch the database refused counts nothing.
        count_ingest_results(results)
        return results

    def _store_checked(self, checked: Sequence[_Verified | IngestResult]) -> list[IngestResult]:
        """The results of `submit` once every reading is checked (`_verify`): the sequence
        checks and inserts of the verified ones in one write transaction; `bench.profile_ingest`
        times this on its own."""
        verified = sum(isinstance(c, _Verified) for c in checked)
        if not verified:
            return [c for c in checked if isinstance(c, IngestResult)]
        # Drawn before the store's lock is taken; an id drawn for a reading that turns out a
        # duplicate or a conflict is not used.
        now = self._clock()
        receipt_ids = iter(_receipt_ids(verified, int(now * 1000)))
        received_at = utc_now_iso(lambda: now)
        with self._store.reading_transaction() as writer:
            return [
                self._sequence(writer, c, received_at, next(receipt_ids))
                if isinstance(c, _Verified)
                else c
                for c in checked
            ]

    def reading(self, meter_id: str, seq: int) -> StoredReading:
        """The stored reading (meter_id, seq).

        Raises:
            MeterError: `meter_id` is not a valid meter id.
            ReadingNotFound: Nothing is stored under (meter_id, seq).
        """
        stored = self._store.reading(meter_id_bytes(meter_id), seq)
        if stored is None:
            raise ReadingNotFound(f"no reading of meter {meter_id!r} with seq {seq} is stored")
        return stored

    def _verify(
        self, index: int, submission: Submission | OcmfSubmission, now: int, refreshed: set[bytes]
    ) -> _Verified | IngestResult:
        if isinstance(submission, OcmfSubmission):
            return self._verify_ocmf(index, submission, now, refreshed)
        return self._verify_native(index, submission, now, refreshed)

    def _verify_native(
        self, index: int, submission: Submission, now: int, refreshed: set[bytes]
    ) -> _Verified | IngestResult:
        sound = self._sound_native(index, submission, now, refreshed)
        if sound is not None:
            return sound
        # Until the bytes decode, the result names the meter the client claimed.
        reject = Rejecter(index, submission.meter_id)

        canonical = parse_hex(submission.canonical)
        if canonical is None:
            return reject(Rejection.MALFORMED_READING, "canonical is not 0x-prefixed hex bytes")
        signature = parse_hex(submission.signature)
        if signature is None:
            return reject(Rejection.MALFORMED_READING, "signature is not 0x-prefixed hex bytes")
        try:
            reading = decode(canonical)
        except ReadingFormatError as error:
            return reject(Rejection.MALFORMED_READING, str(error))
        meter = meter_id_text(reading.meter_id)
        seq = reading.seq
        claimed = claimed_meter_id(submission.meter_id)
        if isinstance(claimed, str):
            return reject(Rejection.METER_MISMATCH, claimed, meter, seq)
        if claimed != reading.meter_id:
            return reject(
                Rejection.METER_MISMATCH,
                f"meter_id {submission.meter_id!r} is not the reading's meter {meter!r}",
                meter,
                seq,
            )
        if reading.chain_id != self.chain_id:
            return reject(
                Rejection.WRONG_CHAIN,
                f"reading is for chain {reading.chain_id}, this ledger is chain {self.chain_id}",
                meter,
                seq,
            )
        key = self._key_at(reading, now, refreshed)
        if not isinstance(key, KeyEpochView):
            return reject(*key, meter, seq)
        try:
            public_key = self._keys.public_key(key)
            form = verify_signature(key.algorithm, public_key, canonical, signature)
        except (ReadingSignatureError, MeterError) as error:
            return reject(Rejection.BAD_SIGNATURE, f"{error} (key epoch {key.index})", meter, seq)
        return _verified(
            index,
            reading,
            canonical,
            signature,
            key.index,
            signed_bytes=canonical,
            signature_form=form,
        )

    def _sound_native(
        self, index: int, submission: Submission, now: int, refreshed: set[bytes]
    ) -> _Verified | IngestResult | None:
        """The result of a native reading as most meters send it, in fewer steps than the
        general path (`_verify_native`), or None: the general path decides.

        Everything a sound reading needs besides its signature check runs per reading, so it is
        kept short: canonical hex in lowercase whose tag, chain id and zero padding are this
        ledger's is matched by one regular expression (the bytes are then canonical by
        construction: no `decode`), and a 64-byte r || s signature (not also readable as DER)
        is verified once in its raw form. Input the general path would refuse before the key
        lookup (uppercase hex, a DER signature, another chain, another meter claimed, ...) or
        a key that is not ECDSA is left to it, which names the problem; from the key lookup on
        (clock skew, unknown meter, no key, revoked key, keys unavailable, a signature that
        does not verify), the answer is the general path's code and message, given here.
        """
        match = self._canonical_hex.fullmatch(submission.canonical)
        signature_hex = submission.signature
        if match is None or _RAW_SIGNATURE_HEX.fullmatch(signature_hex) is None:
            return None
        meter_hex, seq_hex, timestamp_hex, import_hex, export_hex, status_hex = match.groups()
        meter_id = bytes.fromhex(meter_hex)
        try:
            if meter_id_bytes(submission.meter_id) != meter_id:
                return None
        except (MeterError, UnicodeError):
            return None
        # In range by construction: fixed-width hex fields of a chain id that is this ledger's.
        reading = Reading.from_fixed_width_fields(
            chain_id=self.chain_id,
            meter_id=meter_id,
            seq=int(seq_hex, 16),
            timestamp=int(timestamp_hex, 16),
            import_wh=int(import_hex, 16),
            export_wh=int(export_hex, 16),
            status=int(status_hex, 16),
        )
        # From here on the general path would find what this one does: the same checks, in
        # the same order, with the same key lookup (one per reading: it may ask the chain).
        key = self._key_at(reading, now, refreshed)
        if not isinstance(key, KeyEpochView):
            return Rejecter(index, submission.meter_id)(*key, meter_id_text(meter_id), reading.seq)
        if key.algorithm not in ECDSA_ALGORITHMS:
            return None
        try:
            public_key = self._keys.public_key(key)
        except MeterError:
            return None
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            return None
        canonical = bytes.fromhex(submission.canonical[2:])
        signature = bytes.fromhex(signature_hex[2:])
        if not raw_ecdsa_verifies(public_key, canonical, signature):
            return Rejecter(index, submission.meter_id)(
                Rejection.BAD_SIGNATURE,
                f"{key.algorithm.label} signature does not verify for this reading "
                f"(key epoch {key.index})",
                meter_id_text(meter_id),
                reading.seq,
            )
        return _verified(
            index,
            reading,
            canonical,
            signature,
            key.index,
            signed_bytes=canonical,
            signature_form=signature,
        )

    def _verify_ocmf(
        self, index: int, submission: OcmfSubmission, now: int, refreshed: set[bytes]
    ) -> _Verified | IngestResult:
        # Until the record maps onto a reading, the result names the meter the client claimed.
        reject = Rejecter(index, submission.meter_id)

        try:
            record = parse_ocmf(submission.ocmf)
            values = ledger_values(record)
        except OcmfError as error:
            return reject(ocmf_rejection(error), str(error))
        try:
            meter_id = meter_id_bytes(values.meter_serial)
            reading = Reading(
                chain_id=self.chain_id,
                meter_id=meter_id,
                seq=values.seq,
                timestamp=values.timestamp,
                import_wh=values.import_wh,
                export_wh=values.export_wh,
                status=int(values.status),
            )
        except (MeterError, ReadingFormatError, UnicodeError) as error:
            return reject(
                Rejection.OCMF_UNMAPPABLE,
                f"MS {values.meter_serial!r} is not a ledger meter id: {error}",
            )
        meter = meter_id_text(meter_id)
        seq = reading.seq
        try:
            method = signature_method(record.signature.algorithm)
        except OcmfError as error:
            return reject(ocmf_rejection(error), str(error), meter, seq)
        algorithm = algorithm_of_curve(method.curve)
        if algorithm is None:
            return reject(
                Rejection.OCMF_UNSUPPORTED_CURVE,
                f"OCMF curve {method.curve.name} ({method.identifier}) cannot be verified "
                "against the MeterRegistry, whose ECDSA keys are on secp256r1 (P-256) or "
                "secp256k1",
                meter,
                seq,
            )
        claimed = claimed_meter_id(submission.meter_id)
        if isinstance(claimed, str):
            return reject(Rejection.METER_MISMATCH, claimed, meter, seq)
        if claimed != meter_id:
            return reject(
                Rejection.METER_MISMATCH,
                f"meter_id {submission.meter_id!r} is not the record's meter serial MS "
                f"{values.meter_serial!r}",
                meter,
                seq,
            )
        key = self._key_at(reading, now, refreshed)
        if not isinstance(key, KeyEpochView):
            return reject(*key, meter, seq)
        if key.algorithm is not algorithm:
            return reject(
                Rejection.BAD_SIGNATURE,
                f"the record is signed with {method.identifier}, but the meter's key (epoch "
                f"{key.index}) is {key.algorithm.label}",
                meter,
                seq,
            )
        try:
            # The registry's SEC1 point, read on SA's curve (the same curve, checked above).
            verify_ocmf(record, key.public_key)
        except OcmfError as error:
            return reject(Rejection.BAD_SIGNATURE, f"{error} (key epoch {key.index})", meter, seq)
        return _verified(
            index,
            reading,
            reading.encode(),
            record.signature.data,
            key.index,
            source="ocmf",
            raw=record.raw,
            signed_bytes=record.payload_bytes,
            signature_form=ocmf_signature_form(record),
        )

    def _key_at(
        self, reading: Reading, now: int, refreshed: set[bytes]
    ) -> KeyEpochView | tuple[Rejection, str]:
        """The meter's key at the reading's time, once the time passes the clock-skew check;
        else the rejection code and message."""
        if reading.timestamp > now + self.clock_skew_s:
            return (
                Rejection.CLOCK_SKEW,
                f"timestamp {reading.timestamp} is {reading.timestamp - now} s ahead of the "
                f"gateway clock (at most {self.clock_skew_s} s allowed)",
            )
        try:
            history = self._keys.history(reading.meter_id, reading.timestamp, refreshed)
        except ChainUnavailable as error:
            return (Rejection.KEYS_UNAVAILABLE, str(error))
        if history.epochs is None:
            return (
                Rejection.UNKNOWN_METER,
                f"meter {meter_id_text(reading.meter_id)!r} is not registered",
            )
        key = key_for_time(history.epochs, reading.timestamp)
        if isinstance(key, Rejection):
            what = "had no key yet" if key is Rejection.NO_KEY_AT_TIME else "had its key revoked"
            meter = meter_id_text(reading.meter_id)
            return (key, f"meter {meter!r} {what} at {reading.timestamp}")
        return key

    def _sequence(
        self, writer: ReadingWriter, v: _Verified, received_at: str, receipt_id: str
    ) -> IngestResult:
        reading = v.reading
        meter = meter_id_text(reading.meter_id)

        def result(
            status: Outcome, code: Rejection | None, message: str, receipt: Receipt | None = None
        ) -> IngestResult:
            return IngestResult(v.index, status, code, message, meter, reading.seq, receipt)

        # Most readings arrive in order: their seq is above every stored one of the meter. One
        # query for the meter's latest stored reading then settles all the lookups: it is the
        # reading before, none is after, (meter, seq) is free, and no open gap contains seq (a
        # gap lies between two stored readings, so below the latest). Only a resent or late
        # reading takes the longer way.
        latest = writer.latest(reading.meter_id)
        in_order = latest is None or latest.seq < reading.seq
        if in_order:
            jump = seq_jump_problem(reading, latest, self.max_seq_jump)
            if jump is not None:
                return result(Outcome.REJECTED, Rejection.SEQ_JUMP_TOO_LARGE, jump)
        existing = None if in_order else writer.reading(reading.meter_id, reading.seq)
        if existing is not None:
            # Identity is (meter, seq) and the content is the canonical bytes. The same bytes with
            # other signature bytes -- ECDSA (r, n - s), or DER instead of raw r || s -- are the
            # same reading: its signature verified above, so it is a duplicate, not a conflict.
            # The stored signature stays the first one received.
            if existing.canonical == v.canonical:
                return result(
                    Outcome.DUPLICATE,
                    None,
                    "already stored; this is the original receipt",
                    Receipt.of(existing),
                )
            writer.record_integrity_event(
                IntegrityEvent(
                    meter_id=reading.meter_id,
                    seq=reading.seq,
                    kind=Rejection.CONFLICTING_READING.value,
                    stored_hash=hashlib.sha256(existing.canonical).digest(),
                    received_hash=hashlib.sha256(v.canonical).digest(),
                    received_canonical=v.canonical,
                    received_signature=v.signature,
                    detected_at=received_at,
                    received_raw=v.raw,
                )
            )
            return result(
                Outcome.REJECTED,
                Rejection.CONFLICTING_READING,
                f"another reading with seq {reading.seq} is stored for meter {meter!r}; "
                "recorded as a meter-integrity event",
            )
        if in_order:
            before, after = latest, None
        else:
            before, after = writer.neighbours(reading.meter_id, reading.seq)
        problem = neighbour_problem(reading, before, after)
        if problem is not None:
            return result(Outcome.REJECTED, problem[0], problem[1])
        stored = StoredReading(
            meter_id=reading.meter_id,
            seq=reading.seq,
            timestamp=reading.timestamp,
            import_wh=reading.import_wh,
            export_wh=reading.export_wh,
            status=reading.status,
            canonical=v.canonical,
            signature=v.signature,
            key_epoch=v.key_epoch,
            leaf=v.leaf,
            receipt_id=receipt_id,
            received_at=received_at,
            source=v.source,
            raw=v.raw,
        )
        writer.insert_reading(stored, is_latest=in_order)
        update_gaps(writer, reading, before, after, received_at, may_fill_a_gap=not in_order)
        return result(Outcome.ACCEPTED, None, "stored", Receipt.of(stored))
