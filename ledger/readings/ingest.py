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

import binascii
import hashlib
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.errors import ChainUnavailable, ContractRevert, LedgerError, MeterError
from ledger.meters.registry import (
    KeyAlgorithm,
    KeyEpochView,
    MeterAdmin,
    MeterPublicKey,
    decode_public_key,
    meter_id_bytes,
    meter_id_text,
)
from ledger.readings.native import (
    Reading,
    ReadingFormatError,
    ReadingSignatureError,
    decode,
    reading_leaf,
    verify_signature,
)
from ledger.readings.ocmf import (
    OcmfError,
    ledger_values,
    parse_ocmf,
    signature_method,
    verify_ocmf,
)
from ledger.store.backend import (
    IntegrityEvent,
    Neighbour,
    ReadingWriter,
    Store,
    StoredReading,
    utc_now_iso,
)

NEGATIVE_CACHE_S = 5.0
"""How long an unknown meter is remembered before the registry is asked again."""

REVOCATION_POLL_S = 5.0
"""How often a KeyCache asks the chain for revocations made elsewhere (another worker or gateway,
or a registrar calling the contract directly): a revocation from a past compromise time changes
what a cached history says about times it already covered."""

KEY_CACHE_METERS = 100_000
"""How many registered meters' key histories (and parsed keys) a KeyCache keeps by default."""

UNKNOWN_METERS_CACHED = 10_000
"""How many unknown meters a KeyCache remembers at once (each for `NEGATIVE_CACHE_S`)."""

MAX_SEQ_JUMP = 100_000
"""How far above a meter's latest stored seq a reading's seq may be, by default."""

FIRST_SEQ_LIMIT = 2**63
"""A meter's first stored reading must have a seq below this, so that at least 2^63 seqs are
left to continue after it (a meter's counter need not start at 0, but must not start at the top
of the range)."""

