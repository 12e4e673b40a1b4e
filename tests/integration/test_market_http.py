"""The market routes over real HTTP: a gateway process on a Ganache whose clock starts a day in the
past, customers with no ether who sign orders and permits, settlement from readings the gateway
verified and anchored itself, and the error codes a client sees on the way. A refused order
mines nothing for the operator, and each signer's relays are limited per hour (the gateway here
allows RELAY_QUOTA).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.chain.client import Chain, LocalChain, connect, free_port
from ledger.chain.deployment import Deployment, ensure_deployed
from ledger.market.client import GatewayError, MarketClient
from ledger.meters.keys import KeyAlgorithm, MeterPrivateKey, generate_key
from ledger.meters.registry import MeterAdmin
from ledger.readings.native import Reading, sign_reading
from ledger.settings import DEV_OPERATOR_KEY
from tests.fixtures.chain import advance_time, latest_time
from tests.fixtures.gateway import OPERATOR_HEADERS, Gateway, ledger_env, start_gateway

SLOT = 3600
PRICE = 250_000  # minor units (millionths) per kWh: 0.25
READING_INTERVAL = 900
RELAY_QUOTA = 3  # relayed orders per signer and hour
OPERATOR = Account.from_key(DEV_OPERATOR_KEY).address


@dataclass
class MarketStack:
    chain: Chain
    deployment: Deployment
    gateway: Gateway
    client: MarketClient


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarketStack]:
    """Ganache starting two days ago (so readings of traded slots are in the wall-clock past)
    and one gateway on it."""
    tmp = tmp_path_factory.mktemp("market")
    node = LocalChain(kind="ganache", port=free_port(), start_time=int(time.time()) - 2 * 86_400)
    node.start()
    env = ledger_env(
        tmp / "data",
        "ganache",
        node.port,
        LEDGER_RPC_URL=node.rpc_url,
        LEDGER_OPERATOR_KEY=DEV_OPERATOR_KEY,
        LEDGER_ANCHOR_INTERVAL_S="0.2",
        LEDGER_RELAY_QUOTA_PER_HOUR=str(RELAY_QUOTA),
    )
    gateway = start_gateway(env, tmp / "gateway.log")
    try:
        chain = connect(node.rpc_url, DEV_OPERATOR_KEY)
        deployment = ensure_deployed(chain, tmp / "data")
        yield MarketStack(chain, deployment, gateway, MarketClient(gateway.base_url))
    finally:
        gateway.stop()
        node.stop()


@dataclass
class Customer:
    account: LocalAccount
    meter: str
    key: MeterPrivateKey
    seq: int = 0


def customer(stack: MarketStack, meter: str, first_reading_at: int) -> Customer:
    """A customer without ether, owning a freshly registered meter."""
    key = generate_key(KeyAlgorithm.P256)
    account: LocalAccount = Account.create()
    MeterAdmin(stack.chain, stack.deployment).register(
        meter, account.address, key.public_key(), first_reading_at
    )
    return Customer(account, meter, key)


def post_readings(stack: MarketStack, who: Customer, points: list[tuple[int, int, int]]) -> None:
    """Signs and posts readings (timestamp, import Wh, export Wh) of the customer's meter."""
    items = []
    for timestamp, import_wh, export_wh in points:
        reading = Reading(
            chain_id=stack.chain.chain_id,
            meter_id=who.meter.encode().ljust(32, b"\x00"),
            seq=who.seq,
            timestamp=timestamp,
            import_wh=import_wh,
            export_wh=export_wh,
            status=0,
        )
        who.seq += 1
        signature = sign_reading(who.key, reading)
        items.append(
            {
                "meter_id": who.meter,
                "canonical": "0x" + reading.encode().hex(),
                "signature": "0x" + signature.hex(),
            }
        )
    answer = httpx.post(f"{stack.gateway.base_url}/v1/readings", json={"readings": items})
    assert answer.status_code == 202, answer.text
    assert all(r["status"] == "accepted" for r in answer.json()["results"]), answer.text


