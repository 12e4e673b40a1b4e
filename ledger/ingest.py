"""Ingestion of native signed readings: check each one, store the accepted ones durably.

A request carries one reading or a batch. Each reading is checked in this order, and the first
failed check is its result (a stable `code`, never an exception):

    malformed_reading       the canonical (or signature) hex is not hex, or the bytes are not the
                            one canonical encoding (`ledger.readings.decode`)
    meter_mismatch          the body's `meter_id` is not the canonical bytes' meterId
    wrong_chain             the canonical chainId is not this ledger's chain
    clock_skew              the reading's time is more than `clock_skew_s` ahead of our clock
    unknown_meter           no such meter in the MeterRegistry
    no_key_at_time          the meter had no key yet at the reading's time
    key_revoked             the key of the reading's time was revoked at or before that time
    bad_signature           the signature does not verify under that key
    conflicting_reading     another reading with the same (meter, seq) is stored (and the pair
                            is recorded as a meter-integrity event)
    register_decreased      a register is lower than the previous stored reading's, or higher
                            than the next one's (a late reading filling a gap)
    timestamp_out_of_order  the time is not after the previous stored reading's, or not before
                            the next one's

A reading whose (meter, seq) is already stored with the same canonical bytes is a `duplicate`
and gets the original receipt. A seq jump is accepted and the missing range is recorded as a gap
for auditors; a late reading may fill it when it fits between its stored neighbours.

The checks that need no database (up to the signature) run first, outside the store's lock; the
sequence checks and the inserts of a whole request then run in ONE write transaction (BEGIN
IMMEDIATE ... COMMIT), which is committed before the caller answers 202: acknowledged == durable.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from ledger.chain import Chain
from ledger.deployment import Deployment
from ledger.errors import ChainUnavailable, ContractRevert, LedgerError, MeterError
from ledger.meters import KeyEpochView, MeterAdmin, meter_id_bytes, meter_id_text
from ledger.readings import (
    Reading,
    ReadingFormatError,
    ReadingSignatureError,
    decode,
    reading_leaf,
    verify_reading_signature,
)
from ledger.store import IntegrityEvent, ReadingWriter, Store, StoredReading

NEGATIVE_CACHE_S = 5.0
"""How long an unknown meter is remembered before the registry is asked again."""

_HEX = re.compile(r"(0x)?((?:[0-9a-fA-F]{2})*)")


class BatchTooLarge(LedgerError):
    """A request carried more readings than `max_batch`; none of them was looked at."""

    code = "batch_too_large"

    def __init__(self, count: int, maximum: int) -> None:
        self.count = count
        self.maximum = maximum
        super().__init__(f"{count} readings in one request; at most {maximum} are accepted")


class ReadingNotFound(LedgerError):
    """No reading is stored under this (meter, seq)."""

    code = "reading_not_found"


class Rejection(StrEnum):
    """Stable codes of a rejected reading, in the order the checks run."""

    MALFORMED_READING = "malformed_reading"
    METER_MISMATCH = "meter_mismatch"
    WRONG_CHAIN = "wrong_chain"
    CLOCK_SKEW = "clock_skew"
    UNKNOWN_METER = "unknown_meter"
    NO_KEY_AT_TIME = "no_key_at_time"
    KEY_REVOKED = "key_revoked"
    BAD_SIGNATURE = "bad_signature"
    CONFLICTING_READING = "conflicting_reading"
    REGISTER_DECREASED = "register_decreased"
    TIMESTAMP_OUT_OF_ORDER = "timestamp_out_of_order"
    # Retryable: the chain is unreachable and this meter's keys were never read. Send it again.
    KEYS_UNAVAILABLE = "keys_unavailable"


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Submission:
    """One reading as a client sends it: meter id, canonical bytes and signature in hex."""

    meter_id: str
    canonical: str
    signature: str


@dataclass(frozen=True)
class Receipt:
    """What the gateway gives back for a stored reading."""

    receipt_id: str
    meter_id: str
    seq: int
    timestamp: int
    leaf: bytes
    key_epoch: int
    received_at: str

    @classmethod
    def of(cls, stored: StoredReading) -> Receipt:
        return cls(
            receipt_id=stored.receipt_id,
            meter_id=meter_id_text(stored.meter_id),
            seq=stored.seq,
            timestamp=stored.timestamp,
            leaf=stored.leaf,
            key_epoch=stored.key_epoch,
            received_at=stored.received_at,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "receipt_id": self.receipt_id,
            "meter_id": self.meter_id,
            "seq": self.seq,
            "timestamp": self.timestamp,
            "leaf": "0x" + self.leaf.hex(),
            "key_epoch": self.key_epoch,
            "received_at": self.received_at,
        }


@dataclass(frozen=True)
class IngestResult:
    """The outcome for one reading of a request."""

    index: int
    status: Outcome
    code: Rejection | None
    message: str
    meter_id: str | None
    seq: int | None
    receipt: Receipt | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "status": self.status.value,
            "code": None if self.code is None else self.code.value,
            "message": self.message,
            "meter_id": self.meter_id,
            "seq": self.seq,
            "receipt": None if self.receipt is None else self.receipt.as_dict(),
        }


def stored_reading_dict(stored: StoredReading) -> dict[str, Any]:
    """The public view of a stored reading: fields, exact bytes, receipt and anchoring batch."""
    return {
        "meter_id": meter_id_text(stored.meter_id),
        "seq": stored.seq,
        "timestamp": stored.timestamp,
        "import_wh": stored.import_wh,
        "export_wh": stored.export_wh,
        "status": stored.status,
        "canonical": "0x" + stored.canonical.hex(),
        "signature": "0x" + stored.signature.hex(),
        "key_epoch": stored.key_epoch,
        "leaf": "0x" + stored.leaf.hex(),
        "receipt": Receipt.of(stored).as_dict(),
        "batch_id": stored.batch_id,
    }


# --- key lookup -------------------------------------------------------------------------------


def key_for_time(epochs: Sequence[KeyEpochView], timestamp: int) -> KeyEpochView | Rejection:
    """The key epoch valid at `timestamp`, from a meter's full key history (pure).

    Mirrors `MeterRegistry.keyAt`: the epoch is the last one whose `valid_from` <= timestamp
    (starts are strictly increasing); none started yet is `NO_KEY_AT_TIME`; that epoch revoked
    at or before `timestamp` is `KEY_REVOKED` (a later epoch does not revive an earlier one, and
    a revoked epoch is not replaced by the one before it).
    """
    started = [epoch for epoch in epochs if epoch.valid_from <= timestamp]
    if not started:
        return Rejection.NO_KEY_AT_TIME
    epoch = max(started, key=lambda e: e.valid_from)
    if epoch.revoked_at != 0 and timestamp >= epoch.revoked_at:
        return Rejection.KEY_REVOKED
    return epoch


@dataclass(frozen=True)
class BlockRef:
    """A block's number and timestamp."""

    number: int
    timestamp: int


