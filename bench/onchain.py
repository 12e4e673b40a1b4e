"""On-chain figures: registering the fleet, one transaction per reading, one anchor per batch.

Everything here talks to the gateway's own Ganache with the operator key, through the same code
the gateway uses (`ledger.chain.client.Chain.transact`,
`ledger.meters.registry.MeterAdmin`). Anchors sent here take the next batch ids of
ReadingLedger, so they run only while the gateway's anchorer is off.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ledger.anchoring.merkle import MerkleTree
from ledger.chain.client import Chain, connect
from ledger.chain.deployment import Deployment, ensure_deployed
from ledger.meters.registry import MeterAdmin
from ledger.readings.native import anchored_leaf, decode
from ledger.settings import DEV_OPERATOR_KEY
from ledger.sim.fleet import FleetMeter

ANCHOR_GAS_BATCHES = 6
"""Consecutive batches the anchoring gas is averaged over: one group of ReadingLedger's packed
anchoring times (contracts/ReadingLedger.sol)."""


def _leaf(canonical: bytes) -> bytes:
    """A version-2 leaf of the reading (docs/reading-format.md), with a stand-in signature: only
    the gas of anchoring is measured here, and it does not depend on the leaves' bytes."""
    return anchored_leaf(canonical, canonical, bytes(64))


@dataclass(frozen=True)
class Onchain:
    chain: Chain
    deployment: Deployment

    @classmethod
    def attach(cls, rpc_url: str, data_dir: Path) -> Onchain:
        """The gateway's chain and the contracts recorded in its data directory."""
        chain = connect(rpc_url, DEV_OPERATOR_KEY)
        return cls(chain, ensure_deployed(chain, data_dir))

    def register(
        self, fleet: Sequence[FleetMeter], valid_from: int, say: Callable[[str], None]
    ) -> float:
        """Registers every meter (key valid from `valid_from`); returns the seconds it took."""
        admin = MeterAdmin(self.chain, self.deployment)
        owner = self.chain.operator.address
        began = time.perf_counter()
        for done, meter in enumerate(fleet, 1):
            admin.register(meter.meter_id, owner, meter.key.public_key(), valid_from=valid_from)
            if done % 50 == 0 or done == len(fleet):
                say(f"registered {done}/{len(fleet)} meters")
        return time.perf_counter() - began

    def _anchor(self, leaves: Sequence[bytes], from_ts: int, to_ts: int) -> int:
        """Anchors one batch (the next batch id) and returns its gasUsed."""
        ledger = self.deployment.reading_ledger
        batch_id = int(self.chain.call(ledger.functions.lastBatchId())) + 1
        root = leaves[0] if len(leaves) == 1 else MerkleTree(leaves).root
        call = ledger.functions.anchor(batch_id, root, len(leaves), from_ts, to_ts)
        return int(self.chain.transact(call)["gasUsed"])

    def naive(self, canonicals: Sequence[bytes]) -> tuple[float, int]:
        """One anchor transaction per reading (a batch of one: root = its leaf), sent and waited
        for one after the other; (transactions per second, median gasUsed)."""
        gas: list[int] = []
        began = time.perf_counter()
        for canonical in canonicals:
            timestamp = decode(canonical).timestamp
            gas.append(self._anchor([_leaf(canonical)], timestamp, timestamp))
        elapsed = time.perf_counter() - began
        return len(canonicals) / elapsed, int(statistics.median(gas))

    def batch_gas(self, canonicals: Sequence[bytes], batches: int = ANCHOR_GAS_BATCHES) -> int:
        """Mean gasUsed of anchoring these readings as one batch, over `batches` consecutive
        batches: ReadingLedger keeps six batches' anchoring times in a slot it rewrites anyway
        and writes a new slot every sixth batch, so one batch alone says little."""
        stamps = [decode(c).timestamp for c in canonicals]
        leaves = [_leaf(c) for c in canonicals]
        gas = [self._anchor(leaves, min(stamps), max(stamps)) for _ in range(batches)]
        return round(statistics.mean(gas))
