"""EnergyMarket: the constructor and its configuration, the minimum trade value, and the views of
offers, trades and boundaries.

Setup and fixtures: tests/contracts/market/helpers.py and conftest.py.
"""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.types import TxReceipt

from ledger.chain.client import Chain
from ledger.chain.compiler import ContractArtifact
from ledger.chain.deployment import Deployment
from tests.contracts.market.helpers import (
    BOUNDARY_WINDOW,
    BUDGET,
    HOME_BOB,
    MIN_TRADE_VALUE,
    PV_ALICE,
    SETTLEMENT_WINDOW,
    SLOT,
    boundary_of,
    offer_of,
    terms,
    trade,
    trade_of,
)
from tests.contracts.market_helpers import balance, create_offer, take_offer
from tests.fixtures.chain import reverts

# constructor and configuration


def test_constructor_stores_contracts_and_windows(
    chain: Chain, deployment: Deployment, market: Contract
) -> None:
    f = market.functions
    assert chain.call(f.meterRegistry()) == deployment.meter_registry.address
    assert chain.call(f.readingLedger()) == deployment.reading_ledger.address
    assert chain.call(f.settlementToken()) == deployment.settlement_token.address
    assert chain.call(f.slotSeconds()) == SLOT
    assert chain.call(f.boundaryWindow()) == BOUNDARY_WINDOW
    assert chain.call(f.settlementWindow()) == SETTLEMENT_WINDOW
    assert chain.call(f.minTradeValue()) == MIN_TRADE_VALUE
    assert (chain.call(f.offerCount()), chain.call(f.tradeCount())) == (0, 0)


def deploy_market(
    chain: Chain,
    deployment: Deployment,
    artifacts: dict[str, ContractArtifact],
    slot: int,
    window: int,
    settlement: int,
    min_value: int = MIN_TRADE_VALUE,
) -> TxReceipt:
    artifact = artifacts["EnergyMarket"]
    factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    constructor = factory.constructor(
        deployment.meter_registry.address,
        deployment.reading_ledger.address,
        deployment.settlement_token.address,
        slot,
        window,
        settlement,
        min_value,
    )
    return chain.transact(constructor)


def test_constructor_accepts_a_boundary_window_of_a_whole_slot(
    chain: Chain, deployment: Deployment, artifacts: dict[str, ContractArtifact]
) -> None:
    receipt = deploy_market(chain, deployment, artifacts, 900, 900, SETTLEMENT_WINDOW)

    address = receipt["contractAddress"]
    deployed = chain.w3.eth.contract(address=address, abi=artifacts["EnergyMarket"].abi)
    f = deployed.functions
    assert (chain.call(f.slotSeconds()), chain.call(f.boundaryWindow())) == (900, 900)


@pytest.mark.parametrize(
    ("slot", "window", "settlement", "min_value"),
    [
        (0, 0, 60, 1),
        (3_600, 0, 60, 1),
        (3_600, 3_601, 60, 1),
        (3_600, 900, 0, 1),
        (3_600, 900, 60, 0),
    ],
    ids=[
        "zero-slot",
        "zero-window",
        "window-longer-than-slot",
        "zero-settlement-window",
        "zero-minimum-trade-value",
    ],
)
def test_constructor_reverts_if_configuration_invalid(
    chain: Chain,
    deployment: Deployment,
    artifacts: dict[str, ContractArtifact],
    slot: int,
    window: int,
    settlement: int,
    min_value: int,
) -> None:
    with reverts("EnergyMarketInvalidConfiguration") as caught:
        deploy_market(chain, deployment, artifacts, slot, window, settlement, min_value)
    assert caught.value.args_decoded == (slot, window, settlement, min_value)


