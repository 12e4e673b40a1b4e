"""One transaction sender per operator key: two worker processes and the anchorer send with the
same key at once, and no transaction is refused for its nonce.

Every worker of `ledger serve` relays registrations and market orders with the operator key, and
the worker holding the anchoring lease anchors with it too. A nonce read in one process and a
send in another must not interleave, or two transactions carry the same nonce and one is refused
("incorrect nonce", "underpriced", "can't be replaced"), which the client sees as a 5xx.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.chain.client import free_port
from ledger.chain.txsender import PostgresSenderLock, advisory_key
from ledger.market.client import GatewayError, MarketClient
from ledger.meters.keys import KeyAlgorithm, MeterPrivateKey, encode_public_key, generate_key
from ledger.readings.native import Reading, sign_reading
from tests.fixtures.gateway import OPERATOR_HEADERS, Gateway, ledger_env, start_gateway

TOKEN = "registrar-secret-for-the-sender-test"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SLOT = 3600
PRICE = 250_000  # millionths of the currency per kWh: 0.25
SELLERS = 25
NEW_METERS = 25  # with the sellers' offers: 50 operator transactions requested at once
NONCE_ERRORS = ("nonce", "underpriced", "can't be replaced", "already known")


@dataclass
class Seller:
    account: LocalAccount
    meter: str


@pytest.fixture
def busy_gateway(tmp_path: Path) -> Iterator[Gateway]:
    """`ledger serve` with two workers, the registrar API and a fast anchorer, on its own
    Ganache (the default configuration, apart from the worker count)."""
    env = ledger_env(
        tmp_path / "data",
        "ganache",
        free_port(),
        LEDGER_WORKERS="2",
        LEDGER_REGISTRAR_TOKEN=TOKEN,
        LEDGER_ANCHOR_INTERVAL_S="0.05",
    )
    gateway = start_gateway(env, tmp_path / "gateway.log")
    yield gateway
    gateway.stop()


def register(
    gateway: Gateway, meter: str, owner: str, key: MeterPrivateKey | None = None
) -> httpx.Response:
    """POST /v1/meters as the registrar: the meter with a P-256 key valid from an hour ago."""
    key = key or generate_key(KeyAlgorithm.P256)
    body = {
        "meter_id": meter,
        "owner": owner,
        "algorithm": "p256",
        "public_key": "0x" + encode_public_key(key.public_key()).hex(),
        "valid_from": int(time.time()) - SLOT,
    }
    return httpx.post(f"{gateway.base_url}/v1/meters", json=body, headers=AUTH, timeout=120)


def post_readings_until(
    gateway: Gateway, meter: str, key: MeterPrivateKey, chain_id: int, done: threading.Event
) -> int:
    """Posts one signed reading at a time until `done`; returns how many were accepted."""
    seq = 0
    start = int(time.time()) - SLOT
    with httpx.Client(timeout=120) as client:
        while not done.is_set() or seq < 3:
            reading = Reading(
                chain_id=chain_id,
                meter_id=meter.encode().ljust(32, b"\x00"),
                seq=seq,
                timestamp=start + seq,
                import_wh=seq,
                export_wh=0,
                status=0,
            )
            item = {
                "meter_id": meter,
                "canonical": "0x" + reading.encode().hex(),
                "signature": "0x" + sign_reading(key, reading).hex(),
            }
            answer = client.post(f"{gateway.base_url}/v1/readings", json={"readings": [item]})
            assert answer.status_code == 202, answer.text
            assert answer.json()["results"][0]["status"] == "accepted", answer.text
            seq += 1
    return seq


def offer(client: MarketClient, seller: Seller, slot_start: int) -> tuple[int, str]:
    """Relays one signed offer; (HTTP status, body or error)."""
    try:
        created = client.offer(
            seller.account, seller.meter, 1000, PRICE, slot_start, slot_start - 60
        )
    except GatewayError as error:
        return error.status, str(error)
    return 201, str(created)


def wait_until_anchored(gateway: Gateway, meter: str, seq: int, timeout_s: float = 60) -> None:
    url = f"{gateway.base_url}/v1/meters/{meter}/readings/{seq}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        anchor = httpx.get(url, headers=OPERATOR_HEADERS).json().get("anchor")
        if anchor is not None and anchor["status"] == "anchored":
            return
        time.sleep(0.1)
    raise AssertionError(f"reading {seq} of {meter} not anchored in {timeout_s}s")


def test_concurrent_registrations_and_relays_on_two_workers_while_anchoring_get_no_nonce_errors(
    busy_gateway: Gateway,
) -> None:
    gateway = busy_gateway
    client = MarketClient(gateway.base_url)
    chain_id = int(client.info()["eip712"]["market_domain"]["chainId"])
    sellers = [Seller(Account.create(), f"SEND-PV-{i}") for i in range(SELLERS)]
    for seller in sellers:  # one at a time: only the burst below is concurrent
        answer = register(gateway, seller.meter, seller.account.address)
        assert answer.status_code == 201, answer.text
    reading_key = generate_key(KeyAlgorithm.P256)
    assert register(gateway, "SEND-READER", sellers[0].account.address, reading_key).is_success
    slot_start = (client.chain_time() // SLOT + 2) * SLOT
    new_meters = [f"SEND-NEW-{i}" for i in range(NEW_METERS)]

    done = threading.Event()
    with ThreadPoolExecutor(max_workers=SELLERS + NEW_METERS + 1) as pool:
        readings = pool.submit(
            post_readings_until, gateway, "SEND-READER", reading_key, chain_id, done
        )
        registrations = [
            pool.submit(register, gateway, meter, sellers[0].account.address)
            for meter in new_meters
        ]
        offers = [pool.submit(offer, client, seller, slot_start) for seller in sellers]
        answers = [(r.result().status_code, r.result().text) for r in registrations]
        answers += [o.result() for o in offers]
        done.set()
        posted = readings.result()
    wait_until_anchored(gateway, "SEND-READER", posted - 1)

    refused = [(status, text) for status, text in answers if not 200 <= status < 300]
    assert refused == []
    for meter in new_meters:
        shown = httpx.get(f"{gateway.base_url}/v1/meters/{meter}")
        assert shown.status_code == 200, shown.text
    # The access lines name request paths (`/v1/market/nonces/...`): not errors.
    lines = gateway.log().lower().splitlines()
    log = "\n".join(line for line in lines if '"logger": "ledger.access"' not in line)
    assert [e for e in NONCE_ERRORS if e in log] == []


def test_a_held_postgres_sender_lock_excludes_another_gateways_sender(postgres_url: str) -> None:
    import psycopg

    operator = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    probe = "SELECT pg_try_advisory_lock(%s)"
    lock = PostgresSenderLock(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as other_gateway:
        try:
            with lock.hold(operator):
                while_held = other_gateway.execute(probe, (advisory_key(operator),)).fetchone()
            after = other_gateway.execute(probe, (advisory_key(operator),)).fetchone()
        finally:
            lock.close()

    assert (while_held, after) == ((False,), (True,))
