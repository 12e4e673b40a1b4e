"""`GET /v1/customers/{address}/trades` is answered from the read model: a customer with 1,000
trades costs the gateway no more chain calls than one with a single trade.

The gateway reaches Anvil through a counting JSON-RPC proxy (tests/fixtures/rpc_proxy.py). The
trades are made first, straight on the chain (one offer, 1,000 takes sent without waiting for
each receipt and mined a few blocks at a time); the gateway then starts, its indexer catches up
from the deployment block, and polls no more during the test (LEDGER_INDEXER_POLL_S is long,
anchoring is off), so every call the proxy counts while a listing is asked for is the listing's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from ledger.chain.client import GAS_PRICE_WEI, Chain, LocalChain, connect
from ledger.chain.deployment import Deployment, ensure_deployed
from ledger.market.orders import OfferTerms
from ledger.settings import DEV_OPERATOR_KEY
from tests.contracts.market_helpers import create_offer, fund, meter_id, register_meter, take_offer
from tests.fixtures.chain import dev_account, latest_time
from tests.fixtures.gateway import Gateway, ledger_env, start_gateway
from tests.fixtures.rpc_proxy import RpcProxy, rpc_proxy_for

TRADES = 1000
SLOT = 3600
PRICE = 250_000
TAKE_WH = 100  # 25,000 minor units each: above the default minimum trade value
SELLER_METER = meter_id("RM-PV-1")
BUYER_METER = meter_id("RM-HH-1")
SMALL_METER = meter_id("RM-HH-2")


@pytest.fixture(scope="module")
def proxy(anvil: LocalChain) -> Iterator[RpcProxy]:
    yield from rpc_proxy_for(anvil.rpc_url)


def rpc(chain: Chain, method: str, *params: Any) -> Any:
    return chain.w3.provider.make_request(method, list(params))["result"]  # type: ignore[arg-type]


def take_many(
    chain: Chain, deployment: Deployment, buyer: LocalAccount, offer_id: int, count: int
) -> None:
    """`count` takes by `buyer`: signed locally, sent in one JSON-RPC batch without waiting for
    receipts, then mined (automine off meanwhile, so a block holds as many as fit)."""
    market = deployment.energy_market
    data = market.encode_abi("takeOffer", args=[offer_id, BUYER_METER, TAKE_WH])
    nonce = chain.w3.eth.get_transaction_count(buyer.address)
    batch = []
    for i in range(count):
        tx = {
            "to": market.address,
            "data": data,
            "value": 0,
            "gas": 400_000,
            "gasPrice": GAS_PRICE_WEI,
            "nonce": nonce + i,
            "chainId": chain.chain_id,
        }
        raw = "0x" + bytes(buyer.sign_transaction(tx).raw_transaction).hex()
        batch.append(
            {"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [raw]}
        )
    rpc(chain, "evm_setAutomine", False)
    try:
        answers = httpx.post(chain.rpc_url, json=batch, timeout=120).json()
        assert all("result" in a for a in answers), answers[:3]
        while int(rpc(chain, "txpool_status")["pending"], 16):
            rpc(chain, "evm_mine")
    finally:
        rpc(chain, "evm_setAutomine", True)
    hashes = [a["result"] for a in answers]
    assert all(chain.w3.eth.get_transaction_receipt(h)["status"] == 1 for h in hashes[-1:])
    assert int(market.functions.tradeCount().call()) >= count


@pytest.fixture(scope="module")
def trading_day(
    anvil: LocalChain, proxy: RpcProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, Chain, LocalAccount, LocalAccount]]:
    """1,000 trades of one buyer and one of another, then a gateway on the chain."""
    tmp = tmp_path_factory.mktemp("read-model")
    chain = connect(anvil.rpc_url, DEV_OPERATOR_KEY)
    deployment = ensure_deployed(chain, tmp / "data")
    seller, buyer, small = dev_account(5), dev_account(6), dev_account(7)
    register_meter(chain, deployment, SELLER_METER, seller.address)
    register_meter(chain, deployment, BUYER_METER, buyer.address)
    register_meter(chain, deployment, SMALL_METER, small.address)
    fund(chain, deployment, buyer, 100_000_000)
    fund(chain, deployment, small, 1_000_000)
    start = (latest_time(chain) // SLOT + 2) * SLOT
    terms = OfferTerms(SELLER_METER, (TRADES + 1) * TAKE_WH, PRICE, start, start - 60)
    offer_id = create_offer(chain, deployment.energy_market, seller, terms)
    take_offer(chain, deployment.energy_market, small, offer_id, SMALL_METER, TAKE_WH)
    take_many(chain, deployment, buyer, offer_id, TRADES)
    env = ledger_env(
        tmp / "data",
        "anvil",
        anvil.port,
        LEDGER_RPC_URL=proxy.url,
        LEDGER_OPERATOR_KEY=DEV_OPERATOR_KEY,
        LEDGER_ANCHOR_ENABLED="false",
        LEDGER_INDEXER_POLL_S="3600",  # one catch-up pass at start, then quiet
    )
    gateway = start_gateway(env, tmp / "gateway.log")
    try:
        head = chain.w3.eth.block_number
        deadline = time.monotonic() + 60
        health = f"{gateway.base_url}/healthz"
        while httpx.get(health, timeout=30).json()["indexer"]["indexed_block"] != head:
            assert time.monotonic() < deadline, "the indexer did not catch up in 60 s"
            time.sleep(0.1)
        yield gateway, chain, buyer, small
    finally:
        gateway.stop()


def trades_with_calls(gateway: Gateway, proxy: RpcProxy, account: str) -> tuple[Any, int]:
    proxy.reset()
    answer = httpx.get(f"{gateway.base_url}/v1/customers/{account}/trades", timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json(), proxy.total()


def test_a_customer_with_1000_trades_costs_no_more_chain_calls_than_one_with_one(
    trading_day: tuple[Gateway, Chain, LocalAccount, LocalAccount], proxy: RpcProxy
) -> None:
    gateway, _, buyer, small = trading_day
    trades_with_calls(gateway, proxy, small.address)  # the market's parameters, read once

    one, calls_for_one = trades_with_calls(gateway, proxy, small.address)
    many, calls_for_many = trades_with_calls(gateway, proxy, buyer.address)

    assert len(one["trades"]) == 1 and len(many["trades"]) == TRADES
    assert calls_for_many == calls_for_one == 0


def test_the_listed_trades_are_those_the_contract_shows_one_by_one(
    trading_day: tuple[Gateway, Chain, LocalAccount, LocalAccount], proxy: RpcProxy
) -> None:
    gateway, _, buyer, _ = trading_day
    listed, _ = trades_with_calls(gateway, proxy, buyer.address)

    trades = listed["trades"]
    assert [t["trade_id"] for t in trades] == list(range(2, TRADES + 2))
    for trade in (trades[0], trades[-1]):
        one = httpx.get(f"{gateway.base_url}/v1/trades/{trade['trade_id']}").json()
        assert trade == one
