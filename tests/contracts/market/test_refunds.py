"""EnergyMarket: refunds of trades that were not settled in the settlement window.

Setup and fixtures: tests/contracts/market/helpers.py and conftest.py.
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from tests.contracts.market.helpers import (
    BUDGET,
    REFUNDED,
    SETTLED,
    SETTLEMENT_WINDOW,
    Delivery,
    advance_to,
    only_event,
    settle,
    trade_of,
)
from tests.contracts.market_helpers import balance
from tests.fixtures.chain import reverts

# refund


def test_refund_reverts_if_trade_unknown(chain: Chain, market: Contract) -> None:
    with reverts("EnergyMarketUnknownTrade") as caught:
        chain.transact(market.functions.refund(1))
    assert caught.value.args_decoded == (1,)


class TestRefund:
    """Refunds of the `delivery` fixture's trade."""

    def test_refund_reverts_while_settlement_is_open(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        with reverts("EnergyMarketSettlementStillOpen") as caught:
            chain.transact(market.functions.refund(delivery.trade_id))
        assert caught.value.args_decoded == (delivery.trade_id, delivery.end + SETTLEMENT_WINDOW)

    def test_refund_returns_the_whole_escrow_after_the_settlement_window(
        self,
        chain: Chain,
        deployment: Deployment,
        market: Contract,
        delivery: Delivery,
        alice: LocalAccount,
        bob: LocalAccount,
        stranger: LocalAccount,
    ) -> None:
        advance_to(chain, delivery.end + SETTLEMENT_WINDOW)

        receipt = chain.transact(market.functions.refund(delivery.trade_id), sender=stranger)

        assert only_event(market.events.TradeRefunded(), receipt) == {
            "tradeId": delivery.trade_id,
            "refunded": 1_250,
        }
        assert trade_of(chain, market, delivery.trade_id)["state"] == REFUNDED
        assert balance(deployment, bob.address) == BUDGET
        assert balance(deployment, alice.address) == 0
        assert balance(deployment, market.address) == 0

    def test_refund_reverts_if_the_trade_is_settled(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        settle(chain, market, delivery.trade_id, delivery.evidence())
        advance_to(chain, delivery.end + SETTLEMENT_WINDOW)

        with reverts("EnergyMarketTradeNotOpen") as caught:
            chain.transact(market.functions.refund(delivery.trade_id))
        assert caught.value.args_decoded == (delivery.trade_id, SETTLED)

    def test_settle_and_refund_revert_once_the_trade_is_refunded(
        self, chain: Chain, deployment: Deployment, market: Contract, delivery: Delivery
    ) -> None:
        advance_to(chain, delivery.end + SETTLEMENT_WINDOW)
        chain.transact(market.functions.refund(delivery.trade_id))

        with reverts("EnergyMarketTradeNotOpen") as caught:
            settle(chain, market, delivery.trade_id, [])
        assert caught.value.args_decoded == (delivery.trade_id, REFUNDED)
        with reverts("EnergyMarketTradeNotOpen"):
            chain.transact(market.functions.refund(delivery.trade_id))
        assert balance(deployment, market.address) == 0