def wait_until_anchored(stack: MarketStack, who: Customer, timeout_s: float = 30) -> None:
    url = f"{stack.gateway.base_url}/v1/meters/{who.meter}/readings/{who.seq - 1}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        anchor = httpx.get(url, headers=OPERATOR_HEADERS).json().get("anchor")
        if anchor is not None and anchor["status"] == "anchored":
            return
        time.sleep(0.2)
    raise AssertionError(f"{who.meter} reading {who.seq - 1} not anchored in {timeout_s}s")


def refused(code: str, status: int) -> Any:
    return pytest.raises(GatewayError, match=f"^{status} {code}:")


def test_market_info_tells_clients_what_to_sign(stack: MarketStack) -> None:
    info = stack.client.info()

    assert info["market"] == stack.deployment.energy_market.address
    assert info["token"] == stack.deployment.settlement_token.address
    assert info["token_decimals"] == 6
    assert info["min_trade_value"] == 10_000  # 0.01, the default
    assert info["relay_quota_per_hour"] == RELAY_QUOTA
    assert info["slot_s"] == SLOT
    domain = info["eip712"]["market_domain"]
    assert domain == {
        "name": "EnergyMarket",
        "version": "1",
        "chainId": stack.chain.chain_id,
        "verifyingContract": stack.deployment.energy_market.address,
    }
    assert [f["name"] for f in info["eip712"]["types"]["Take"]] == [
        "offerId", "buyerMeter", "quantityWh", "buyer", "nonce", "deadline",
    ]  # fmt: skip