class KeySource(Protocol):
    """Where meter key histories come from (the MeterRegistry; a fake in unit tests)."""

    def latest_block(self) -> BlockRef:
        """The chain's latest block."""
        ...

    def key_history(self, meter_id: bytes) -> tuple[KeyEpochView, ...] | None:
        """Every key epoch of the meter, or None when it is not registered."""
        ...


@dataclass(frozen=True)
class KeyHistory:
    """A meter's key history (None: unknown meter) as read at or after block `block`."""

    epochs: tuple[KeyEpochView, ...] | None
    block: BlockRef
    read_at: float

    def covers(self, timestamp: int) -> bool:
        """Whether the history is final for a reading at `timestamp`.

        Any later change is in a block at or after `block`, so its time is >= block.timestamp:
        a rotation may not start in the past and a revocation takes effect at its block's time.
        Strictly before: a later block may share the timestamp of `block` (Ganache and Anvil mine
        same-second blocks), and a change in it can take effect at exactly that second.
        """
        return timestamp < self.block.timestamp


class KeyCache:
    """Meter key histories, read from a `KeySource` only when they may be out of date.

    A cached history is used as is for a reading time it covers (see `KeyHistory.covers`). For a
    later time it is refreshed, at most once per meter per request (`refreshed`): first the
    latest block is read, and if no block was mined since the history was read, the history is
    still current and is kept; otherwise it is read again. An unknown meter is remembered for
    `negative_ttl_s` seconds.
    """

    def __init__(
        self,
        source: KeySource,
        *,
        negative_ttl_s: float = NEGATIVE_CACHE_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._negative_ttl_s = negative_ttl_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._histories: dict[bytes, KeyHistory] = {}

    def history(self, meter_id: bytes, timestamp: int, refreshed: set[bytes]) -> KeyHistory:
        """The meter's key history, fresh enough for a reading at `timestamp`."""
        with self._lock:
            cached = self._histories.get(meter_id)
        if cached is not None:
            if cached.epochs is None:
                if self._monotonic() - cached.read_at < self._negative_ttl_s:
                    return cached
            elif cached.covers(timestamp) or meter_id in refreshed:
                return cached
        try:
            block = self._source.latest_block()
        except ChainUnavailable:
            if cached is not None and cached.epochs is not None:
                # Chain outage: keep accepting against the last history read. While the chain is
                # down no rotation or revocation can be made on it either.
                return cached
            raise
        if cached is not None and cached.epochs is not None and block.number == cached.block.number:
            # Nothing was mined since: the history is still the registry's current state.
            fresh = replace(cached, block=block, read_at=self._monotonic())
        else:
            # The block is read first, so the history is at least as new as it.
            fresh = KeyHistory(self._source.key_history(meter_id), block, self._monotonic())
        refreshed.add(meter_id)
        with self._lock:
            # Concurrent requests may refresh the same meter: keep the newest read.
            current = self._histories.get(meter_id)
            if current is None or current.block.number <= fresh.block.number:
                self._histories[meter_id] = fresh
        return fresh


class ChainKeySource:
    """Key histories from the deployed MeterRegistry."""

    def __init__(self, chain: Chain, deployment: Deployment) -> None:
        self._chain = chain
        self._admin = MeterAdmin(chain, deployment)

    def latest_block(self) -> BlockRef:
        try:
            block = self._chain.w3.eth.get_block("latest")
        except Exception as error:  # noqa: BLE001 - any transport failure means unreachable
            raise ChainUnavailable(rpc_url=self._chain.rpc_url, reason=str(error)) from error
        return BlockRef(int(block["number"]), int(block["timestamp"]))

    def key_history(self, meter_id: bytes) -> tuple[KeyEpochView, ...] | None:
        try:
            return self._admin.show(meter_id_text(meter_id)).epochs
        except ContractRevert as error:
            if error.error_name == "MeterRegistryUnknownMeter":
                return None
            raise
        except LedgerError:
            raise
        except Exception as error:  # noqa: BLE001 - any transport failure means unreachable
            raise ChainUnavailable(rpc_url=self._chain.rpc_url, reason=str(error)) from error


# --- ingestion --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Verified:
    """A reading that passed every check that needs no database."""

    index: int
    reading: Reading
    canonical: bytes
    signature: bytes
    key_epoch: int


def _hex(text: str) -> bytes | None:
    match = _HEX.fullmatch(text)
    return None if match is None else bytes.fromhex(match.group(2))


def _utc_now(clock: Callable[[], float]) -> str:
    return datetime.fromtimestamp(clock(), tz=UTC).isoformat().replace("+00:00", "Z")


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._keys = keys
        self.chain_id = chain_id
        self.max_batch = max_batch
        self.clock_skew_s = clock_skew_s
        self._clock = clock

    def submit(self, submissions: Sequence[Submission]) -> list[IngestResult]:
        """One result per submission, in order; accepted readings are committed on return.

        Raises:
            BatchTooLarge: More than `max_batch` submissions (nothing is checked or stored).
        """
        if len(submissions) > self.max_batch:
            raise BatchTooLarge(len(submissions), self.max_batch)
        now = int(self._clock())
        refreshed: set[bytes] = set()
        checked = [self._verify(i, s, now, refreshed) for i, s in enumerate(submissions)]
        if not any(isinstance(c, _Verified) for c in checked):
            return [c for c in checked if isinstance(c, IngestResult)]
        received_at = _utc_now(self._clock)
        with self._store.reading_transaction() as writer:
            return [
                self._sequence(writer, c, received_at) if isinstance(c, _Verified) else c
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
        self, index: int, submission: Submission, now: int, refreshed: set[bytes]
    ) -> _Verified | IngestResult:
        # Until the bytes decode, the result names the meter the client claimed.
        def reject(
            code: Rejection,
            message: str,
            meter: str | None = submission.meter_id,
            seq: int | None = None,
        ) -> IngestResult:
            return IngestResult(index, Outcome.REJECTED, code, message, meter, seq)

        canonical = _hex(submission.canonical)
        if canonical is None:
            return reject(Rejection.MALFORMED_READING, "canonical is not 0x-prefixed hex bytes")
        signature = _hex(submission.signature)
        if signature is None:
            return reject(Rejection.MALFORMED_READING, "signature is not 0x-prefixed hex bytes")
        try:
            reading = decode(canonical)
        except ReadingFormatError as error:
            return reject(Rejection.MALFORMED_READING, str(error))
        meter = meter_id_text(reading.meter_id)
        seq = reading.seq
        try:
            claimed = meter_id_bytes(submission.meter_id)
        except MeterError as error:
            return reject(Rejection.METER_MISMATCH, str(error), meter, seq)
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
        if reading.timestamp > now + self.clock_skew_s:
            return reject(
                Rejection.CLOCK_SKEW,
                f"timestamp {reading.timestamp} is {reading.timestamp - now} s ahead of the "
                f"gateway clock (at most {self.clock_skew_s} s allowed)",
                meter,
                seq,
            )
        try:
            history = self._keys.history(reading.meter_id, reading.timestamp, refreshed)
        except ChainUnavailable as error:
            return reject(Rejection.KEYS_UNAVAILABLE, str(error), meter, seq)
        if history.epochs is None:
            return reject(Rejection.UNKNOWN_METER, f"meter {meter!r} is not registered", meter, seq)
        key = key_for_time(history.epochs, reading.timestamp)
        if isinstance(key, Rejection):
            what = "had no key yet" if key is Rejection.NO_KEY_AT_TIME else "had its key revoked"
            return reject(key, f"meter {meter!r} {what} at {reading.timestamp}", meter, seq)
        try:
            verify_reading_signature(key.algorithm, key.public_key, canonical, signature)
        except (ReadingSignatureError, MeterError) as error:
            return reject(Rejection.BAD_SIGNATURE, f"{error} (key epoch {key.index})", meter, seq)
        return _Verified(index, reading, canonical, signature, key.index)

    def _sequence(self, writer: ReadingWriter, v: _Verified, received_at: str) -> IngestResult:
        reading = v.reading
        meter = meter_id_text(reading.meter_id)

        def result(
            status: Outcome, code: Rejection | None, message: str, receipt: Receipt | None = None
        ) -> IngestResult:
            return IngestResult(v.index, status, code, message, meter, reading.seq, receipt)

        existing = writer.reading(reading.meter_id, reading.seq)
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
                )
            )
            return result(
                Outcome.REJECTED,
                Rejection.CONFLICTING_READING,
                f"another reading with seq {reading.seq} is stored for meter {meter!r}; "
                "recorded as a meter-integrity event",
            )
        before, after = writer.neighbours(reading.meter_id, reading.seq)
        problem = _neighbour_problem(reading, before, after)
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
            leaf=reading_leaf(v.canonical),
            receipt_id=uuid.uuid4().hex,
            received_at=received_at,
        )
        writer.insert_reading(stored)
        _update_gaps(writer, reading, before, after, received_at)
        return result(Outcome.ACCEPTED, None, "stored", Receipt.of(stored))


