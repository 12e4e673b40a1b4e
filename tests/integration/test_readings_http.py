"""POST /v1/readings and GET /v1/meters/{id}/readings/{seq} over real HTTP, on Ganache and Anvil."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from ledger.anchoring.merkle import verify as merkle_verify
from ledger.chain.client import connect, free_port
from ledger.chain.deployment import ensure_deployed
from ledger.meters.keys import KeyAlgorithm, MeterPrivateKey, generate_key
from ledger.meters.registry import MeterAdmin, meter_id_bytes
from ledger.readings.native import Reading, anchored_leaf, sign_reading
from ledger.settings import DEV_OPERATOR_KEY
from tests.fixtures.chain import dev_account
from tests.fixtures.gateway import OPERATOR_HEADERS, Gateway, ledger_env, start_gateway

CHAIN_ID = 1337
METER = "MTR-HTTP-READ"


def register_meter(gateway: Gateway, meter_id: str) -> tuple[MeterPrivateKey, int]:
    """Registers a P-256 meter on the gateway's chain, its key valid from an hour ago."""
    chain = connect(f"http://127.0.0.1:{gateway.env['LEDGER_CHAIN_PORT']}", DEV_OPERATOR_KEY)
    deployment = ensure_deployed(chain, Path(gateway.env["LEDGER_DATA_DIR"]))
    key = generate_key(KeyAlgorithm.P256)
    start = int(time.time()) - 3_600
    MeterAdmin(chain, deployment).register(
        meter_id, dev_account(1).address, key.public_key(), valid_from=start
    )
    return key, start


def signed(key: MeterPrivateKey, start: int, seq: int, meter_id: str = METER) -> dict[str, str]:
    reading = Reading(
        chain_id=CHAIN_ID,
        meter_id=meter_id_bytes(meter_id),
        seq=seq,
        timestamp=start + 60 * seq,
        import_wh=1_000 + 250 * seq,
        export_wh=10 * seq,
    )
    return {
        "meter_id": meter_id,
        "canonical": "0x" + reading.encode().hex(),
        "signature": "0x" + sign_reading(key, reading).hex(),
    }