def test_a_trade_is_offered_taken_and_settled_over_http_by_customers_without_ether(
    stack: MarketStack,
) -> None:
    client, chain = stack.client, stack.chain
    now = latest_time(chain)
    slot_start = (now // SLOT + 2) * SLOT
    first = slot_start - 2 * READING_INTERVAL
    seller = customer(stack, "HTTP-PV-1", first)
    buyer = customer(stack, "HTTP-HH-1", first)
    token = stack.deployment.settlement_token
    chain.transact(token.functions.mint(buyer.account.address, 10_000_000))

    offer = client.offer(seller.account, seller.meter, 4000, PRICE, slot_start, slot_start - 60)
    assert offer["open"] and offer["remaining_wh"] == 4000 and offer["tx_hash"].startswith("0x")
    assert [o["offer_id"] for o in client.offers()].count(offer["offer_id"]) == 1

    trade = client.take(buyer.account, offer["offer_id"], buyer.meter, 3000, permit_value=750_000)
    assert trade["state"] == "open" and trade["escrow"] == 750_000
    left = httpx.get(f"{stack.gateway.base_url}/v1/offers/{offer['offer_id']}").json()
    assert left["remaining_wh"] == 1000 and left["open"]
    assert chain.w3.eth.get_balance(buyer.account.address) == 0  # never needed ether
    assert token.functions.balanceOf(buyer.account.address).call() == 10_000_000 - 750_000

    with refused("energy_market_delivery_not_over", 409):
        client.settle(trade["trade_id"])

    # Delivery, reading every 15 minutes: the seller exports 400 Wh and the buyer imports 720 Wh
    # per reading interval, so 1,600 and 2,880 Wh in the slot.
    advance_time(chain, slot_start + SLOT + 60 - latest_time(chain))
    with refused("evidence_unavailable", 409):
        client.settle(trade["trade_id"])
    times = [slot_start - READING_INTERVAL + i * READING_INTERVAL for i in range(6)]
    post_readings(stack, seller, [(t, 10, 5 + 400 * i) for i, t in enumerate(times)])
    post_readings(stack, buyer, [(t, 20 + 720 * i, 0) for i, t in enumerate(times)])
    wait_until_anchored(stack, seller)
    wait_until_anchored(stack, buyer)
    # The batch is fresh: until its challenge period is over, settling is refused before any
    # transaction is sent (the market would revert EnergyMarketBatchInChallenge).
    with refused("evidence_in_challenge", 409):
        client.settle(trade["trade_id"])
    ledger = stack.deployment.reading_ledger
    advance_time(chain, int(ledger.functions.challengePeriod().call()))

    settlement = client.settle(trade["trade_id"])

    assert settlement["delivered_wh"] == 1600  # readings at start and end: 4 x 400 Wh exported
    assert settlement["paid"] == 1600 * PRICE // 1000
    assert settlement["refunded"] == 750_000 - settlement["paid"]
    settled = client.trade(trade["trade_id"])
    assert settled["state"] == "settled" and settled["delivered_wh"] == 1600
    assert token.functions.balanceOf(seller.account.address).call() == settlement["paid"]
    mine = client.trades_of(buyer.account.address.lower())
    assert [t["trade_id"] for t in mine] == [trade["trade_id"]]
    with refused("energy_market_trade_not_open", 409):
        client.settle(trade["trade_id"])


def test_orders_signed_wrongly_or_replayed_are_refused_before_any_gas_is_spent(
    stack: MarketStack,
) -> None:
    client, chain = stack.client, stack.chain
    slot_start = (latest_time(chain) // SLOT + 3) * SLOT
    seller = customer(stack, "HTTP-PV-2", slot_start - 3600)
    buyer = customer(stack, "HTTP-HH-2", slot_start - 3600)
    impostor: LocalAccount = Account.create()
    chain.transact(
        stack.deployment.settlement_token.functions.mint(buyer.account.address, 5_000_000)
    )

    with refused("energy_market_not_meter_owner", 409):
        client.offer(impostor, seller.meter, 1000, PRICE, slot_start, slot_start)
    offer = client.offer(seller.account, seller.meter, 1000, PRICE, slot_start, slot_start)
    with refused("energy_market_unaligned_time", 422):
        client.offer(seller.account, seller.meter, 1000, PRICE, slot_start + 1, slot_start)

    block_before = chain.w3.eth.block_number
    forged = client.nonces(buyer.account.address)
    body = {
        "buyer": buyer.account.address,
        "buyer_meter": buyer.meter,
        "quantity_wh": 100,
        "deadline": latest_time(chain) + 600,
        "signature": "0x" + "11" * 65,
    }
    answer = httpx.post(f"{stack.gateway.base_url}/v1/offers/{offer['offer_id']}/take", json=body)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_signature"
    assert chain.w3.eth.block_number == block_before  # nothing was sent
    assert client.nonces(buyer.account.address) == forged

    with refused("energy_market_quantity_exceeds_offer", 409):
        client.take(buyer.account, offer["offer_id"], buyer.meter, 1001, permit_value=5_000_000)
    with refused("energy_market_trade_too_small", 422):  # 39 Wh at 0.25 is under 0.01
        client.take(buyer.account, offer["offer_id"], buyer.meter, 39, permit_value=5_000_000)
    with refused("energy_market_unknown_offer", 404):
        client.take(buyer.account, 10_000, buyer.meter, 40, permit_value=5_000_000)
    with refused("energy_market_unknown_trade", 404):
        client.trade(10_000)
    bad_checksum = buyer.account.address[:2] + buyer.account.address[2:].swapcase()
    if bad_checksum[2:] not in (bad_checksum[2:].lower(), bad_checksum[2:].upper()):
        with refused("invalid_address", 422):
            client.trades_of(bad_checksum)


def test_a_trade_without_evidence_is_refunded_after_the_settlement_window(
    stack: MarketStack, tmp_path: Path
) -> None:
    client, chain = stack.client, stack.chain
    slot_start = (latest_time(chain) // SLOT + 2) * SLOT
    seller = customer(stack, "HTTP-PV-3", slot_start - 3600)
    buyer = customer(stack, "HTTP-HH-3", slot_start - 3600)
    token = stack.deployment.settlement_token
    chain.transact(token.functions.mint(buyer.account.address, 1_000_000))
    offer = client.offer(seller.account, seller.meter, 1000, PRICE, slot_start, slot_start)
    trade = client.take(buyer.account, offer["offer_id"], buyer.meter, 1000, permit_value=250_000)

    with refused("energy_market_settlement_still_open", 409):
        client.refund(trade["trade_id"])
    advance_time(chain, trade["settlement_deadline"] - latest_time(chain) + 1)
    refund = client.refund(trade["trade_id"])

    assert refund["refunded"] == trade["escrow"] == 250_000
    assert client.trade(trade["trade_id"])["state"] == "refunded"
    assert token.functions.balanceOf(buyer.account.address).call() == 1_000_000


# -- what a refused or excessive order costs the operator --------------------------------------


def operator_nonce(chain: Chain) -> int:
    """Transactions the operator has sent, pending ones included."""
    return int(chain.w3.eth.get_transaction_count(OPERATOR, "pending"))


def test_a_refused_take_with_a_permit_mines_nothing_for_the_operator(stack: MarketStack) -> None:
    client, chain = stack.client, stack.chain
    slot_start = (latest_time(chain) // SLOT + 3) * SLOT
    seller = customer(stack, "HTTP-PV-4", slot_start - 3600)
    neighbour = customer(stack, "HTTP-HH-4", slot_start - 3600)
    offer = client.offer(seller.account, seller.meter, 1000, PRICE, slot_start, slot_start)
    # A throw-away key: no ether, no tokens, no meter of its own; it names a neighbour's meter.
    throwaway: LocalAccount = Account.create()
    before = operator_nonce(chain)

    for _ in range(3):
        with refused("energy_market_not_meter_owner", 409):
            client.take(throwaway, offer["offer_id"], neighbour.meter, 100, permit_value=10**9)

    assert operator_nonce(chain) == before
    assert client.nonces(throwaway.address) == {
        "address": throwaway.address,
        "market_nonce": 0,
        "permit_nonce": 0,
    }


def test_a_refused_relayed_offer_mines_nothing_for_the_operator(stack: MarketStack) -> None:
    client, chain = stack.client, stack.chain
    slot_start = (latest_time(chain) // SLOT + 3) * SLOT
    seller = customer(stack, "HTTP-PV-5", slot_start - 3600)
    throwaway: LocalAccount = Account.create()
    before = operator_nonce(chain)

    with refused("energy_market_not_meter_owner", 409):
        client.offer(throwaway, seller.meter, 1000, PRICE, slot_start, slot_start)

    assert operator_nonce(chain) == before


def test_relayed_orders_past_the_signers_hourly_quota_are_refused_with_429_and_retry_after(
    stack: MarketStack,
) -> None:
    client, chain = stack.client, stack.chain
    slot_start = (latest_time(chain) // SLOT + 3) * SLOT
    seller = customer(stack, "HTTP-PV-6", slot_start - 3600)
    for _ in range(RELAY_QUOTA):
        client.offer(seller.account, seller.meter, 1000, PRICE, slot_start, slot_start)
    before = operator_nonce(chain)

    with refused("relay_quota_exceeded", 429) as caught:
        client.offer(seller.account, seller.meter, 1000, PRICE, slot_start, slot_start)

    assert caught.value.retry_after_s is not None and 0 < caught.value.retry_after_s <= 3600
    assert operator_nonce(chain) == before


def test_refused_orders_do_not_count_against_the_relay_quota(stack: MarketStack) -> None:
    client, chain = stack.client, stack.chain
    slot_start = (latest_time(chain) // SLOT + 3) * SLOT
    seller = customer(stack, "HTTP-PV-7", slot_start - 3600)
    for _ in range(RELAY_QUOTA):
        with refused("energy_market_unaligned_time", 422):
            client.offer(seller.account, seller.meter, 1000, PRICE, slot_start + 1, slot_start)

    offers = [
        client.offer(seller.account, seller.meter, 1000, PRICE, slot_start, slot_start)
        for _ in range(RELAY_QUOTA)
    ]

    assert len({o["offer_id"] for o in offers}) == RELAY_QUOTA
