"""The gateway over real HTTP with a real chain process, on Ganache and on Anvil."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from ledger.meters.keys import KeyAlgorithm
from tests.fixtures.chain import dev_account
from tests.fixtures.gateway import LEDGER_BIN, Gateway, start_gateway, write_public_pem


def test_healthz_reports_chain_contracts_and_database(gateway: Gateway, chain_kind: str) -> None:
    health = httpx.get(f"{gateway.base_url}/healthz").json()
    assert health["status"] == "ok"
    assert health["chain"]["chain_id"] == 1337
    assert health["chain"]["managed"] == chain_kind
    assert health["chain"]["latest_block"] >= 6  # six deployments
    assert set(health["contracts"]) == {
        "MeterRegistry", "ReadingLedger", "SettlementToken", "EnergyMarket", "BillRegistry",
        "ComplaintRegistry",
    }  # fmt: skip
    assert health["database"]["journal_mode"] == "wal"
    assert health["database"]["synchronous"] == "FULL"


def test_openapi_docs_are_served(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.base_url}/docs").status_code == 200
    paths = httpx.get(f"{gateway.base_url}/openapi.json").json()["paths"]
    assert "/healthz" in paths


def test_unknown_meter_is_a_404_with_a_stable_code(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.base_url}/v1/meters/NO-SUCH-METER")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "meter_registry_unknown_meter"


def test_overlong_meter_id_is_rejected_as_an_invalid_request(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.base_url}/v1/meters/{'x' * 40}")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def test_multibyte_serial_over_32_bytes_is_rejected_with_invalid_meter(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.base_url}/v1/meters/{'é' * 20}")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_meter"


def test_meter_registered_by_cli_is_served_by_the_gateway(gateway: Gateway, tmp_path: Path) -> None:
    key_file = tmp_path / "meter.pem"
    write_public_pem(key_file, KeyAlgorithm.P256)
    owner = dev_account(1).address
    # The CLI finds the chain the running gateway started (same LEDGER_CHAIN_PORT) and shares it.
    subprocess.run(
        [str(LEDGER_BIN), "meter", "register", "MTR-HTTP-1", "--owner", owner,
         "--public-key-file", str(key_file)],
        env=gateway.env, check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    meter = httpx.get(f"{gateway.base_url}/v1/meters/MTR-HTTP-1").json()
    assert meter["owner"] == owner
    assert [k["algorithm"] for k in meter["keys"]] == ["p256"]


def test_restart_reuses_contracts_and_keeps_chain_state(gateway: Gateway, tmp_path: Path) -> None:
    before = httpx.get(f"{gateway.base_url}/healthz").json()
    key_file = tmp_path / "meter.pem"
    write_public_pem(key_file, KeyAlgorithm.ED25519)
    subprocess.run(
        [str(LEDGER_BIN), "meter", "register", "MTR-RESTART", "--owner", dev_account(2).address,
         "--public-key-file", str(key_file)],
        env=gateway.env, check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    gateway.stop()

    again = start_gateway(gateway.env, gateway.log_path)
    try:
        after = httpx.get(f"{again.base_url}/healthz").json()
        meter = httpx.get(f"{again.base_url}/v1/meters/MTR-RESTART")
    finally:
        again.stop()
    # Both chains keep their state under the data directory: same contracts, and the meter
    # registered before the restart is still there.
    assert after["contracts"] == before["contracts"]
    assert after["chain"]["latest_block"] >= before["chain"]["latest_block"] + 1
    assert meter.status_code == 200
    assert meter.json()["owner"] == dev_account(2).address
    assert "deploying" not in again.log()