# OCMF curves (`cryptography` names) a MeterRegistry key can be on, and the key's algorithm.
_OCMF_KEY_ALGORITHMS = {"secp256r1": KeyAlgorithm.P256, "secp256k1": KeyAlgorithm.SECP256K1}


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
    """Stable codes of a rejected reading, in the order the checks of a native reading run;
    the `OCMF_*` codes are those of an OCMF record's own checks, which come first for it (see
    the module docstring)."""

    MALFORMED_READING = "malformed_reading"
    METER_MISMATCH = "meter_mismatch"
    WRONG_CHAIN = "wrong_chain"
    CLOCK_SKEW = "clock_skew"
    UNKNOWN_METER = "unknown_meter"
    NO_KEY_AT_TIME = "no_key_at_time"
    KEY_REVOKED = "key_revoked"
    BAD_SIGNATURE = "bad_signature"
    CONFLICTING_READING = "conflicting_reading"
    SEQ_JUMP_TOO_LARGE = "seq_jump_too_large"
    REGISTER_DECREASED = "register_decreased"
    TIMESTAMP_OUT_OF_ORDER = "timestamp_out_of_order"
    # OCMF records only: the codes of `ledger.readings.ocmf`'s errors (`OcmfError.code`).
    OCMF_MALFORMED = "ocmf_malformed"
    OCMF_BAD_VALUE = "ocmf_bad_value"
    OCMF_UNMAPPABLE = "ocmf_unmappable"
    OCMF_UNSUPPORTED_ALGORITHM = "ocmf_unsupported_algorithm"
    OCMF_UNSUPPORTED_CURVE = "ocmf_unsupported_curve"
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
class OcmfSubmission:
    """One OCMF record as a client sends it: the meter id and the whole `OCMF|..|..` text."""

    meter_id: str
    ocmf: str


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
    """The public view of a stored reading: fields, exact bytes, receipt and assigned batch."""
    return {
        "meter_id": meter_id_text(stored.meter_id),
        "seq": stored.seq,
        "timestamp": stored.timestamp,
        "import_wh": stored.import_wh,
        "export_wh": stored.export_wh,
        "status": stored.status,
        "canonical": "0x" + stored.canonical.hex(),
        "signature": "0x" + stored.signature.hex(),
        "source": stored.source,
        "raw": None if stored.raw is None else stored.raw.decode("utf-8", errors="replace"),
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


class RevocationFeed(Protocol):
    """Which meters had a key revoked in a range of blocks (the MeterRegistry's events)."""

    def revoked_meters(self, from_block: int, to_block: int) -> set[bytes]:
        """Ids of the meters with a `MeterKeyRevoked` event in blocks from_block..to_block."""
        ...


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
        # A revocation from a past compromise time (`revokeKeyCompromisedSince`) is the one
        # change that reaches below `block.timestamp`: KeyCache drops the histories it touches
        # (`KeyCache.forget`, and its poll of the registry's revocation events).


@dataclass(frozen=True)
class KeyCacheSize:
    """How many entries a KeyCache holds (each bounded, see `KeyCache`)."""

    meters: int
    unknown_meters: int
    parsed_keys: int


_NO_BLOCK = BlockRef(number=-1, timestamp=0)
"""The block of an unknown meter's answer: none (it is kept only for `negative_ttl_s`)."""


class KeyCache:
    """Meter key histories, read from a `KeySource` only when they may be out of date.

    A cached history is used as is for a reading time it covers (see `KeyHistory.covers`). For a
    later time it is refreshed, at most once per meter per request (`refreshed`): first the
    latest block is read, and if no block was mined since the history was read, the history is
    still current and is kept; otherwise it is read again.

    A meter that is not cached costs one registry read and no block read: its history is tied to
    the newest block this cache read before, which the history is at least as new as (only the
    first meter a cache meets needs a block read). An unknown meter is remembered for
    `negative_ttl_s` seconds, so it costs at most one chain call per `negative_ttl_s`.

    Every part is bounded: at most `max_meters` histories and as many parsed keys, the least
    recently used evicted first; at most `max_unknown` unknown meters, the oldest evicted first.
    Unknown meters are kept apart, so a flood of made-up meter ids never evicts a registered
    meter's history (it can only make an unknown meter be asked again sooner).

    Revocations from a past compromise time invalidate what a history covers. The gateway that
    sends one drops the meter's history at once (`forget`); with a `revocations` feed, every
    cache also asks the chain for the meters revoked since its last look, at most once per
    `revocation_poll_s`, when a reading is checked, and drops theirs too. So a revocation made
    elsewhere takes effect here within `revocation_poll_s` of being mined.
    """

    def __init__(
        self,
        source: KeySource,
        *,
        max_meters: int = KEY_CACHE_METERS,
        max_unknown: int = UNKNOWN_METERS_CACHED,
        negative_ttl_s: float = NEGATIVE_CACHE_S,
        revocations: RevocationFeed | None = None,
        revocation_poll_s: float = REVOCATION_POLL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._revocations = revocations
        self._revocation_poll_s = revocation_poll_s
        # The last block whose revocations are known here (None until the first block read:
        # every history is read after that block, so revocations up to it are in them).
        self._revocations_block: int | None = None
        self._revocations_polled_at: float | None = None
        # Meters just revoked -> the block a history must be read at (or after) to be cached:
        # a read that started before the revocation must not be cached after `forget`.
        self._stale_below: OrderedDict[bytes, int] = OrderedDict()
        self._max_meters = max_meters
        self._max_unknown = max_unknown
        self._negative_ttl_s = negative_ttl_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # Registered meters, least recently used first.
        self._histories: OrderedDict[bytes, KeyHistory] = OrderedDict()
        # Unknown meters and when the registry said so, oldest first.
        self._unknown: OrderedDict[bytes, float] = OrderedDict()
        self._parsed: OrderedDict[tuple[KeyAlgorithm, bytes], MeterPublicKey] = OrderedDict()
        # The newest block read so far: every history read after it is at least as new.
        self._seen_block: BlockRef | None = None

    @property
    def size(self) -> KeyCacheSize:
        """How many entries each part of the cache holds now."""
        with self._lock:
            return KeyCacheSize(len(self._histories), len(self._unknown), len(self._parsed))

    def history(self, meter_id: bytes, timestamp: int, refreshed: set[bytes]) -> KeyHistory:
        """The meter's key history, fresh enough for a reading at `timestamp`."""
        self._poll_revocations()
        with self._lock:
            cached = self._histories.get(meter_id)
            if cached is not None:
                self._histories.move_to_end(meter_id)
                unknown_since = None
            else:
                unknown_since = self._unknown.get(meter_id)
        if cached is None:
            if unknown_since is not None:
                if self._monotonic() - unknown_since < self._negative_ttl_s:
                    return KeyHistory(None, _NO_BLOCK, unknown_since)
            return self._first_read(meter_id, refreshed)
        if cached.covers(timestamp) or meter_id in refreshed:
            return cached
        try:
            block = self._latest_block()
        except ChainUnavailable:
            # Chain outage: keep accepting against the last history read. While the chain is
            # down no rotation or revocation can be made on it either.
            return cached
        if block.number == cached.block.number:
            # Nothing was mined since: the history is still the registry's current state.
            fresh = replace(cached, block=block, read_at=self._monotonic())
        else:
            # The block is read first, so the history is at least as new as it.
            fresh = KeyHistory(self._source.key_history(meter_id), block, self._monotonic())
        refreshed.add(meter_id)
        return self._remember(meter_id, fresh)

    def public_key(self, epoch: KeyEpochView) -> MeterPublicKey:
        """The epoch's key as a `cryptography` object, parsed once per key while it is cached.

        Parsing a registry point costs about a tenth of a signature check; a meter signs every
        reading of an epoch with the same key. Keyed by the key itself, so an entry can never be
        stale; at most `max_meters` are kept, the least recently used evicted first. A key that
        does not parse is not cached: it raises every time.

        Raises:
            MeterError: The registry's key is not valid for its algorithm.
        """
        cache_key = (epoch.algorithm, epoch.public_key)
        with self._lock:
            key = self._parsed.get(cache_key)
            if key is not None:
                self._parsed.move_to_end(cache_key)
                return key
        # Parsed outside the lock; two threads parsing the same key store equal objects.
        key = decode_public_key(epoch.algorithm, epoch.public_key)
        with self._lock:
            self._parsed[cache_key] = key
            while len(self._parsed) > self._max_meters:
                self._parsed.popitem(last=False)
        return key

    def forget(self, meter_id: bytes) -> None:
        """Drops the meter's cached history, after a change that may reach into the past (a
        revocation from a compromise time): its next reading reads the registry again.

        Call it once the change is mined. The latest block is read first, so a history read
        before the change (by a request in flight) is never cached after this.
        """
        try:
            block: BlockRef | None = self._latest_block()
        except ChainUnavailable:
            block = None
        with self._lock:
            self._histories.pop(meter_id, None)
            if block is not None:
                self._mark_stale(meter_id, block.number)

    def _poll_revocations(self) -> None:
        """Forgets the meters revoked since the last poll, if `revocation_poll_s` has passed."""
        if self._revocations is None:
            return
        now = self._monotonic()
        with self._lock:
            due = (
                self._revocations_polled_at is None
                or now - self._revocations_polled_at >= self._revocation_poll_s
            )
            if not due or self._revocations_block is None:
                return  # nothing cached yet (no block read), or polled recently
            self._revocations_polled_at = now  # one thread polls, the others go on
            since = self._revocations_block
        try:
            block = self._latest_block()
            if block.number <= since:
                return  # no block mined since the last poll
            revoked = self._revocations.revoked_meters(since + 1, block.number)
        except ChainUnavailable:
            return  # tried again after the next interval
        with self._lock:
            for meter_id in revoked:
                self._histories.pop(meter_id, None)
                self._mark_stale(meter_id, block.number)
            self._revocations_block = max(self._revocations_block or 0, block.number)

    def _mark_stale(self, meter_id: bytes, block_number: int) -> None:
        # Under the lock. An entry lives until the meter's next read; bounded like the rest (an
        # evicted one only matters to a read already in flight when the revocation was mined).
        self._stale_below[meter_id] = block_number
        self._stale_below.move_to_end(meter_id)
        while len(self._stale_below) > self._max_meters:
            self._stale_below.popitem(last=False)

    def _first_read(self, meter_id: bytes, refreshed: set[bytes]) -> KeyHistory:
        """Reads a meter that is not cached, or whose `unknown` answer expired."""
        with self._lock:
            block = self._seen_block
        if block is None:
            # Once in the cache's life: no block was read yet to tie the history to.
            block = self._latest_block()
        # Read after `block`, so the history is at least as new as it.
        epochs = self._source.key_history(meter_id)
        fresh = KeyHistory(epochs, block, self._monotonic())
        if epochs is not None:
            refreshed.add(meter_id)
        return self._remember(meter_id, fresh)

    def _latest_block(self) -> BlockRef:
        block = self._source.latest_block()
        with self._lock:
            if self._seen_block is None or self._seen_block.number < block.number:
                self._seen_block = block
            if self._revocations_block is None:
                self._revocations_block = block.number
                self._revocations_polled_at = self._monotonic()
        return block

    def _remember(self, meter_id: bytes, fresh: KeyHistory) -> KeyHistory:
        """Caches a history just read (or that the meter is unknown), within the bounds."""
        with self._lock:
            if fresh.epochs is None:
                self._unknown[meter_id] = fresh.read_at
                self._unknown.move_to_end(meter_id)
                # Oldest first: drop those expired, and the oldest beyond the bound.
                while self._unknown and (
                    len(self._unknown) > self._max_unknown
                    or fresh.read_at - next(iter(self._unknown.values())) >= self._negative_ttl_s
                ):
                    self._unknown.popitem(last=False)
                return fresh
            self._unknown.pop(meter_id, None)
            stale_below = self._stale_below.get(meter_id)
            if stale_below is not None:
                if fresh.block.number < stale_below:
                    return fresh  # read before a revocation: used once, never cached
                del self._stale_below[meter_id]
            current = self._histories.get(meter_id)
            # Concurrent requests may refresh the same meter: keep the newest read.
            if current is None or current.block.number <= fresh.block.number:
                self._histories[meter_id] = fresh
            self._histories.move_to_end(meter_id)
            while len(self._histories) > self._max_meters:
                self._histories.popitem(last=False)
            return fresh


class ChainKeySource:
    """Key histories from the deployed MeterRegistry."""

    def __init__(self, chain: Chain, deployment: Deployment) -> None:
        self._chain = chain
        self._admin = MeterAdmin(chain, deployment)
        self._registry = deployment.meter_registry

    def revoked_meters(self, from_block: int, to_block: int) -> set[bytes]:
        if from_block > to_block:
            return set()
        try:
            logs = self._registry.events.MeterKeyRevoked().get_logs(
                from_block=from_block, to_block=to_block
            )
        except Exception as error:  # noqa: BLE001 - any transport failure means unreachable
            raise ChainUnavailable(rpc_url=self._chain.rpc_url, reason=str(error)) from error
        return {bytes(log["args"]["meterId"]) for log in logs}

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
    """A reading that passed every check that needs no database, with what its row will need
    that needs no database either (`leaf`, `receipt_id`): computed here, outside the store's
    lock, so that the write transaction, which serialises every request, does less."""

    index: int
    reading: Reading
    canonical: bytes
    signature: bytes
    key_epoch: int
    leaf: bytes
    receipt_id: str
    source: str = "native"
    raw: bytes | None = None


def _verified(
    index: int,
    reading: Reading,
    canonical: bytes,
    signature: bytes,
    key_epoch: int,
    source: str = "native",
    raw: bytes | None = None,
) -> _Verified:
    # A receipt id drawn for a reading that turns out a duplicate or a conflict is not used.
    return _Verified(
        index,
        reading,
        canonical,
        signature,
        key_epoch,
        leaf=reading_leaf(canonical),
        receipt_id=uuid.uuid4().hex,
        source=source,
        raw=raw,
    )


def _hex(text: str) -> bytes | None:
    """The bytes of hex digits with an optional 0x prefix (an even number of ASCII hex digits,
    nothing else: no sign, space or newline), or None."""
    digits = text[2:] if text.startswith("0x") else text
    try:
        # Unlike bytes.fromhex, a2b_hex refuses whitespace, and non-ASCII text.
        return binascii.a2b_hex(digits)
    except ValueError:  # binascii.Error (odd length, not a hex digit) is a ValueError
        return None


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
        if not any(isinstance(c, _Verified) for c in checked):
            return [c for c in checked if isinstance(c, IngestResult)]
        received_at = utc_now_iso(self._clock)
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
        self, index: int, submission: Submission | OcmfSubmission, now: int, refreshed: set[bytes]
    ) -> _Verified | IngestResult:
        if isinstance(submission, OcmfSubmission):
            return self._verify_ocmf(index, submission, now, refreshed)
        return self._verify_native(index, submission, now, refreshed)

    def _verify_native(
        self, index: int, submission: Submission, now: int, refreshed: set[bytes]
    ) -> _Verified | IngestResult:
        # Until the bytes decode, the result names the meter the client claimed.
        reject = _Rejecter(index, submission.meter_id)

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
        claimed = _claimed_meter_id(submission.meter_id)
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
            verify_signature(key.algorithm, public_key, canonical, signature)
        except (ReadingSignatureError, MeterError) as error:
            return reject(Rejection.BAD_SIGNATURE, f"{error} (key epoch {key.index})", meter, seq)
        return _verified(index, reading, canonical, signature, key.index)

    def _verify_ocmf(
        self, index: int, submission: OcmfSubmission, now: int, refreshed: set[bytes]
    ) -> _Verified | IngestResult:
        # Until the record maps onto a reading, the result names the meter the client claimed.
        reject = _Rejecter(index, submission.meter_id)

        try:
            record = parse_ocmf(submission.ocmf)
            values = ledger_values(record)
        except OcmfError as error:
            return reject(_ocmf_rejection(error), str(error))
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
            return reject(_ocmf_rejection(error), str(error), meter, seq)
        algorithm = _OCMF_KEY_ALGORITHMS.get(method.curve.name)
        if algorithm is None:
            return reject(
                Rejection.OCMF_UNSUPPORTED_CURVE,
                f"OCMF curve {method.curve.name} ({method.identifier}) cannot be verified "
                "against the MeterRegistry, whose ECDSA keys are on secp256r1 (P-256) or "
                "secp256k1",
                meter,
                seq,
            )
        claimed = _claimed_meter_id(submission.meter_id)
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

    def _sequence(self, writer: ReadingWriter, v: _Verified, received_at: str) -> IngestResult:
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
            jump = _seq_jump_problem(reading, latest, self.max_seq_jump)
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
            leaf=v.leaf,
            receipt_id=v.receipt_id,
            received_at=received_at,
            source=v.source,
            raw=v.raw,
        )
        writer.insert_reading(stored)
        _update_gaps(writer, reading, before, after, received_at, may_fill_a_gap=not in_order)
        return result(Outcome.ACCEPTED, None, "stored", Receipt.of(stored))


