"""BillRegistry: a run stores its times in 48 bits (OpenZeppelin `Time`'s width, 8.9 million
years): on a chain whose clock has passed that, anchoring reverts instead of truncating.

On an Anvil of this module's own, since its clock is moved to 2**48 and never comes back.
"""

from __future__ import annotations

from pathlib import Path

from ledger.chain.client import LocalChain, connect
from ledger.chain.deployment import ensure_deployed
from ledger.settings import DEV_OPERATOR_KEY
from tests.contracts.bill_registry.helpers import anchor, anchor_reading_batches
from tests.fixtures.chain import reverts

FIRST_UNSTORABLE_TIME = 2**48


def test_anchoring_once_the_clock_passes_48_bits_reverts_instead_of_truncating(
    anvil: LocalChain, tmp_path: Path
) -> None:
    chain = connect(anvil.rpc_url, DEV_OPERATOR_KEY)
    deployment = ensure_deployed(chain, tmp_path)
    anchor_reading_batches(chain, deployment, 2)
    rpc = chain.w3.provider.make_request
    rpc("evm_setNextBlockTimestamp", [FIRST_UNSTORABLE_TIME])  # type: ignore[arg-type]
    rpc("evm_mine", [])  # type: ignore[arg-type]

    with reverts("SafeCastOverflowedUintDowncast") as caught:
        anchor(chain, deployment.bill_registry, period_end=FIRST_UNSTORABLE_TIME)

    bits, value = caught.value.args_decoded
    assert bits == 48
    assert value >= FIRST_UNSTORABLE_TIME
