"""EnergyMarket keeps its invariants under random trading: the state machine of
tests/contracts/market_machine.py (rules, model, invariants) run against the contract itself.

Size of the clean run: settings of 30 examples x up to 80 steps; Hypothesis actually ran the
machine 40 times (its first twenty-odd examples are deliberately short, 1 to 17 steps, and
examples that run out of data do not count towards the 30) for 1610 steps in all, each followed
by the invariant check (about 20 s on an idle machine; 78 s with other jobs on both cores).
Generation is derandomized, so the figure is the same on every run; the test prints it with the
count of every outcome of every kind of call.
"""

from __future__ import annotations

import pytest

from tests.contracts.market_machine import (
    CHECKS,
    CLEAN_SETTINGS,
    World,
    prepare_run,
    run_machine,
)

pytestmark = [pytest.mark.chain, pytest.mark.slow]


def test_market_keeps_its_invariants_under_random_trading(world: World) -> None:
    world.reset()
    run = prepare_run(world, world.deployment.energy_market, CHECKS)
    run_machine(run, CLEAN_SETTINGS)

    stats = run.stats
    print(
        f"\n{stats.examples} runs, {stats.steps} steps "
        f"(settings: {CLEAN_SETTINGS.max_examples} x {CLEAN_SETTINGS.stateful_step_count})"
    )
    for outcome, count in sorted(stats.outcomes.items()):
        print(f"  {count:4d}  {outcome}")
    assert stats.examples >= CLEAN_SETTINGS.max_examples
    # The runs reached the paths the invariants are about, not just the refusals.
    for outcome in (
        "takeOffer: ok",
        "settle: ok",
        "settle: short delivery",
        "settle: with already pinned evidence",
        "settle: after another trade of the same meter and slot",
        "settle: EnergyMarketTradeNotOpen",
        "settle: EnergyMarketBoundaryNotPinned",
        "settle: EnergyMarketDeliveryNotOver",
        "settle: EnergyMarketSettlementClosed",
        "takeOffer: EnergyMarketOfferExpired",
        "takeOffer: EnergyMarketTradeTooSmall",
        "createOffer: EnergyMarketTradeTooSmall",
        "refund: ok",
        "refund: EnergyMarketSettlementStillOpen",
        "cancelOffer: ok",
    ):
        assert stats.outcomes[outcome] > 0, f"no step had the outcome {outcome!r}"
