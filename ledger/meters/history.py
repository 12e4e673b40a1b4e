"""A meter's owner and key history from the event indexer's read model, the registry only where
the read model cannot answer.

`MeterAdmin.show` reads the registry one call per key epoch (owner, count, then each epoch), so a
meter rotated 20 times costs 22 calls. `MeterHistory.show` answers the same `MeterView` from one
query of the read model (`ReadModel.meter`) plus at most two chain calls, however many epochs the
meter has:

1. the chain's head (`eth_blockNumber`);
2. when the read model's cursor is behind the head (the indexer polls, and stays
   LEDGER_CONFIRMATIONS blocks behind by design), one `eth_getLogs` for the registry's events of
   this meter in the blocks after the cursor (the meter id is an indexed topic of
   MeterRegistered, MeterKeyRotated and MeterKeyRevoked). None there: the read model is the
   registry's state at the head, so it answers.

Otherwise it reads the registry as `MeterAdmin.show` does: a meter the read model has not seen
(unknown to the registry, or registered a moment ago and not indexed yet), one that changed after
the cursor (rotated or revoked a moment ago, through this gateway or another), a database the
indexer has not filled, or a cursor more than `max_gap_blocks` behind (a log query over that
many blocks is one many providers refuse). So the answer is always what the registry holds at the
head, as fresh as before; only its cost changed.
"""

from __future__ import annotations

from web3.types import FilterParams

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.meters.keys import KeyAlgorithm
from ledger.meters.registry import (
    KeyEpochView,
    MeterAdmin,
    MeterView,
    meter_id_bytes,
    meter_id_text,
)
from ledger.store.read_model import IndexedMeter, ReadModel


class MeterHistory:
    """`show(meter_id)`: the `MeterView` of `MeterAdmin.show`, from the read model when it is
    current for the meter (see the module docstring)."""

    def __init__(
        self,
        chain: Chain,
        deployment: Deployment,
        read_model: ReadModel,
        *,
        max_gap_blocks: int,
    ) -> None:
        self._chain = chain
        self._registry = deployment.meter_registry
        self._admin = MeterAdmin(chain, deployment)
        self._read_model = read_model
        self._max_gap_blocks = max_gap_blocks
        self.from_read_model = 0  # answers from the read model (for tests)
        self.from_chain = 0  # answers read from the registry

    def show(self, meter_id: str) -> MeterView:
        """The meter's owner and every key epoch, as the registry holds them at the head.

        Raises:
            MeterError: a malformed meter id.
            ContractRevert: MeterRegistryUnknownMeter (read from the registry).
        """
        raw_id = meter_id_bytes(meter_id)
        # The head first: whatever the read model holds after this is at least this new.
        head = int(self._chain.w3.eth.block_number)
        cursor, meter = self._read_model.meter(raw_id)
        if (
            meter is not None
            and cursor is not None
            and self._unchanged_since(raw_id, cursor.block_number, head)
        ):
            self.from_read_model += 1
            return meter_view(meter)
        self.from_chain += 1
        return self._admin.show(meter_id)

    def _unchanged_since(self, raw_id: bytes, indexed_to: int, head: int) -> bool:
        """Whether the registry emitted nothing about the meter in blocks (indexed_to, head]."""
        if indexed_to >= head:
            return True
        if head - indexed_to > self._max_gap_blocks:
            return False
        logs = self._chain.w3.eth.get_logs(
            FilterParams(
                address=self._registry.address,
                fromBlock=indexed_to + 1,
                toBlock=head,
                topics=[None, "0x" + raw_id.hex()],
            )
        )
        return len(logs) == 0


def meter_view(meter: IndexedMeter) -> MeterView:
    """The `MeterView` of an indexed meter (the same fields the registry's calls give)."""
    return MeterView(
        meter_id=meter_id_text(meter.meter_id),
        owner=meter.owner,
        epochs=tuple(
            KeyEpochView(
                index=epoch.epoch,
                algorithm=KeyAlgorithm(epoch.algorithm),
                public_key=epoch.public_key,
                valid_from=epoch.valid_from,
                revoked_at=epoch.revoked_at,
            )
            for epoch in meter.epochs
        ),
    )
