"""Cold start: a gateway worker that has never seen a fleet takes its first batch of readings
without one chain call per meter, its keys coming from the event indexer's read model.

5,000 P-256 meters are registered on Anvil (signed transactions sent in JSON-RPC batches, so it
takes seconds) before `ledger serve` starts; the gateway reaches the chain through a counting
JSON-RPC proxy and its indexer reads the registrations at start, as it would in production. Then
the chain moves on by a block that the indexer has not seen yet (its next poll is a minute
away), as an anchoring transaction or any other would, and one batch of 5,000 readings, one per
meter, is posted. The chain calls the gateway makes while answering it are counted at the proxy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from ledger.chain.client import LocalChain, connect, free_port
from ledger.chain.deployment import ensure_deployed
from ledger.meters.keys import KeyAlgorithm, MeterPrivateKey, encode_public_key, generate_key
from ledger.meters.registry import meter_id_bytes
from ledger.readings.native import Reading, sign_reading
from ledger.settings import DEV_OPERATOR_KEY
from tests.fixtures.gateway import ledger_env, start_gateway
from tests.fixtures.rpc_proxy import RpcProxy, rpc_proxy_for

pytestmark = pytest.mark.slow

METERS = 5_000
CHAIN_CALLS_AT_MOST = 10
"""A pass of the indexer and a block read or two: a constant, whatever the number of meters."""


@pytest.fixture
def proxy(anvil: LocalChain) -> Iterator[RpcProxy]:
    yield from rpc_proxy_for(anvil.rpc_url)


def register_fleet(
    rpc_url: str, data_dir: Path, valid_from: int
) -> list[tuple[str, MeterPrivateKey]]:
    """Deploys the contracts into `data_dir` and registers METERS new P-256 meters with one
    signed `registerMeter` transaction each, sent in JSON-RPC batches; returns (meter id, key)."""
    chain = connect(rpc_url, DEV_OPERATOR_KEY)
    registry = ensure_deployed(chain, data_dir).meter_registry
    operator = Account.from_key(DEV_OPERATOR_KEY)
    nonce = chain.w3.eth.get_transaction_count(operator.address, "pending")
    gas_price = 2 * int(chain.w3.eth.gas_price)
    fleet: list[tuple[str, MeterPrivateKey]] = []
    raw: list[str] = []
    for n in range(METERS):
        meter_id = f"COLD-{n:05d}"
        key = generate_key(KeyAlgorithm.P256)
        data = registry.encode_abi(
            "registerMeter",
            args=[
                meter_id_bytes(meter_id),
                operator.address,
                int(KeyAlgorithm.P256),
                encode_public_key(key.public_key()),
                valid_from,
            ],
        )
        transaction = {
            "to": registry.address,
            "data": data,
            "nonce": nonce + n,
            "gas": 400_000,
            "gasPrice": gas_price,
            "chainId": chain.chain_id,
        }
        raw.append("0x" + operator.sign_transaction(transaction).raw_transaction.hex())
        fleet.append((meter_id, key))
    with httpx.Client(timeout=120) as client:
        for start in range(0, len(raw), 500):
            calls = [
                {"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [tx]}
                for i, tx in enumerate(raw[start : start + 500])
            ]
            answers = client.post(rpc_url, json=calls).json()
            assert all("result" in a for a in answers), answers[:3]
            # Anvil mines them after answering, a block's gas at a time, and may leave the last
            # ones waiting for the next transaction: mine until they are in (with thousands
            # waiting it stops answering, hence a batch at a time).
            mined = start + len(calls)
            deadline = time.monotonic() + 60
            while chain.w3.eth.get_transaction_count(operator.address) < nonce + mined:
                assert time.monotonic() < deadline, f"registrations up to {mined} not mined"
                chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    return fleet


def wait_until_indexed(base_url: str, block: int, *, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    indexer: dict[str, object] = {}
    while time.monotonic() < deadline:
        indexer = httpx.get(f"{base_url}/healthz", timeout=10).json()["indexer"]
        indexed = indexer.get("indexed_block")
        if isinstance(indexed, int) and indexed >= block:
            return
        time.sleep(0.2)
    raise AssertionError(f"the indexer did not reach block {block}: {indexer}")


def test_a_first_batch_from_5000_unseen_meters_costs_a_constant_number_of_chain_calls(
    tmp_path: Path, anvil: LocalChain, proxy: RpcProxy
) -> None:
    data_dir = tmp_path / "data"
    chain = connect(anvil.rpc_url, DEV_OPERATOR_KEY)
    now = int(chain.w3.eth.get_block("latest")["timestamp"])
    fleet = register_fleet(anvil.rpc_url, data_dir, valid_from=now - 3_600)
    registered_at = int(chain.w3.eth.block_number)
    env = ledger_env(
        data_dir,
        "anvil",
        free_port(),
        LEDGER_RPC_URL=proxy.url,
        LEDGER_OPERATOR_KEY=DEV_OPERATOR_KEY,
        # Both polls are timed, not per meter: one indexer pass at start and the next long after
        # the batch, and no revocation poll during it, however long a loaded machine takes to
        # check 5,000 signatures (CI once counted both: 11 calls, the batch having taken >60 s).
        LEDGER_INDEXER_POLL_S="900",
        LEDGER_KEY_REVOCATION_POLL_S="900",
        LEDGER_ANCHOR_ENABLED="false",  # no anchoring transactions while calls are counted
    )
    gateway = start_gateway(env, tmp_path / "gateway.log")
    try:
        wait_until_indexed(gateway.base_url, registered_at)
        chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        body = {
            "readings": [
                {
                    "meter_id": meter_id,
                    "canonical": "0x" + reading.encode().hex(),
                    "signature": "0x" + sign_reading(key, reading).hex(),
                }
                for meter_id, key in fleet
                for reading in [
                    Reading(
                        chain_id=chain.chain_id,
                        meter_id=meter_id_bytes(meter_id),
                        seq=1,
                        timestamp=now - 60,
                        import_wh=1_000,
                        export_wh=0,
                    )
                ]
            ]
        }
        proxy.reset()

        answer = httpx.post(f"{gateway.base_url}/v1/readings", json=body, timeout=300)

        calls = dict(proxy.calls)
        assert answer.status_code == 202
        statuses = [r["status"] for r in answer.json()["results"]]
        assert statuses == ["accepted"] * METERS
        assert calls.get("eth_call", 0) == 0, calls  # no registry read per meter
        assert sum(calls.values()) <= CHAIN_CALLS_AT_MOST, calls
    finally:
        gateway.stop()
