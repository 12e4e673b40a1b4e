"""Meter key histories for ingestion from the event indexer's read model, the chain only where
the read model cannot answer.

`IndexedKeySource` is a `KeySource` for `KeyCache`: a meter the cache has not seen costs one
database query instead of one registry call. The cache ties each history to a block and treats
it as final for reading times before that block's time (`KeyHistory.covers`), so a history is
only good if it is at least as new as that block. The read model is as new as its cursor, which
lags the chain by up to one indexer poll (and by LEDGER_CONFIRMATIONS blocks by design). Hence:

- `latest_block` is the chain's latest block, as with `ChainKeySource` (the cache reads it only
  when a cached history no longer covers a reading's time, or once for its first meter);
- `key_history` answers from the read model when its cursor has reached every block this source
  has handed out, and otherwise from the registry; a meter the read model does not hold yet (one
  registered a second ago) is read from the registry too.

So with 0 confirmations, once the indexer is current, a gateway's new meters cost no chain call;
with confirmations, or while the indexer lags, it answers exactly as `ChainKeySource` would.

The indexer lags the chain after every block until its next poll (an anchoring transaction
mines one every few seconds), and a worker's first batch from a whole fleet would then cost one
registry call per meter. With `catch_up` (the indexer's `index_now`), a read model found behind
a block this source handed out is first brought up to date by one indexer pass (a few chain
calls, whatever the number of meters), at most once per such block; only what that leaves
behind (a meter still not indexed, or confirmations keeping the cursor below the block) is read
from the registry.
Revocations made elsewhere still reach the cache through `revoked_meters` (the registry's events,
polled by the cache).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from ledger.meters.keys import KeyAlgorithm
from ledger.meters.registry import KeyEpochView
from ledger.readings.keys import BlockRef, KeySource, RevocationFeed
from ledger.store.read_model import IndexedMeter, ReadModel


class ChainSource(KeySource, RevocationFeed, Protocol):
    """The registry's own answers (`ChainKeySource`)."""


class IndexedKeySource:
    """Key histories from the read model, falling back to the registry (see the module
    docstring)."""

    def __init__(
        self,
        read_model: ReadModel,
        chain_source: ChainSource,
        *,
        catch_up: Callable[[], None] | None = None,
    ) -> None:
        self._read_model = read_model
        self._chain = chain_source
        self._catch_up = catch_up
        self._lock = threading.Lock()
        # The newest block handed out by `latest_block`: a history tied to it must be this new.
        self._newest_block = -1
        # The newest block a catch-up pass was run for: one pass per block at most.
        self._caught_up_for = -1
        self.from_read_model = 0  # histories answered from the read model (for tests, health)
        self.from_chain = 0  # histories read from the registry

    def latest_block(self) -> BlockRef:
        block = self._chain.latest_block()
        with self._lock:
            self._newest_block = max(self._newest_block, block.number)
        return block

    def revoked_meters(self, from_block: int, to_block: int) -> set[bytes]:
        return self._chain.revoked_meters(from_block, to_block)

    def key_history(self, meter_id: bytes) -> tuple[KeyEpochView, ...] | None:
        cursor, meter = self._read_model.meter(meter_id)
        with self._lock:
            newest = self._newest_block
        behind = cursor is None or cursor.block_number < newest
        if behind and self._catch_up is not None and self._claim_catch_up(newest):
            self._catch_up()
            cursor, meter = self._read_model.meter(meter_id)
            behind = cursor is None or cursor.block_number < newest
        if meter is not None and not behind:
            self.from_read_model += 1
            return _epochs(meter)
        self.from_chain += 1
        return self._chain.key_history(meter_id)

    def _claim_catch_up(self, newest: int) -> bool:
        """Whether this caller runs the catch-up pass for block `newest` (the first to ask)."""
        with self._lock:
            if self._caught_up_for >= newest:
                return False
            self._caught_up_for = newest
            return True


def _epochs(meter: IndexedMeter) -> tuple[KeyEpochView, ...]:
    return tuple(
        KeyEpochView(
            index=epoch.epoch,
            algorithm=KeyAlgorithm(epoch.algorithm),
            public_key=epoch.public_key,
            valid_from=epoch.valid_from,
            revoked_at=epoch.revoked_at,
        )
        for epoch in meter.epochs
    )
