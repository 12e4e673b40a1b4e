"""EnergyMarket: settling trades from pinned boundaries: the amounts paid and refunded, timing and
state, and no Wh settled twice.

Setup and fixtures: tests/contracts/market/helpers.py and conftest.py.
"""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from tests.contracts.market.helpers import (
    BUDGET,
    HOME_BOB,
    HOME_CAROL,
    PRICE,
    PV_ALICE,
    PV_DAVE,
    SETTLED,
    SETTLEMENT_WINDOW,
    SLOT,
    Delivery,
    MeterSeries,
    advance_to,
    boundary_of,
    deliver,
    events,
    only_event,
    settle,
    terms,
    trade,
    trade_of,
)
from tests.contracts.market_helpers import anchor_readings, balance, create_offer, take_offer
from tests.fixtures.chain import reverts

# settle: amounts


@pytest.mark.parametrize(
    ("exported", "imported", "delivered"),
    [(8_000, 9_000, 5_000), (2_000, 9_000, 2_000), (8_000, 3_000, 3_000)],
    ids=["contracted", "seller-export", "buyer-import"],
)
def test_settle_pays_for_the_least_of_contracted_exported_and_imported(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    exported: int,
    imported: int,
    delivered: int,
) -> None:
    trade_id = trade(chain, market, start, alice, bob)
    done = deliver(chain, deployment, trade_id, start, exported=exported, imported=imported)

    receipt = settle(chain, market, trade_id, done.evidence())

    paid = delivered * PRICE // 1_000
    assert only_event(market.events.TradeSettled(), receipt) == {
        "tradeId": trade_id,
        "deliveredWh": delivered,
        "paid": paid,
        "refunded": 1_250 - paid,
    }
    assert balance(deployment, alice.address) == paid
    assert balance(deployment, bob.address) == BUDGET - paid
    assert balance(deployment, market.address) == 0
    settled = trade_of(chain, market, trade_id)
    assert (settled["state"], settled["deliveredWh"], settled["paid"]) == (SETTLED, delivered, paid)
    assert chain.call(market.functions.exportSettled(PV_ALICE, start)) == delivered
    assert chain.call(market.functions.importSettled(HOME_BOB, start)) == delivered


@pytest.mark.parametrize(
    ("exported", "paid"),
    [(333, 2), (142, 0)],
    ids=["2.331-to-2", "0.994-to-0"],
)
def test_settle_rounds_the_payment_down_and_refunds_the_rest(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    exported: int,
    paid: int,
) -> None:
    trade_id = trade(chain, market, start, alice, bob, quantity=333, price=7)  # escrow 3
    done = deliver(chain, deployment, trade_id, start, exported=exported, imported=1_000)

    receipt = settle(chain, market, trade_id, done.evidence())

    event = only_event(market.events.TradeSettled(), receipt)
    assert (event["deliveredWh"], event["paid"], event["refunded"]) == (exported, paid, 3 - paid)
    assert event["paid"] + event["refunded"] == trade_of(chain, market, trade_id)["escrow"] == 3
    assert balance(deployment, alice.address) == paid
    assert balance(deployment, bob.address) == BUDGET - paid
    assert balance(deployment, market.address) == 0


# settle: timing and state


