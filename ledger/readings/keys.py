"""Meter key histories for ingestion: which key a meter held at a reading's time, read from the
MeterRegistry (`ChainKeySource`) and cached (`KeyCache`) so that a reading costs no chain call
while its meter's cached history still covers its time.

A `KeySource` is where histories come from: the deployed registry here, a fake in unit tests, the
event indexer's read model later. The cache's own bounds and the revocation poll are described on
`KeyCache`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.errors import ChainUnavailable, ContractRevert, LedgerError
from ledger.meters.keys import KeyAlgorithm, MeterPublicKey, decode_public_key
from ledger.meters.registry import KeyEpochView, MeterAdmin, meter_id_text
from ledger.readings.results import Rejection

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