def post(gateway: Gateway, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{gateway.base_url}/v1/readings", json=body, timeout=30)


def test_signed_batch_is_accepted_and_reposting_it_returns_the_original_receipts(
    gateway: Gateway,
) -> None:
    key, start = register_meter(gateway, METER)
    batch = {"readings": [signed(key, start, seq) for seq in (1, 2, 3)]}

    first = post(gateway, batch)
    again = post(gateway, batch)

    assert first.status_code == 202, first.text
    results = first.json()["results"]
    assert [(r["index"], r["status"], r["code"], r["seq"]) for r in results] == [
        (0, "accepted", None, 1),
        (1, "accepted", None, 2),
        (2, "accepted", None, 3),
    ]
    canonical = bytes.fromhex(batch["readings"][0]["canonical"][2:])
    signature = bytes.fromhex(batch["readings"][0]["signature"][2:])
    leaf = anchored_leaf(canonical, canonical, signature)  # version 2: raw r || s as sent
    assert results[0]["receipt"]["leaf"] == "0x" + leaf.hex()
    assert results[0]["receipt"]["key_epoch"] == 0
    assert again.status_code == 202
    assert [r["status"] for r in again.json()["results"]] == ["duplicate"] * 3
    assert [r["receipt"] for r in again.json()["results"]] == [r["receipt"] for r in results]


def test_reading_with_a_bad_signature_is_rejected_with_bad_signature(gateway: Gateway) -> None:
    key, start = register_meter(gateway, METER)
    forged = signed(generate_key(KeyAlgorithm.P256), start, 1)

    response = post(gateway, forged)

    assert response.status_code == 202, response.text
    (result,) = response.json()["results"]
    assert (result["status"], result["code"]) == ("rejected", "bad_signature")
    assert result["receipt"] is None
    assert response.json()["rejected"] == 1


def test_stored_reading_is_served_with_its_exact_bytes_and_receipt(
    tmp_path: Path, chain_kind: str
) -> None:
    # Anchoring off: with it on, the anchorer could batch the reading between the POST and the
    # GET (a busy machine makes that likely), and the reading must be seen not yet anchored.
    env = ledger_env(tmp_path / "data", chain_kind, free_port(), LEDGER_ANCHOR_ENABLED="false")
    gateway = start_gateway(env, tmp_path / "gateway.log")
    try:
        key, start = register_meter(gateway, METER)
        body = signed(key, start, 7)
        receipt = post(gateway, body).json()["results"][0]["receipt"]

        stored = httpx.get(
            f"{gateway.base_url}/v1/meters/{METER}/readings/7", headers=OPERATOR_HEADERS
        )
        missing = httpx.get(
            f"{gateway.base_url}/v1/meters/{METER}/readings/8", headers=OPERATOR_HEADERS
        )
    finally:
        gateway.stop()

    assert stored.status_code == 200, stored.text
    reading = stored.json()
    assert (reading["canonical"], reading["signature"]) == (body["canonical"], body["signature"])
    assert (reading["seq"], reading["timestamp"], reading["import_wh"]) == (7, start + 420, 2_750)
    assert reading["receipt"] == receipt
    assert reading["batch_id"] is None
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "reading_not_found"


def test_batch_over_max_batch_is_refused_whole_with_413(tmp_path: Path, chain_kind: str) -> None:
    env = ledger_env(tmp_path / "data", chain_kind, free_port(), LEDGER_MAX_BATCH="3")
    gateway = start_gateway(env, tmp_path / "gateway.log")
    try:
        key, start = register_meter(gateway, METER)
        response = post(gateway, {"readings": [signed(key, start, s) for s in range(1, 5)]})
        stored = httpx.get(
            f"{gateway.base_url}/v1/meters/{METER}/readings/1", headers=OPERATOR_HEADERS
        )
    finally:
        gateway.stop()
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "batch_too_large"
    assert stored.status_code == 404


def test_with_two_workers_readings_are_anchored_once_and_their_proofs_verify(
    tmp_path: Path, chain_kind: str
) -> None:
    # The gateway as shipped runs one worker per core; here two, sharing the store and the chain,
    # and one anchoring lease.
    env = ledger_env(
        tmp_path / "data",
        chain_kind,
        free_port(),
        LEDGER_WORKERS="2",
        LEDGER_ANCHOR_INTERVAL_S="0.2",
    )
    running = start_gateway(env, tmp_path / "gateway.log")
    try:
        key, start = register_meter(running, METER)
        for first in (1, 11):  # two requests, perhaps answered by different workers
            body = {"readings": [signed(key, start, seq) for seq in range(first, first + 10)]}
            assert post(running, body).json()["accepted"] == 10

        deadline = time.monotonic() + 60
        views: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            views = [
                httpx.get(
                    f"{running.base_url}/v1/meters/{METER}/readings/{seq}", headers=OPERATOR_HEADERS
                ).json()
                for seq in range(1, 21)
            ]
            if all(v["anchor"] is not None for v in views):
                break
            time.sleep(0.3)
        health = httpx.get(f"{running.base_url}/healthz").json()
        check_anchored(views, health, chain_kind, env, tmp_path)
    finally:
        running.stop()


def check_anchored(
    views: list[dict[str, Any]],
    health: dict[str, Any],
    chain_kind: str,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    assert health["chain"]["managed"] == chain_kind
    assert health["anchoring"]["state"] in ("idle", "standby")
    chain = connect(f"http://127.0.0.1:{env['LEDGER_CHAIN_PORT']}", DEV_OPERATOR_KEY)
    ledger = ensure_deployed(chain, tmp_path / "data").reading_ledger
    batch_ids = {v["anchor"]["batch_id"] for v in views}
    assert int(chain.call(ledger.functions.lastBatchId())) == max(batch_ids)
    for view in views:
        anchor = view["anchor"]
        leaf = bytes.fromhex(view["leaf"][2:])
        canonical = bytes.fromhex(view["canonical"][2:])
        signature = bytes.fromhex(view["signature"][2:])
        assert leaf == anchored_leaf(canonical, canonical, signature)
        proof = [bytes.fromhex(p[2:]) for p in anchor["proof"]]
        root = bytes(chain.call(ledger.functions.batchRoot(anchor["batch_id"])))
        assert "0x" + root.hex() == anchor["root"]
        assert merkle_verify(proof, root, leaf)
        assert chain.call(ledger.functions.verifyReading(anchor["batch_id"], leaf, proof))
        receipt = chain.w3.eth.get_transaction_receipt(anchor["tx_hash"])
        assert receipt["blockNumber"] == anchor["block_number"]