def test_settle_reverts_before_the_delivery_slot_ends(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    trade_id = trade(chain, market, start, alice, bob)
    advance_to(chain, start + SLOT // 2)

    with reverts("EnergyMarketDeliveryNotOver") as caught:
        settle(chain, market, trade_id, [])
    assert caught.value.args_decoded == (trade_id, start + SLOT)


def test_settle_reverts_if_a_register_decreased_between_the_boundaries(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    trade_id = trade(chain, market, start, alice, bob)
    done = deliver(chain, deployment, trade_id, start, exported=-100, imported=3_000)

    with reverts("EnergyMarketRegisterDecreased") as caught:
        settle(chain, market, trade_id, done.evidence())
    assert caught.value.args_decoded == (PV_ALICE, start + SLOT)


# settle: no double counting, pinned boundaries


def test_two_trades_from_one_seller_meter_share_its_export(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    carol: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start, quantity=6_000))
    to_bob = take_offer(chain, market, bob, offer_id, HOME_BOB, 3_000)
    to_carol = take_offer(chain, market, carol, offer_id, HOME_CAROL, 3_000)
    # alice exports 4,000 Wh; bob and carol each import more than they bought.
    done = deliver(chain, deployment, to_bob, start, exported=4_000, imported=5_000)
    carol_series = MeterSeries.build(HOME_CAROL, start, [(5_000, 0)])
    carol_batch = anchor_readings(chain, deployment, carol_series.readings)
    settle(chain, market, to_bob, done.evidence())

    # alice's boundaries are pinned: only carol's are needed.
    receipt = settle(
        chain,
        market,
        to_carol,
        [carol_series.evidence(carol_batch, 0), carol_series.evidence(carol_batch, 1)],
    )

    event = only_event(market.events.TradeSettled(), receipt)
    assert (event["deliveredWh"], event["paid"], event["refunded"]) == (1_000, 250, 500)
    assert trade_of(chain, market, to_bob)["deliveredWh"] == 3_000
    assert chain.call(market.functions.exportSettled(PV_ALICE, start)) == 4_000
    assert balance(deployment, alice.address) == 1_000  # 4,000 Wh at 250 per kWh, once
    assert balance(deployment, carol.address) == BUDGET - 250
    assert balance(deployment, market.address) == 0


def test_two_trades_into_one_buyer_meter_share_its_import(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    dave: LocalAccount,
    bob: LocalAccount,
) -> None:
    from_alice = trade(chain, market, start, alice, bob, quantity=3_000)
    from_dave = trade(chain, market, start, dave, bob, seller_meter=PV_DAVE, quantity=3_000)
    # bob imports 4,000 Wh; alice and dave each export more than they sold.
    done = deliver(chain, deployment, from_alice, start, exported=5_000, imported=4_000)
    dave_series = MeterSeries.build(PV_DAVE, start, [(0, 5_000)])
    dave_batch = anchor_readings(chain, deployment, dave_series.readings)
    settle(chain, market, from_alice, done.evidence())

    receipt = settle(
        chain,
        market,
        from_dave,
        [dave_series.evidence(dave_batch, 0), dave_series.evidence(dave_batch, 1)],
    )

    assert only_event(market.events.TradeSettled(), receipt)["deliveredWh"] == 1_000
    assert chain.call(market.functions.importSettled(HOME_BOB, start)) == 4_000
    assert balance(deployment, alice.address) == 750
    assert balance(deployment, dave.address) == 250
    assert balance(deployment, bob.address) == BUDGET - 1_000  # 4,000 Wh, once


def test_a_trade_gets_nothing_once_the_export_is_used_up(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    first = take_offer(chain, market, bob, offer_id, HOME_BOB, 2_000)
    second = take_offer(chain, market, bob, offer_id, HOME_BOB, 2_000)
    done = deliver(chain, deployment, first, start, exported=2_000, imported=9_000)
    settle(chain, market, first, done.evidence())

    receipt = settle(chain, market, second, [])

    assert only_event(market.events.TradeSettled(), receipt) == {
        "tradeId": second,
        "deliveredWh": 0,
        "paid": 0,
        "refunded": 500,
    }
    assert balance(deployment, alice.address) == 500
    assert balance(deployment, bob.address) == BUDGET - 500


def test_adjacent_slots_share_their_boundary(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    first = trade(chain, market, start, alice, bob, quantity=9_000)
    second = trade(chain, market, start + SLOT, alice, bob, quantity=9_000)
    seller = MeterSeries.build(PV_ALICE, start, [(0, 1_200), (0, 2_300)])
    buyer = MeterSeries.build(HOME_BOB, start, [(9_000, 0), (9_000, 0)])
    batch = anchor_readings(chain, deployment, [*seller.readings, *buyer.readings])
    advance_to(chain, start + 2 * SLOT + 120)
    settle(
        chain,
        market,
        first,
        [seller.evidence(batch, k) for k in (0, 1)] + [buyer.evidence(batch, k) for k in (0, 1)],
    )

    # The end boundary of the first slot is the start boundary of the second: only the second
    # slot's end boundaries are needed.
    settle(chain, market, second, [seller.evidence(batch, 2), buyer.evidence(batch, 2)])

    assert trade_of(chain, market, first)["deliveredWh"] == 1_200
    assert trade_of(chain, market, second)["deliveredWh"] == 2_300
    shared = seller.at(1)
    assert boundary_of(chain, market, PV_ALICE, start + SLOT) == (
        shared.seq,
        shared.import_wh,
        shared.export_wh,
        True,
    )


class TestSettle:
    """Settling the `delivery` fixture's trade: events, timing, state, evidence count."""

    def test_settle_pins_the_four_boundaries(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        receipt = settle(chain, market, delivery.trade_id, delivery.evidence())

        pinned = events(market.events.BoundaryPinned(), receipt)
        expected = []
        for series in (delivery.seller, delivery.buyer):
            for k in (0, 1):
                r = series.at(k)
                expected.append(
                    {
                        "meterId": series.meter,
                        "time": delivery.start + k * SLOT,
                        "seq": r.seq,
                        "importWh": r.import_wh,
                        "exportWh": r.export_wh,
                    }
                )
                assert boundary_of(chain, market, series.meter, delivery.start + k * SLOT) == (
                    r.seq,
                    r.import_wh,
                    r.export_wh,
                    True,
                )
        assert pinned == expected

    def test_anyone_may_settle_a_trade(
        self, chain: Chain, market: Contract, delivery: Delivery, stranger: LocalAccount
    ) -> None:
        call = market.functions.settle(delivery.trade_id, delivery.evidence())
        chain.transact(call, sender=stranger)

        assert trade_of(chain, market, delivery.trade_id)["deliveredWh"] == 3_000

    def test_settle_reverts_once_the_settlement_window_has_closed(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        deadline = delivery.end + SETTLEMENT_WINDOW
        advance_to(chain, deadline)

        with reverts("EnergyMarketSettlementClosed") as caught:
            settle(chain, market, delivery.trade_id, delivery.evidence())
        assert caught.value.args_decoded == (delivery.trade_id, deadline)

    def test_settle_reverts_if_the_trade_is_already_settled(
        self, chain: Chain, deployment: Deployment, market: Contract, delivery: Delivery
    ) -> None:
        settle(chain, market, delivery.trade_id, delivery.evidence())

        with reverts("EnergyMarketTradeNotOpen") as caught:
            settle(chain, market, delivery.trade_id, [])
        assert caught.value.args_decoded == (delivery.trade_id, SETTLED)
        assert balance(deployment, market.address) == 0

    @pytest.mark.parametrize("trade_id", [0, 2])
    def test_settle_reverts_if_trade_unknown(
        self, chain: Chain, market: Contract, delivery: Delivery, trade_id: int
    ) -> None:
        with reverts("EnergyMarketUnknownTrade") as caught:
            settle(chain, market, trade_id, [])
        assert caught.value.args_decoded == (trade_id,)

    def test_settle_reverts_with_more_than_four_evidence_items(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        evidence = delivery.evidence()

        with reverts("EnergyMarketTooMuchEvidence") as caught:
            settle(chain, market, delivery.trade_id, [*evidence, evidence[0]])
        assert caught.value.args_decoded == (5,)

    @pytest.mark.parametrize(
        "missing", [0, 1, 2, 3], ids=["seller-start", "seller-end", "buyer-start", "buyer-end"]
    )
    def test_settle_reverts_if_a_boundary_is_not_pinned(
        self, chain: Chain, market: Contract, delivery: Delivery, missing: int
    ) -> None:
        evidence = delivery.evidence()
        meter = (PV_ALICE, PV_ALICE, HOME_BOB, HOME_BOB)[missing]
        time = delivery.start + (missing % 2) * SLOT

        with reverts("EnergyMarketBoundaryNotPinned") as caught:
            settle(chain, market, delivery.trade_id, evidence[:missing] + evidence[missing + 1 :])
        assert caught.value.args_decoded == (meter, time)
