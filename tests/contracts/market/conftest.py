"""Fixtures of the EnergyMarket tests: one deployment for the whole package, every test reverted.

The fixtures that override the shared `deployment` (a fresh deployment per test, in
tests/fixtures/chain.py) live here so that the override holds for the market's tests only.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from ledger.chain.client import Chain
from ledger.chain.compiler import ContractArtifact
from ledger.chain.deployment import Deployment, MarketParameters, ensure_deployed
from tests.contracts.market.helpers import (
    BUDGET,
    HOME_BOB,
    HOME_CAROL,
    MIN_TRADE_VALUE,
    PV_ALICE,
    PV_DAVE,
    SLOT,
    Delivery,
    deliver,
    reverted_afterwards,
    trade,
)
from tests.contracts.market_helpers import fund, register_meter
from tests.fixtures.chain import dev_account, latest_time


@pytest.fixture(scope="package")
def carol() -> LocalAccount:
    """A second consumer."""
    return dev_account(4)


@pytest.fixture(scope="package")
def dave() -> LocalAccount:
    """A second prosumer."""
    return dev_account(5)


@pytest.fixture(scope="package")
def package_deployment(
    chain: Chain,
    tmp_path_factory: pytest.TempPathFactory,
    artifacts: dict[str, ContractArtifact],
    alice: LocalAccount,
    bob: LocalAccount,
    carol: LocalAccount,
    dave: LocalAccount,
) -> Deployment:
    """The contracts with PV-ALICE, PV-DAVE, HOME-BOB and HOME-CAROL registered; bob and carol
    hold BUDGET each and have approved the market."""
    deployment = ensure_deployed(
        chain,
        tmp_path_factory.mktemp("market"),
        market=MarketParameters(min_trade_value=MIN_TRADE_VALUE),
    )
    for meter, owner in (
        (PV_ALICE, alice),
        (PV_DAVE, dave),
        (HOME_BOB, bob),
        (HOME_CAROL, carol),
    ):
        register_meter(chain, deployment, meter, owner.address)
    for buyer in (bob, carol):
        fund(chain, deployment, buyer, BUDGET)
    return deployment


@pytest.fixture
def deployment(package_deployment: Deployment, chain: Chain) -> Iterator[Deployment]:
    """The package's contracts; whatever the test does is reverted afterwards."""
    with reverted_afterwards(chain):
        yield package_deployment


@pytest.fixture
def market(deployment: Deployment) -> Contract:
    return deployment.energy_market


@pytest.fixture
def start(chain: Chain, deployment: Deployment) -> int:
    """A delivery slot starting at least an hour from now."""
    return (latest_time(chain) // SLOT + 2) * SLOT


@pytest.fixture(scope="class")
def delivered(
    request: pytest.FixtureRequest,
    chain: Chain,
    package_deployment: Deployment,
    alice: LocalAccount,
    bob: LocalAccount,
) -> Iterator[Delivery]:
    """alice sold bob 5,000 Wh at 250 per kWh (escrow 1,250); she exported 4,000 Wh and he
    imported 3,000 Wh in the slot, which is over: 3,000 Wh are due.

    Set up once per test class (it takes seconds on Ganache) and reverted after the class; only
    classes may use it, or module-level tests would see its trade.
    """
    assert request.cls is not None, "`delivery` is for tests in a class"
    with reverted_afterwards(chain):
        start = (latest_time(chain) // SLOT + 2) * SLOT
        market = package_deployment.energy_market
        trade_id = trade(chain, market, start, alice, bob)
        yield deliver(chain, package_deployment, trade_id, start, exported=4_000, imported=3_000)


@pytest.fixture
def delivery(delivered: Delivery, deployment: Deployment) -> Delivery:
    """The class's delivered trade; whatever the test does is reverted afterwards."""
    return delivered
