"""EnergyMarket: settlement evidence only from batches past their challenge period and never from
a batch proven bad; a trade whose evidence lies in a bad batch is refunded after its window.

Setup and fixtures: tests/contracts/market/helpers.py and conftest.py. Market test readings carry
stand-in signatures and their meters a stand-in key (not a curve point), so any of them proves its
batch bad (`ReadingLedger.proveBadReading`).
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.readings.fraud_proof import BadReadingClaim, BadReadingReason, prove_bad_reading
from tests.contracts.market.helpers import (
    BUDGET,
    HOME_BOB,
    PV_ALICE,
    REFUNDED,
    SETTLEMENT_WINDOW,
    SLOT,
    Delivery,
    MeterSeries,
    advance_to,
    only_event,
    settle,
    trade,
    trade_of,
)
from tests.contracts.market_helpers import (
    AnchoredBatch,
    anchor_readings,
    balance,
    stand_in_signature,
)
from tests.fixtures.chain import advance_time, latest_time, reverts


def delivered_after_slot(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> Delivery:
    """alice sold bob 5,000 Wh; the slot ends, and only then are its readings anchored (so the
    batch is still in its challenge period)."""
    trade_id = trade(chain, market, start, alice, bob)
    seller = MeterSeries.build(PV_ALICE, start, [(30, 4_000)])
    buyer = MeterSeries.build(HOME_BOB, start, [(3_000, 5)])
    advance_to(chain, start + SLOT + 120)
    batch = anchor_readings(
        chain, deployment, [*seller.readings, *buyer.readings], past_challenge=False
    )
    return Delivery(trade_id, start, batch, seller, buyer)


def prove_first_reading_bad(
    chain: Chain, deployment: Deployment, batch: AnchoredBatch, prover: LocalAccount
) -> BadReadingReason:
    first = batch.readings[0]
    claim = BadReadingClaim(
        batch.batch_id, first, first.encode(), stand_in_signature(first), tuple(batch.tree.proof(0))
    )
    return prove_bad_reading(chain, deployment.reading_ledger, claim, sender=prover).reason


def test_settle_reverts_while_the_evidence_batch_is_in_its_challenge_period(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    delivery = delivered_after_slot(chain, deployment, market, start, alice, bob)
    status = chain.call(deployment.reading_ledger.functions.batchStatus(delivery.batch.batch_id))

    with reverts("EnergyMarketBatchInChallenge") as caught:
        settle(chain, market, delivery.trade_id, delivery.evidence())
    assert caught.value.args_decoded == (delivery.batch.batch_id, status[1])


def test_settle_succeeds_once_the_challenge_period_is_over(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    delivery = delivered_after_slot(chain, deployment, market, start, alice, bob)
    status = chain.call(deployment.reading_ledger.functions.batchStatus(delivery.batch.batch_id))
    advance_to(chain, status[1])

    settle(chain, market, delivery.trade_id, delivery.evidence())

    assert trade_of(chain, market, delivery.trade_id)["deliveredWh"] == 3_000


def test_settle_reverts_if_the_evidence_batch_is_proven_bad(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    stranger: LocalAccount,
) -> None:
    delivery = delivered_after_slot(chain, deployment, market, start, alice, bob)
    assert prove_first_reading_bad(chain, deployment, delivery.batch, stranger) is (
        BadReadingReason.BAD_SIGNATURE
    )
    advance_time(chain, int(chain.call(deployment.reading_ledger.functions.challengePeriod())))

    with reverts("EnergyMarketBatchProvenBad") as caught:
        settle(chain, market, delivery.trade_id, delivery.evidence())
    assert caught.value.args_decoded == (delivery.batch.batch_id,)


def test_a_trade_whose_evidence_batch_is_proven_bad_is_refunded_after_its_window(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    stranger: LocalAccount,
) -> None:
    delivery = delivered_after_slot(chain, deployment, market, start, alice, bob)
    prove_first_reading_bad(chain, deployment, delivery.batch, stranger)
    advance_to(chain, delivery.end + SETTLEMENT_WINDOW)
    assert latest_time(chain) >= delivery.end + SETTLEMENT_WINDOW

    receipt = chain.transact(market.functions.refund(delivery.trade_id), sender=stranger)

    assert only_event(market.events.TradeRefunded(), receipt) == {
        "tradeId": delivery.trade_id,
        "refunded": 1_250,
    }
    assert trade_of(chain, market, delivery.trade_id)["state"] == REFUNDED
    assert balance(deployment, bob.address) == BUDGET
    assert balance(deployment, alice.address) == 0
