"""`GET /v1/meters/{meter_id}` is answered from the read model: a meter with 21 key epochs costs
the gateway no more chain calls than one with a single key, and none per epoch.

The gateway reaches Anvil through a counting JSON-RPC proxy (tests/fixtures/rpc_proxy.py). The
meters are registered and rotated first, straight on the chain; the gateway then starts, its
indexer catches up from the deployment block and polls no more during the test
(LEDGER_INDEXER_POLL_S is long, anchoring is off), so every call the proxy counts while a meter is
asked for is that answer's. With the indexer idle, a meter changed after the start shows at once
only if the gateway indexes its own registrar transactions or reads the registry where the read
model is behind (ledger/meters/history.py): the last tests show both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.schemas.meters import MeterPublic
from ledger.chain.client import Chain, LocalChain, connect
from ledger.chain.deployment import Deployment, ensure_deployed
from ledger.meters.keys import KeyAlgorithm, encode_public_key, generate_key
from ledger.meters.registry import MeterAdmin
from ledger.settings import DEV_OPERATOR_KEY
from tests.contracts.market_helpers import DUMMY_KEY, P256, meter_id, register_meter
from tests.fixtures.chain import dev_account, latest_time
from tests.fixtures.gateway import Gateway, ledger_env, start_gateway
from tests.fixtures.rpc_proxy import RpcProxy, rpc_proxy_for

ROTATIONS = 20
TOKEN = "registrar-secret-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MANY = "RM-MANY-KEYS"  # registered, rotated ROTATIONS times, its first key revoked
ONE = "RM-ONE-KEY"
OWNER = dev_account(3).address


def new_public_key() -> str:
    """A P-256 public key the gateway accepts (the routes refuse points off the curve)."""
    return "0x" + encode_public_key(generate_key(KeyAlgorithm.P256).public_key()).hex()


@pytest.fixture(scope="module")
def proxy(anvil: LocalChain) -> Iterator[RpcProxy]:
    yield from rpc_proxy_for(anvil.rpc_url)


def rotate(chain: Chain, deployment: Deployment, meter: str, valid_from: int) -> None:
    chain.transact(
        deployment.meter_registry.functions.rotateKey(meter_id(meter), P256, DUMMY_KEY, valid_from)
    )


@pytest.fixture(scope="module")
def registry(
    anvil: LocalChain, proxy: RpcProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, Chain, Deployment]]:
    """A meter with 21 key epochs and one with one, then a gateway on the chain."""
    tmp = tmp_path_factory.mktemp("meter-read-model")
    chain = connect(anvil.rpc_url, DEV_OPERATOR_KEY)
    deployment = ensure_deployed(chain, tmp / "data")
    register_meter(chain, deployment, meter_id(MANY), OWNER)
    register_meter(chain, deployment, meter_id(ONE), OWNER)
    chain.transact(deployment.meter_registry.functions.revokeKey(meter_id(MANY)))
    start = latest_time(chain) + 3600
    for i in range(ROTATIONS):
        rotate(chain, deployment, MANY, start + i)
    env = ledger_env(
        tmp / "data",
        "anvil",
        anvil.port,
        LEDGER_RPC_URL=proxy.url,
        LEDGER_OPERATOR_KEY=DEV_OPERATOR_KEY,
        LEDGER_REGISTRAR_TOKEN=TOKEN,
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
        yield gateway, chain, deployment
    finally:
        gateway.stop()


def get_meter(gateway: Gateway, proxy: RpcProxy, meter: str) -> Any:
    """GET the meter, the proxy counting only this request's chain calls."""
    proxy.reset()
    answer = httpx.get(f"{gateway.base_url}/v1/meters/{meter}", timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def registry_json(chain: Chain, deployment: Deployment, meter: str) -> Any:
    """The meter as the registry's own calls give it, in the route's JSON."""
    view = MeterAdmin(chain, deployment).show(meter)
    return MeterPublic.model_validate(view).model_dump(mode="json")


def test_a_meter_with_21_key_epochs_costs_no_more_chain_calls_than_one_with_one(
    registry: tuple[Gateway, Chain, Deployment], proxy: RpcProxy
) -> None:
    gateway, _, _ = registry

    one = get_meter(gateway, proxy, ONE)
    calls_for_one = proxy.total()
    many = get_meter(gateway, proxy, MANY)
    calls_for_many = proxy.total()

    assert len(one["keys"]) == 1 and len(many["keys"]) == ROTATIONS + 1
    assert calls_for_many == calls_for_one <= 2
    assert proxy.calls["eth_call"] == 0  # no registry read at all


def test_a_meter_from_the_read_model_is_the_json_the_registry_gives(
    registry: tuple[Gateway, Chain, Deployment], proxy: RpcProxy
) -> None:
    gateway, chain, deployment = registry

    many = get_meter(gateway, proxy, MANY)

    assert many["keys"][0]["revoked_at"] is not None
    assert many == registry_json(chain, deployment, MANY)


def test_a_meter_registered_through_the_registrar_route_shows_at_once(
    registry: tuple[Gateway, Chain, Deployment], proxy: RpcProxy
) -> None:
    gateway, _, _ = registry
    body = {"meter_id": "RM-NEW-1", "owner": OWNER, "public_key": new_public_key()}

    posted = httpx.post(f"{gateway.base_url}/v1/meters", json=body, headers=AUTH, timeout=60)
    assert posted.status_code == 201, posted.text
    shown = get_meter(gateway, proxy, "RM-NEW-1")

    changed = posted.json()
    del changed["transaction_hash"], changed["block_number"]
    assert shown == changed


def test_a_meter_rotated_through_the_registrar_route_is_then_answered_from_the_read_model(
    registry: tuple[Gateway, Chain, Deployment], proxy: RpcProxy
) -> None:
    gateway, chain, deployment = registry
    body = {"public_key": new_public_key(), "valid_from": latest_time(chain) + 7200}

    rotated = httpx.post(
        f"{gateway.base_url}/v1/meters/{ONE}/rotate", json=body, headers=AUTH, timeout=60
    )
    assert rotated.status_code == 200, rotated.text
    shown = get_meter(gateway, proxy, ONE)

    assert len(shown["keys"]) == 2 and shown == registry_json(chain, deployment, ONE)
    assert proxy.calls["eth_call"] == 0 and proxy.total() == 1  # the head, nothing behind it


def test_a_meter_rotated_elsewhere_shows_at_once_though_the_indexer_has_not_seen_it(
    registry: tuple[Gateway, Chain, Deployment], proxy: RpcProxy
) -> None:
    gateway, chain, deployment = registry
    before = get_meter(gateway, proxy, MANY)

    rotate(chain, deployment, MANY, before["keys"][-1]["valid_from"] + 1)  # not via the gateway
    after = get_meter(gateway, proxy, MANY)

    assert len(after["keys"]) == ROTATIONS + 2
    assert after == registry_json(chain, deployment, MANY)
