"""EnergyMarket: offers and takes relayed with EIP-712 signatures (createOfferBySig,
takeOfferBySig) and with an ERC-2612 permit (takeOfferBySigWithPermit).

Setup and fixtures: tests/contracts/market/helpers.py and conftest.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.contract import Contract

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.market.orders import offer_typed_data, sign_typed_data, take_typed_data
from tests.contracts.market.helpers import (
    BUDGET,
    HOME_BOB,
    PRICE,
    PV_ALICE,
    QUANTITY,
    offer_of,
    only_event,
    permit_tuple,
    relay_offer,
    relay_take,
    relay_take_with_permit,
    terms,
    trade_of,
)
from tests.contracts.market_helpers import (
    balance,
    create_offer,
    market_domain,
    meter_id,
    register_meter,
    signed_offer,
    signed_take,
)
from tests.contracts.test_settlement_token import permit, signed_permit
from tests.fixtures.chain import latest_time, reverts

# createOfferBySig


def test_create_offer_by_sig_creates_the_offer_for_the_signer(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    deadline = latest_time(chain) + 600
    offer = terms(start)
    signature = signed_offer(chain, market, alice, offer, deadline)

    receipt = relay_offer(chain, market, offer, alice.address, deadline, signature)

    event = only_event(market.events.OfferCreated(), receipt)
    assert (event["offerId"], event["seller"], event["quantityWh"]) == (1, alice.address, QUANTITY)
    assert offer_of(chain, market, 1)["seller"] == alice.address
    assert chain.call(market.functions.nonces(alice.address)) == 1


def test_create_offer_by_sig_uses_the_next_nonce_for_each_offer(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    deadline = latest_time(chain) + 600
    for quantity in (1_000, 2_000):
        offer = terms(start, quantity=quantity)
        signature = signed_offer(chain, market, alice, offer, deadline)
        relay_offer(chain, market, offer, alice.address, deadline, signature)

    assert chain.call(market.functions.nonces(alice.address)) == 2
    assert offer_of(chain, market, 2)["remainingWh"] == 2_000


def test_create_offer_by_sig_reverts_if_signed_by_another_account(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    deadline = latest_time(chain) + 600
    offer = terms(start)
    signature = signed_offer(chain, market, bob, offer, deadline, nonce=0)

    with reverts("EnergyMarketInvalidSignature") as caught:
        relay_offer(chain, market, offer, alice.address, deadline, signature)
    assert to_checksum_address(caught.value.args_decoded[0]) == alice.address


def test_create_offer_by_sig_reverts_if_terms_differ_from_the_signed_ones(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    deadline = latest_time(chain) + 600
    signature = signed_offer(chain, market, alice, terms(start), deadline)

    with reverts("EnergyMarketInvalidSignature"):
        relay_offer(
            chain, market, terms(start, price=PRICE + 1), alice.address, deadline, signature
        )


def test_create_offer_by_sig_reverts_if_the_signature_is_replayed(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    deadline = latest_time(chain) + 600
    offer = terms(start)
    signature = signed_offer(chain, market, alice, offer, deadline)
    relay_offer(chain, market, offer, alice.address, deadline, signature)

    with reverts("EnergyMarketInvalidSignature"):
        relay_offer(chain, market, offer, alice.address, deadline, signature)
    assert chain.call(market.functions.offerCount()) == 1


def test_create_offer_by_sig_reverts_if_signed_for_a_later_nonce(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    deadline = latest_time(chain) + 600
    offer = terms(start)
    signature = signed_offer(chain, market, alice, offer, deadline, nonce=1)

    with reverts("EnergyMarketInvalidSignature"):
        relay_offer(chain, market, offer, alice.address, deadline, signature)


@pytest.mark.parametrize("field", ["chain_id", "verifying_contract"])
def test_create_offer_by_sig_reverts_if_signed_for_another_domain(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    field: str,
) -> None:
    other = {"chain_id": 1, "verifying_contract": deployment.reading_ledger.address}[field]
    domain = dataclasses.replace(market_domain(chain, market), **{field: other})
    deadline = latest_time(chain) + 600
    offer = terms(start)
    signature = sign_typed_data(
        alice.key, offer_typed_data(domain, offer, alice.address, 0, deadline)
    )

    with reverts("EnergyMarketInvalidSignature"):
        relay_offer(chain, market, offer, alice.address, deadline, signature)


def test_create_offer_by_sig_reverts_if_the_deadline_has_passed(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    deadline = latest_time(chain) - 1
    offer = terms(start)
    signature = signed_offer(chain, market, alice, offer, deadline)

    with reverts("EnergyMarketSignatureExpired") as caught:
        relay_offer(chain, market, offer, alice.address, deadline, signature)
    got_deadline, now = caught.value.args_decoded
    assert got_deadline == deadline
    assert now > deadline


def test_create_offer_by_sig_still_requires_the_signer_to_own_the_meter(
    chain: Chain, market: Contract, start: int, bob: LocalAccount
) -> None:
    deadline = latest_time(chain) + 600
    offer = terms(start, meter=PV_ALICE)
    signature = signed_offer(chain, market, bob, offer, deadline)

    with reverts("EnergyMarketNotMeterOwner") as caught:
        relay_offer(chain, market, offer, bob.address, deadline, signature)
    assert caught.value.args_decoded[0] == PV_ALICE


# takeOfferBySig


def test_take_offer_by_sig_takes_for_the_signing_buyer(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    deadline = latest_time(chain) + 600
    signature = signed_take(chain, market, bob, offer_id, HOME_BOB, 2_000, deadline)

    receipt = relay_take(chain, market, offer_id, HOME_BOB, 2_000, bob.address, deadline, signature)

    event = only_event(market.events.OfferTaken(), receipt)
    assert (event["buyer"], event["quantityWh"], event["escrow"]) == (bob.address, 2_000, 500)
    assert trade_of(chain, market, 1)["buyer"] == bob.address
    assert balance(deployment, bob.address) == BUDGET - 500
    assert chain.call(market.functions.nonces(bob.address)) == 1


def test_take_offer_by_sig_reverts_if_signed_by_another_account(
    chain: Chain,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    carol: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    deadline = latest_time(chain) + 600
    signature = signed_take(chain, market, carol, offer_id, HOME_BOB, 2_000, deadline, nonce=0)

    with reverts("EnergyMarketInvalidSignature") as caught:
        relay_take(chain, market, offer_id, HOME_BOB, 2_000, bob.address, deadline, signature)
    assert to_checksum_address(caught.value.args_decoded[0]) == bob.address


def test_take_offer_by_sig_reverts_if_quantity_differs_from_the_signed_one(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    deadline = latest_time(chain) + 600
    signature = signed_take(chain, market, bob, offer_id, HOME_BOB, 2_000, deadline)

    with reverts("EnergyMarketInvalidSignature"):
        relay_take(chain, market, offer_id, HOME_BOB, 4_000, bob.address, deadline, signature)


def test_take_offer_by_sig_reverts_if_the_signature_is_replayed(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    deadline = latest_time(chain) + 600
    signature = signed_take(chain, market, bob, offer_id, HOME_BOB, 1_000, deadline)
    relay_take(chain, market, offer_id, HOME_BOB, 1_000, bob.address, deadline, signature)

    with reverts("EnergyMarketInvalidSignature"):
        relay_take(chain, market, offer_id, HOME_BOB, 1_000, bob.address, deadline, signature)
    assert offer_of(chain, market, offer_id)["remainingWh"] == QUANTITY - 1_000
    assert balance(deployment, bob.address) == BUDGET - 250


@pytest.mark.parametrize("field", ["chain_id", "verifying_contract"])
def test_take_offer_by_sig_reverts_if_signed_for_another_domain(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    field: str,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    other = {"chain_id": 1, "verifying_contract": deployment.reading_ledger.address}[field]
    domain = dataclasses.replace(market_domain(chain, market), **{field: other})
    deadline = latest_time(chain) + 600
    typed = take_typed_data(domain, offer_id, HOME_BOB, 1_000, bob.address, 0, deadline)
    signature = sign_typed_data(bob.key, typed)

    with reverts("EnergyMarketInvalidSignature"):
        relay_take(chain, market, offer_id, HOME_BOB, 1_000, bob.address, deadline, signature)


def test_take_offer_by_sig_reverts_if_the_deadline_has_passed(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    deadline = latest_time(chain) - 1
    signature = signed_take(chain, market, bob, offer_id, HOME_BOB, 1_000, deadline)

    with reverts("EnergyMarketSignatureExpired") as caught:
        relay_take(chain, market, offer_id, HOME_BOB, 1_000, bob.address, deadline, signature)
    assert caught.value.args_decoded[0] == deadline


def test_a_customer_without_ether_buys_with_a_permit_and_a_signed_take(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
) -> None:
    erin: LocalAccount = Account.from_key(keccak(text="erin, who holds no ether"))
    register_meter(chain, deployment, meter_id("HOME-ERIN"), erin.address)
    token = deployment.settlement_token
    chain.transact(token.functions.mint(erin.address, 2_000))
    offer_id = create_offer(chain, market, alice, terms(start))
    deadline = latest_time(chain) + 600

    permit_signature = signed_permit(
        chain, token, erin, erin.address, market.address, 500, deadline
    )
    permit(chain, token, erin.address, market.address, 500, deadline, permit_signature)
    take_signature = signed_take(
        chain, market, erin, offer_id, meter_id("HOME-ERIN"), 2_000, deadline
    )
    relay_take(
        chain,
        market,
        offer_id,
        meter_id("HOME-ERIN"),
        2_000,
        erin.address,
        deadline,
        take_signature,
    )

    assert trade_of(chain, market, 1)["buyer"] == erin.address
    assert balance(deployment, erin.address) == 1_500
    assert chain.w3.eth.get_balance(erin.address) == 0


# takeOfferBySigWithPermit


@dataclass(frozen=True)
class PermitBuyer:
    """erin: owns HOME-ERIN and 2,000 units, holds no ether and has approved nothing."""

    account: LocalAccount
    meter: bytes


@pytest.fixture
def erin(chain: Chain, deployment: Deployment) -> PermitBuyer:
    account: LocalAccount = Account.from_key(keccak(text="erin, who holds no ether"))
    register_meter(chain, deployment, meter_id("HOME-ERIN"), account.address)
    chain.transact(deployment.settlement_token.functions.mint(account.address, 2_000))
    return PermitBuyer(account, meter_id("HOME-ERIN"))


def signed_take_and_permit(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    buyer: PermitBuyer,
    offer_id: int,
    quantity: int,
    *,
    permit_value: int = 500,
    deadline: int | None = None,
    permit_signer: LocalAccount | None = None,
) -> tuple[int, bytes, tuple[Any, ...]]:
    """(deadline, take signature, permit tuple) of `buyer` for a take of `quantity`."""
    deadline = latest_time(chain) + 600 if deadline is None else deadline
    take_signature = signed_take(
        chain, market, buyer.account, offer_id, buyer.meter, quantity, deadline
    )
    permit_signature = signed_permit(
        chain,
        deployment.settlement_token,
        permit_signer or buyer.account,
        buyer.account.address,
        market.address,
        permit_value,
        deadline,
    )
    return deadline, take_signature, permit_tuple(permit_value, deadline, permit_signature)


def test_take_with_permit_buys_for_a_customer_without_ether_in_one_call(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    erin: PermitBuyer,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    deadline, signature, permit_signature = signed_take_and_permit(
        chain, deployment, market, erin, offer_id, 2_000
    )
    address = erin.account.address

    receipt = relay_take_with_permit(
        chain, market, offer_id, erin.meter, 2_000, address, deadline, signature, permit_signature
    )

    assert only_event(market.events.OfferTaken(), receipt)["escrow"] == 500
    assert trade_of(chain, market, 1)["buyer"] == address
    assert balance(deployment, address) == 1_500
    token = deployment.settlement_token
    assert chain.call(token.functions.nonces(address)) == 1  # the permit was used
    assert chain.call(token.functions.allowance(address, market.address)) == 0
    assert chain.w3.eth.get_balance(address) == 0


def test_take_with_permit_reverts_whole_and_leaves_the_permit_unused_if_the_take_is_refused(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    erin: PermitBuyer,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    address = erin.account.address
    deadline, signature, permit_signature = signed_take_and_permit(
        chain, deployment, market, erin, offer_id, QUANTITY + 1
    )

    with reverts("EnergyMarketQuantityExceedsOffer"):
        relay_take_with_permit(
            chain,
            market,
            offer_id,
            erin.meter,
            QUANTITY + 1,
            address,
            deadline,
            signature,
            permit_signature,
        )
    token = deployment.settlement_token
    assert chain.call(token.functions.nonces(address)) == 0
    assert chain.call(token.functions.allowance(address, market.address)) == 0
    assert chain.call(market.functions.nonces(address)) == 0


def test_take_with_permit_goes_through_if_someone_used_the_permit_first(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    erin: PermitBuyer,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    address = erin.account.address
    deadline, signature, permit_signature = signed_take_and_permit(
        chain, deployment, market, erin, offer_id, 2_000
    )
    # A front-runner copies the permit out of the pending call and sends it on its own.
    value, _, v, r, s = permit_signature
    token = deployment.settlement_token
    chain.transact(token.functions.permit(address, market.address, value, deadline, v, r, s))

    relay_take_with_permit(
        chain, market, offer_id, erin.meter, 2_000, address, deadline, signature, permit_signature
    )

    assert trade_of(chain, market, 1)["escrow"] == 500
    assert balance(deployment, address) == 1_500


@pytest.mark.parametrize("fault", ["ERC2612InvalidSigner", "ERC2612ExpiredSignature"])
def test_take_with_permit_reverts_with_the_permits_error_if_it_fails_and_nothing_covers_the_escrow(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    erin: PermitBuyer,
    fault: str,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    now = latest_time(chain)
    # An expired permit expires before the take's own signature does.
    deadline, signature, permit_signature = signed_take_and_permit(
        chain,
        deployment,
        market,
        erin,
        offer_id,
        2_000,
        permit_signer=bob if fault == "ERC2612InvalidSigner" else None,
    )
    if fault == "ERC2612ExpiredSignature":
        expired = signed_permit(
            chain, deployment.settlement_token, erin.account, erin.account.address,
            market.address, 500, now - 1,
        )  # fmt: skip
        permit_signature = permit_tuple(500, now - 1, expired)

    with reverts(fault):
        relay_take_with_permit(
            chain,
            market,
            offer_id,
            erin.meter,
            2_000,
            erin.account.address,
            deadline,
            signature,
            permit_signature,
        )
    assert chain.call(market.functions.tradeCount()) == 0


def test_take_with_permit_reverts_if_the_permitted_value_is_below_the_escrow(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    erin: PermitBuyer,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    deadline, signature, permit_signature = signed_take_and_permit(
        chain, deployment, market, erin, offer_id, 2_000, permit_value=499
    )

    with reverts("ERC20InsufficientAllowance") as caught:
        relay_take_with_permit(
            chain,
            market,
            offer_id,
            erin.meter,
            2_000,
            erin.account.address,
            deadline,
            signature,
            permit_signature,
        )
    _, allowance, needed = caught.value.args_decoded
    assert (allowance, needed) == (499, 500)
