"""EnergyMarket: creating offers directly (createOffer) and cancelling them (cancelOffer).

Setup and fixtures: tests/contracts/market/helpers.py and conftest.py.
"""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3.contract import Contract

from ledger.chain.client import Chain
from tests.contracts.market.helpers import (
    HOME_BOB,
    OPEN,
    PRICE,
    PV_ALICE,
    PV_DAVE,
    QUANTITY,
    SETTLEMENT_WINDOW,
    SLOT,
    offer_of,
    only_event,
    terms,
    trade_of,
)
from tests.contracts.market_helpers import create_offer, meter_id, take_offer
from tests.fixtures.chain import latest_time, reverts

# createOffer


def test_create_offer_stores_the_offer_and_emits_offer_created(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    receipt = chain.transact(market.functions.createOffer(terms(start).as_tuple()), sender=alice)

    assert only_event(market.events.OfferCreated(), receipt) == {
        "offerId": 1,
        "seller": alice.address,
        "sellerMeter": PV_ALICE,
        "quantityWh": QUANTITY,
        "pricePerKWh": PRICE,
        "deliveryStart": start,
        "expiry": start - 60,
    }
    assert offer_of(chain, market, 1) == {
        "seller": alice.address,
        "deliveryStart": start,
        "expiry": start - 60,
        "sellerMeter": PV_ALICE,
        "pricePerKWh": PRICE,
        "remainingWh": QUANTITY,
        "cancelled": False,
    }
    assert chain.call(market.functions.offerCount()) == 1


def test_create_offer_numbers_offers_consecutively(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, dave: LocalAccount
) -> None:
    ids = [
        create_offer(chain, market, alice, terms(start)),
        create_offer(chain, market, dave, terms(start, meter=PV_DAVE)),
        create_offer(chain, market, alice, terms(start + SLOT)),
    ]

    assert ids == [1, 2, 3]
    assert chain.call(market.functions.offerCount()) == 3


def test_create_offer_reverts_if_caller_does_not_own_the_meter(
    chain: Chain, market: Contract, start: int, bob: LocalAccount
) -> None:
    with reverts("EnergyMarketNotMeterOwner") as caught:
        create_offer(chain, market, bob, terms(start, meter=PV_ALICE))
    meter, account = caught.value.args_decoded
    assert (meter, to_checksum_address(account)) == (PV_ALICE, bob.address)


def test_create_offer_reverts_if_meter_unknown(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    with reverts("MeterRegistryUnknownMeter") as caught:
        create_offer(chain, market, alice, terms(start, meter=meter_id("NO-SUCH-METER")))
    assert caught.value.args_decoded == (meter_id("NO-SUCH-METER"),)


def test_create_offer_reverts_if_quantity_is_zero(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    with reverts("EnergyMarketZeroQuantity"):
        create_offer(chain, market, alice, terms(start, quantity=0))


def test_create_offer_reverts_if_price_is_zero(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    with reverts("EnergyMarketZeroPrice"):
        create_offer(chain, market, alice, terms(start, price=0))


@pytest.mark.parametrize("offset", [1, SLOT - 1])
def test_create_offer_reverts_if_delivery_start_is_not_a_slot_boundary(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, offset: int
) -> None:
    with reverts("EnergyMarketUnalignedTime") as caught:
        create_offer(chain, market, alice, terms(start + offset, expiry=start - 60))
    assert caught.value.args_decoded == (start + offset, SLOT)


def test_create_offer_reverts_if_the_slot_could_never_be_settled_or_refunded(
    chain: Chain, market: Contract, alice: LocalAccount
) -> None:
    # The last aligned start whose refund time still fits uint64, and the slot after it.
    latest_start = (2**64 - 1 - SLOT - SETTLEMENT_WINDOW) // SLOT * SLOT
    too_late = latest_start + SLOT

    with reverts("EnergyMarketDeliveryTooLate") as caught:
        create_offer(chain, market, alice, terms(too_late, expiry=latest_start))
    assert caught.value.args_decoded == (too_late,)
    create_offer(chain, market, alice, terms(latest_start, expiry=latest_start))


def test_create_offer_reverts_if_expiry_has_passed(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    expiry = latest_time(chain) - 1

    with reverts("EnergyMarketInvalidExpiry") as caught:
        create_offer(chain, market, alice, terms(start, expiry=expiry))
    got_expiry, got_start, now = caught.value.args_decoded
    assert (got_expiry, got_start) == (expiry, start)
    assert now > expiry


def test_create_offer_reverts_if_expiry_is_after_delivery_start(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    with reverts("EnergyMarketInvalidExpiry") as caught:
        create_offer(chain, market, alice, terms(start, expiry=start + 1))
    assert caught.value.args_decoded[:2] == (start + 1, start)


def test_create_offer_accepts_expiry_at_delivery_start(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start, expiry=start))

    assert offer_of(chain, market, offer_id)["expiry"] == start


# cancelOffer


def test_cancel_offer_withdraws_the_untaken_rest(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    trade_id = take_offer(chain, market, bob, offer_id, HOME_BOB, 2_000)

    receipt = chain.transact(market.functions.cancelOffer(offer_id), sender=alice)

    assert only_event(market.events.OfferCancelled(), receipt) == {
        "offerId": offer_id,
        "withdrawnWh": 3_000,
    }
    offer = offer_of(chain, market, offer_id)
    assert (offer["cancelled"], offer["remainingWh"]) == (True, 0)
    assert trade_of(chain, market, trade_id)["state"] == OPEN


def test_cancel_offer_reverts_if_caller_is_not_the_seller(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))

    with reverts("EnergyMarketNotSeller") as caught:
        chain.transact(market.functions.cancelOffer(offer_id), sender=bob)
    got_offer, account = caught.value.args_decoded
    assert (got_offer, to_checksum_address(account)) == (offer_id, bob.address)
    assert offer_of(chain, market, offer_id)["cancelled"] is False


def test_take_offer_reverts_after_the_offer_is_cancelled(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    chain.transact(market.functions.cancelOffer(offer_id), sender=alice)

    with reverts("EnergyMarketOfferNotOpen") as caught:
        take_offer(chain, market, bob, offer_id, HOME_BOB, 1_000)
    assert caught.value.args_decoded == (offer_id,)


def test_cancel_offer_reverts_if_the_offer_is_fully_taken(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    take_offer(chain, market, bob, offer_id, HOME_BOB, QUANTITY)

    with reverts("EnergyMarketOfferNotOpen") as caught:
        chain.transact(market.functions.cancelOffer(offer_id), sender=alice)
    assert caught.value.args_decoded == (offer_id,)


def test_cancel_offer_reverts_if_already_cancelled(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    chain.transact(market.functions.cancelOffer(offer_id), sender=alice)

    with reverts("EnergyMarketOfferNotOpen"):
        chain.transact(market.functions.cancelOffer(offer_id), sender=alice)


def test_cancel_offer_reverts_if_offer_unknown(
    chain: Chain, market: Contract, alice: LocalAccount
) -> None:
    with reverts("EnergyMarketUnknownOffer") as caught:
        chain.transact(market.functions.cancelOffer(1), sender=alice)
    assert caught.value.args_decoded == (1,)
