"""EnergyMarket: taking offers directly (takeOffer), with the escrow in exact token units.

Setup and fixtures: tests/contracts/market/helpers.py and conftest.py.
"""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3.contract import Contract

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.market.views import escrow_for
from tests.contracts.market.helpers import (
    BUDGET,
    HOME_BOB,
    HOME_CAROL,
    OPEN,
    PRICE,
    PV_ALICE,
    PV_DAVE,
    QUANTITY,
    advance_to,
    offer_of,
    only_event,
    terms,
    trade_of,
)
from tests.contracts.market_helpers import balance, create_offer, fund, take_offer
from tests.fixtures.chain import reverts

# takeOffer


def test_take_offer_escrows_the_price_and_records_the_trade(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))

    receipt = chain.transact(market.functions.takeOffer(offer_id, HOME_BOB, 4_000), sender=bob)

    assert only_event(market.events.OfferTaken(), receipt) == {
        "tradeId": 1,
        "offerId": offer_id,
        "buyer": bob.address,
        "buyerMeter": HOME_BOB,
        "quantityWh": 4_000,
        "escrow": 1_000,
    }
    assert trade_of(chain, market, 1) == {
        "offerId": offer_id,
        "seller": alice.address,
        "deliveryStart": start,
        "buyer": bob.address,
        "quantityWh": 4_000,
        "sellerMeter": PV_ALICE,
        "buyerMeter": HOME_BOB,
        "pricePerKWh": PRICE,
        "deliveredWh": 0,
        "state": OPEN,
        "escrow": 1_000,
        "paid": 0,
    }
    assert balance(deployment, bob.address) == BUDGET - 1_000
    assert balance(deployment, market.address) == 1_000
    assert offer_of(chain, market, offer_id)["remainingWh"] == QUANTITY - 4_000


def test_partial_takes_reduce_the_remaining_quantity(
    chain: Chain,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    carol: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))

    first = take_offer(chain, market, bob, offer_id, HOME_BOB, 2_000)
    second = take_offer(chain, market, carol, offer_id, HOME_CAROL, 1_000)

    assert (first, second) == (1, 2)
    assert offer_of(chain, market, offer_id)["remainingWh"] == 2_000
    assert trade_of(chain, market, second)["buyer"] == carol.address
    assert chain.call(market.functions.tradeCount()) == 2


@pytest.mark.parametrize(
    ("quantity", "price", "escrow"),
    [(333, 7, 3), (1_000, 7, 7), (143, 7, 2), (1_001, 999, 1_000)],
    ids=["2.331-to-3", "exact", "1.001-to-2", "999.999-to-1000"],
)
def test_take_offer_rounds_the_escrow_up_to_a_whole_minor_unit(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    quantity: int,
    price: int,
    escrow: int,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start, quantity=quantity, price=price))

    trade_id = take_offer(chain, market, bob, offer_id, HOME_BOB, quantity)

    assert trade_of(chain, market, trade_id)["escrow"] == escrow == escrow_for(quantity, price)
    assert balance(deployment, bob.address) == BUDGET - escrow
    assert balance(deployment, market.address) == escrow


def test_take_offer_reverts_if_the_escrow_does_not_fit_128_bits(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    # 1 MWh at ceil(2^128 / 1,000) per kWh: the escrow is 2^128 + 544 minor units, which a
    # plain uint128 cast would turn into an escrow of 544 (within bob's budget).
    price = -(-(2**128) // 1_000)
    offer_id = create_offer(chain, market, alice, terms(start, quantity=1_000_000, price=price))

    with reverts("SafeCastOverflowedUintDowncast") as caught:
        take_offer(chain, market, bob, offer_id, HOME_BOB, 1_000_000)
    assert caught.value.args_decoded == (128, escrow_for(1_000_000, price))
    assert escrow_for(1_000_000, price) == 2**128 + 544
    assert balance(deployment, bob.address) == BUDGET


def test_take_offer_reverts_if_quantity_exceeds_the_remaining(
    chain: Chain,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    carol: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    take_offer(chain, market, bob, offer_id, HOME_BOB, 3_000)

    with reverts("EnergyMarketQuantityExceedsOffer") as caught:
        take_offer(chain, market, carol, offer_id, HOME_CAROL, 2_001)
    assert caught.value.args_decoded == (offer_id, 2_001, 2_000)


def test_take_offer_reverts_if_quantity_is_zero(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))

    with reverts("EnergyMarketZeroQuantity"):
        take_offer(chain, market, bob, offer_id, HOME_BOB, 0)


def test_take_offer_reverts_once_the_offer_has_expired(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start, expiry=start - 600))
    advance_to(chain, start - 600)

    with reverts("EnergyMarketOfferExpired") as caught:
        take_offer(chain, market, bob, offer_id, HOME_BOB, 1_000)
    assert caught.value.args_decoded == (offer_id, start - 600)


def test_take_offer_reverts_if_buyer_meter_is_the_seller_meter(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))

    with reverts("EnergyMarketSameMeter") as caught:
        take_offer(chain, market, alice, offer_id, PV_ALICE, 1_000)
    assert caught.value.args_decoded == (PV_ALICE,)


def test_take_offer_reverts_if_buyer_does_not_own_the_meter(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))

    with reverts("EnergyMarketNotMeterOwner") as caught:
        take_offer(chain, market, bob, offer_id, HOME_CAROL, 1_000)
    meter, account = caught.value.args_decoded
    assert (meter, to_checksum_address(account)) == (HOME_CAROL, bob.address)


def test_take_offer_reverts_without_allowance(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    chain.transact(deployment.settlement_token.functions.approve(market.address, 999), sender=bob)

    with reverts("ERC20InsufficientAllowance") as caught:
        take_offer(chain, market, bob, offer_id, HOME_BOB, 4_000)
    spender, allowance, needed = caught.value.args_decoded
    assert (to_checksum_address(spender), allowance, needed) == (market.address, 999, 1_000)
    assert offer_of(chain, market, offer_id)["remainingWh"] == QUANTITY


def test_take_offer_reverts_without_balance(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    dave: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    fund(chain, deployment, dave, 999)

    with reverts("ERC20InsufficientBalance") as caught:
        take_offer(chain, market, dave, offer_id, PV_DAVE, 4_000)
    account, held, needed = caught.value.args_decoded
    assert (to_checksum_address(account), held, needed) == (dave.address, 999, 1_000)


@pytest.mark.parametrize("offer_id", [0, 2])
def test_take_offer_reverts_if_offer_unknown(
    chain: Chain,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    offer_id: int,
) -> None:
    create_offer(chain, market, alice, terms(start))

    with reverts("EnergyMarketUnknownOffer") as caught:
        take_offer(chain, market, bob, offer_id, HOME_BOB, 1_000)
    assert caught.value.args_decoded == (offer_id,)