def test_constructor_reverts_if_the_challenge_period_is_not_shorter_than_the_settlement_window(
    chain: Chain, deployment: Deployment, artifacts: dict[str, ContractArtifact]
) -> None:
    challenge = int(chain.call(deployment.reading_ledger.functions.challengePeriod()))

    with reverts("EnergyMarketChallengeNotShorterThanWindow") as caught:
        deploy_market(chain, deployment, artifacts, 3_600, 900, challenge)
    assert caught.value.args_decoded == (challenge, challenge)


def test_constructor_accepts_a_settlement_window_one_second_longer_than_the_challenge_period(
    chain: Chain, deployment: Deployment, artifacts: dict[str, ContractArtifact]
) -> None:
    challenge = int(chain.call(deployment.reading_ledger.functions.challengePeriod()))

    receipt = deploy_market(chain, deployment, artifacts, 3_600, 900, challenge + 1)

    assert receipt["status"] == 1


# the minimum trade value


MICRO_PRICE = 250_000  # 0.25 per kWh in the token's millionths
CENT = 10_000  # the gateway's default minimum, 0.01


@pytest.fixture
def cent_market(
    chain: Chain,
    deployment: Deployment,
    artifacts: dict[str, ContractArtifact],
    bob: LocalAccount,
) -> Contract:
    """A market whose trades must be worth at least a cent; bob has approved it."""
    receipt = deploy_market(
        chain, deployment, artifacts, SLOT, BOUNDARY_WINDOW, SETTLEMENT_WINDOW, CENT
    )
    market = chain.w3.eth.contract(
        address=receipt["contractAddress"], abi=artifacts["EnergyMarket"].abi
    )
    token = deployment.settlement_token
    chain.transact(token.functions.approve(market.address, BUDGET), sender=bob)
    return market


def test_create_offer_reverts_if_worth_less_than_the_minimum_trade_value(
    chain: Chain, cent_market: Contract, start: int, alice: LocalAccount
) -> None:
    # 39 Wh at 0.25 per kWh is worth 0.00975: no take of it could reach a cent.
    small = terms(start, quantity=39, price=MICRO_PRICE)

    with reverts("EnergyMarketTradeTooSmall") as caught:
        create_offer(chain, cent_market, alice, small)
    assert caught.value.args_decoded == (9_750, CENT)
    assert chain.call(cent_market.functions.offerCount()) == 0


def test_take_offer_reverts_if_worth_less_than_the_minimum_trade_value(
    chain: Chain,
    deployment: Deployment,
    cent_market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    offer_id = create_offer(
        chain, cent_market, alice, terms(start, quantity=4_000, price=MICRO_PRICE)
    )

    with reverts("EnergyMarketTradeTooSmall") as caught:
        take_offer(chain, cent_market, bob, offer_id, HOME_BOB, 39)
    assert caught.value.args_decoded == (9_750, CENT)
    assert offer_of(chain, cent_market, offer_id)["remainingWh"] == 4_000
    assert balance(deployment, bob.address) == BUDGET


def test_take_offer_accepts_a_take_worth_exactly_the_minimum_trade_value(
    chain: Chain,
    deployment: Deployment,
    cent_market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    offer_id = create_offer(
        chain, cent_market, alice, terms(start, quantity=4_000, price=MICRO_PRICE)
    )

    trade_id = take_offer(chain, cent_market, bob, offer_id, HOME_BOB, 40)

    assert trade_of(chain, cent_market, trade_id)["escrow"] == CENT
    assert balance(deployment, bob.address) == BUDGET - CENT


# views


def test_offer_and_trade_views_revert_for_unknown_ids(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    trade(chain, market, start, alice, bob)

    for offer_id in (0, 2):
        with reverts("EnergyMarketUnknownOffer"):
            chain.call(market.functions.offer(offer_id))
    for trade_id in (0, 2):
        with reverts("EnergyMarketUnknownTrade"):
            chain.call(market.functions.trade(trade_id))


def test_an_unpinned_boundary_reads_as_zero(chain: Chain, market: Contract, start: int) -> None:
    assert boundary_of(chain, market, PV_ALICE, start) == (0, 0, 0, False)