@dataclass(frozen=True)
class _Rejecter:
    """Builds the rejected result of one submission; by default it names the claimed meter."""

    index: int
    claimed_meter: str

    def __call__(
        self,
        code: Rejection,
        message: str,
        meter: str | None = None,
        seq: int | None = None,
    ) -> IngestResult:
        named = self.claimed_meter if meter is None else meter
        return IngestResult(self.index, Outcome.REJECTED, code, message, named, seq)


def _claimed_meter_id(meter_id: str) -> bytes | str:
    """The bytes32 id the body names, or why it names none."""
    try:
        return meter_id_bytes(meter_id)
    except MeterError as error:
        return str(error)
    except UnicodeError:  # a lone surrogate (JSON "\ud800") has no UTF-8 form
        return f"meter id {meter_id!r} is not valid Unicode text"


def _ocmf_rejection(error: OcmfError) -> Rejection:
    """The rejection code of an OCMF parsing, mapping or algorithm error: the error's own."""
    try:
        return Rejection(error.code)
    except ValueError:
        return Rejection.OCMF_MALFORMED


def _seq_jump_problem(reading: Reading, latest: Neighbour | None, max_jump: int) -> str | None:
    """Why the seq of a reading above every stored one of its meter is too far up, or None.

    Unbounded, one reading at seq 2^64-1 (a counter gone wrong, or a stolen key) would leave no
    seq above it: every later reading of the meter would be refused. Bounded, the meter always
    has room to continue after its highest accepted seq.
    """
    if latest is None:
        if reading.seq < FIRST_SEQ_LIMIT:
            return None
        return (
            f"seq {reading.seq} is not below 2^63: a meter's first reading must leave room "
            "for the readings after it"
        )
    if reading.seq - latest.seq <= max_jump:
        return None
    return (
        f"seq {reading.seq} is {reading.seq - latest.seq} above the meter's latest stored seq "
        f"{latest.seq} (at most {max_jump} allowed); continue from seq {latest.seq + 1}"
    )


def _neighbour_problem(
    reading: Reading, before: Neighbour | None, after: Neighbour | None
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
    before: Neighbour | None,
    after: Neighbour | None,
    now: str,
    *,
    may_fill_a_gap: bool,
) -> None:
    """Records the seqs still missing around a newly stored reading.

    The gaps of a meter are the seqs missing between two of its stored readings; nothing is
    assumed below its lowest stored seq (a meter's counter need not start at 0). A reading that
    lands inside an open gap resolves it, and what is still missing on either side is recorded
    as new open gaps. Only a reading below the meter's latest stored seq can land inside one
    (`may_fill_a_gap`): the caller knows, and the lookup is skipped for the others.
    """
    if may_fill_a_gap:
        containing = writer.open_gap_containing(reading.meter_id, reading.seq)
        if containing is not None:
            writer.resolve_gap(containing[0], now)
    if before is not None and reading.seq > before.seq + 1:
        writer.record_gap(reading.meter_id, before.seq + 1, reading.seq - 1, now)
    if after is not None and after.seq > reading.seq + 1:
        writer.record_gap(reading.meter_id, reading.seq + 1, after.seq - 1, now)
