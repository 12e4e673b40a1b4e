"""Each invariant of tests/contracts/market_machine.py shown to catch a seeded bug on its own.

The seeded bugs are mutated copies of contracts/EnergyMarket.sol (one line each, asserted to
apply), made from it on every run and compiled from memory, together in one solc run, and deployed
beside the real contract. The same machine runs against each, generation only, with only the
invariant under test checked (rule outcomes are merely recorded), and must fail naming that
invariant. Checking one invariant at a time is what shows that each catches a bug on its own: with
every check on, `model_agrees` sees a stuck trade state or an unbooked settled-Wh counter one step
before the second settlement that `settled_once` or `delivered_within_readings` exists to catch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from eth_utils import to_checksum_address
from web3.contract import Contract

from ledger.chain.compiler import CONTRACTS_DIR
from tests.contracts.market_machine import (
    MUTANT_SETTINGS,
    PARAMS,
    World,
    prepare_run,
    run_machine,
)
from tests.contracts.solidity import Compiled, compile_sources

pytestmark = [pytest.mark.chain, pytest.mark.slow]


@dataclass(frozen=True)
class Mutant:
    """A one-line change to EnergyMarket.sol and the invariant that must catch it."""

    id: str
    bug: str
    original: str
    replacement: str
    caught_by: str


MUTANTS = (
    Mutant(
        "settle-keeps-refund",
        "settle keeps the buyer's refund",
        "        if (refunded > 0) settlementToken.safeTransfer(trade_.buyer, refunded);\n",
        "",
        "escrow_held",
    ),
    Mutant(
        "refund-keeps-escrow",
        "refund keeps the escrow",
        "        settlementToken.safeTransfer(trade_.buyer, escrow);\n",
        "",
        "escrow_held",
    ),
    Mutant(
        "refund-rounds-payment-up",
        "refund rounds the payment up",
        "        uint128 refunded = escrow - paid;\n",
        "        uint128 refunded = escrow - uint128(Math.mulDiv(delivered, trade_.pricePerKWh, "
        "_WH_PER_KWH, Math.Rounding.Ceil));\n",
        "settled_accounting",
    ),
    Mutant(
        "paid-for-quantity",
        "payment for the contracted, not the delivered, quantity",
        "        uint128 paid = uint128(Math.mulDiv(delivered, trade_.pricePerKWh, "
        "_WH_PER_KWH));\n",
        "        uint128 paid = uint128(Math.mulDiv(trade_.quantityWh, trade_.pricePerKWh, "
        "_WH_PER_KWH));\n",
        "settled_accounting",
    ),
    Mutant(
        "take-below-minimum",
        "a take worth less than the minimum goes through",
        "        _requireMinTradeValue(quantityWh, offer_.pricePerKWh);\n",
        "",
        "rounding_bounded",
    ),
    Mutant(
        "payment-in-coarse-units",
        "payment rounded down to 100 units (cents on a token of millionths)",
        "        uint128 paid = uint128(Math.mulDiv(delivered, trade_.pricePerKWh, "
        "_WH_PER_KWH));\n",
        "        uint128 paid = uint128(Math.mulDiv(delivered, trade_.pricePerKWh, "
        "_WH_PER_KWH * 100) * 100);\n",
        "rounding_bounded",
    ),
    Mutant(
        "settled-trade-stays-open",
        "a settled trade stays open",
        "        trade_.state = TradeState.Settled;\n",
        "",
        "settled_once",
    ),
    Mutant(
        "export-not-booked",
        "the seller's export is not booked",
        "        _exportSettled[sellerMeter][slotStart] += delivered;\n",
        "",
        "delivered_within_readings",
    ),
    Mutant(
        "import-not-booked",
        "the buyer's import is not booked",
        "        _importSettled[buyerMeter][slotStart] += delivered;\n",
        "",
        "delivered_within_readings",
    ),
    Mutant(
        "escrow-rounded-down",
        "escrow rounded down",
        "Math.mulDiv(quantityWh, offer_.pricePerKWh, _WH_PER_KWH, Math.Rounding.Ceil)",
        "Math.mulDiv(quantityWh, offer_.pricePerKWh, _WH_PER_KWH)",
        "model_agrees",
    ),
)
MUTANT_IDS = [mutant.id for mutant in MUTANTS]


# The mutants are made from the real contract on every run and compiled from memory, never written
# to disk: a file under contracts/ would be compiled into the ledger's build, analysed by slither
# and compiled by brownie (ten more contracts named EnergyMarket), and a copy left on disk could
# go stale against the contract it was made from. Their source paths are under contracts/test/
# only so the compiler names them as the test-only sources they are.
MUTANTS_DIR = "contracts/test/mutants"


def mutant_sources() -> dict[str, str]:
    """Mutant id -> its EnergyMarket.sol source, each made from contracts/EnergyMarket.sol."""
    source = (CONTRACTS_DIR / "EnergyMarket.sol").read_text()
    # The copies live at another path: their relative imports become project-root paths.
    source = source.replace('"./', '"contracts/')
    sources = {}
    for mutant in MUTANTS:
        assert source.count(mutant.original) == 1, f"{mutant.id}: the line to change moved"
        sources[mutant.id] = source.replace(mutant.original, mutant.replacement)
    return sources


@pytest.fixture(scope="module")
def mutant_artifacts() -> dict[str, Compiled]:
    """Mutant id -> (abi, bytecode), all compiled in one solc run with the project's settings."""
    paths = {mutant_id: f"{MUTANTS_DIR}/{mutant_id}/EnergyMarket.sol" for mutant_id in MUTANT_IDS}
    sources = mutant_sources()
    compiled = compile_sources(
        {paths[mutant_id]: source for mutant_id, source in sources.items()},
        {path: "EnergyMarket" for path in paths.values()},
    )
    return {mutant_id: compiled[path] for mutant_id, path in paths.items()}


def deploy_market(world: World, abi: list[dict[str, Any]], bytecode: str) -> Contract:
    chain, addresses = world.chain, world.deployment.addresses
    factory = chain.w3.eth.contract(abi=abi, bytecode=bytecode)
    receipt = chain.transact(
        factory.constructor(
            addresses["MeterRegistry"],
            addresses["ReadingLedger"],
            addresses["SettlementToken"],
            PARAMS.slot_s,
            PARAMS.boundary_window_s,
            PARAMS.settlement_window_s,
            PARAMS.min_trade_value,
        )
    )
    return chain.w3.eth.contract(address=to_checksum_address(receipt["contractAddress"]), abi=abi)


@pytest.mark.parametrize("mutant", MUTANTS, ids=MUTANT_IDS)
def test_invariant_catches_seeded_bug(
    world: World, mutant_artifacts: dict[str, Compiled], mutant: Mutant
) -> None:
    world.reset()
    market = deploy_market(world, *mutant_artifacts[mutant.id])
    run = prepare_run(world, market, (mutant.caught_by,))
    with pytest.raises(AssertionError) as caught:
        run_machine(run, MUTANT_SETTINGS)
    message = str(caught.value)
    stats = run.stats
    print(f"\n{mutant.bug}: caught after {stats.examples} runs, {stats.steps} steps\n")
    print(message)
    assert message.startswith(f"invariant {mutant.caught_by}: "), message