def _neighbour_problem(
    reading: Reading, before: StoredReading | None, after: StoredReading | None
) -> tuple[Rejection, str] | None:
    """Why the reading does not fit between its stored neighbours, or None."""
    if before is not None:
        if reading.import_wh < before.import_wh or reading.export_wh < before.export_wh:
            return (
                Rejection.REGISTER_DECREASED,
                f"registers ({reading.import_wh}, {reading.export_wh}) Wh are below those of "
                f"seq {before.seq} ({before.import_wh}, {before.export_wh})",
            )
        if reading.timestamp <= before.timestamp:
            return (
                Rejection.TIMESTAMP_OUT_OF_ORDER,
                f"timestamp {reading.timestamp} is not after seq {before.seq}'s {before.timestamp}",
            )
    if after is not None:
        if reading.import_wh > after.import_wh or reading.export_wh > after.export_wh:
            return (
                Rejection.REGISTER_DECREASED,
                f"registers ({reading.import_wh}, {reading.export_wh}) Wh are above those of "
                f"the later seq {after.seq} ({after.import_wh}, {after.export_wh})",
            )
        if reading.timestamp >= after.timestamp:
            return (
                Rejection.TIMESTAMP_OUT_OF_ORDER,
                f"timestamp {reading.timestamp} is not before the later seq {after.seq}'s "
                f"{after.timestamp}",
            )
    return None


def _update_gaps(
    writer: ReadingWriter,
    reading: Reading,
    before: StoredReading | None,
    after: StoredReading | None,
    now: str,
) -> None:
    """Records the seqs still missing around a newly stored reading.

    The gaps of a meter are the seqs missing between two of its stored readings; nothing is
    assumed below its lowest stored seq (a meter's counter need not start at 0). A reading that
    lands inside an open gap resolves it, and what is still missing on either side is recorded
    as new open gaps.
    """
    containing = writer.open_gap_containing(reading.meter_id, reading.seq)
    if containing is not None:
        writer.resolve_gap(containing[0], now)
    if before is not None and reading.seq > before.seq + 1:
        writer.record_gap(reading.meter_id, before.seq + 1, reading.seq - 1, now)
    if after is not None and after.seq > reading.seq + 1:
        writer.record_gap(reading.meter_id, reading.seq + 1, after.seq - 1, now)
