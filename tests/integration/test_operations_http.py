"""Operating the gateway over real HTTP (README "Operating the gateway"): `GET /metrics` after
real batches, with one worker and with two, who may scrape it, and the JSON log lines with
their request ids and no secrets.

Each gateway here is `ledger serve` on its own Anvil, anchoring off, so the pending readings
the metrics show are exactly those posted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ledger.chain.client import connect, free_port
from ledger.chain.deployment import ensure_deployed
from ledger.meters.keys import KeyAlgorithm, MeterPrivateKey, generate_key
from ledger.meters.registry import MeterAdmin, meter_id_bytes
from ledger.readings.native import Reading, sign_reading
from ledger.settings import DEV_OPERATOR_KEY
from tests.fixtures.chain import dev_account
from tests.fixtures.gateway import OPERATOR_TOKEN, Gateway, ledger_env, start_gateway
from tests.integration.test_readings_http import post, register_meter, signed

METRICS_TOKEN = "metrics-token-for-tests"
METER = "MTR-OPS-1"
PASSWORD = "hunter2-pa55word"


def metrics_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return ledger_env(
        tmp_path / "data",
        "anvil",
        free_port(),
        LEDGER_METRICS_TOKEN=METRICS_TOKEN,
        LEDGER_ANCHOR_ENABLED="false",
        # The workers' shared metrics directory is made under TMPDIR: here, so a test sees it.
        TMPDIR=str(tmp_path),
        **extra,
    )


Samples = dict[tuple[str, tuple[Any, ...]], float]


def scrape(gateway: Gateway, token: str = METRICS_TOKEN) -> Samples:
    """The scrape, parsed: (sample name, sorted labels) -> value."""
    answer = httpx.get(
        f"{gateway.base_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def readings(samples: Samples, result: str, code: str) -> float:
    return samples.get(("ledger_readings_total", (("code", code), ("result", result))), 0.0)


def log_lines(gateway: Gateway) -> list[dict[str, Any]]:
    """The gateway's JSON log lines (its stdout's two start-up lines are not JSON)."""
    return [json.loads(line) for line in gateway.log().splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One worker; a meter with readings 1-4 accepted, seq 1 sent twice, one forged and one of
    an unknown meter rejected."""
    tmp = tmp_path_factory.mktemp("operations")
    running = start_gateway(metrics_env(tmp), tmp / "gateway.log")
    try:
        key, start = register_meter(running, METER)
        first = {
            "readings": [
                *(signed(key, start, seq, METER) for seq in (1, 2, 3)),
                signed(generate_key(KeyAlgorithm.P256), start, 9, METER),  # bad_signature
                signed(key, start, 1, "MTR-NOT-REGISTERED"),  # unknown_meter
            ]
        }
        second = {"readings": [signed(key, start, 1, METER), signed(key, start, 4, METER)]}
        assert post(running, first).status_code == 202
        assert post(running, second).status_code == 202
        yield running
    finally:
        running.stop()


def test_metrics_count_readings_by_result_and_rejection_code(gateway: Gateway) -> None:
    samples = scrape(gateway)

    assert readings(samples, "accepted", "") == 4
    assert readings(samples, "duplicate", "") == 1
    assert readings(samples, "rejected", "bad_signature") == 1
    assert readings(samples, "rejected", "unknown_meter") == 1


def test_metrics_show_the_pending_readings_and_how_long_they_wait(gateway: Gateway) -> None:
    samples = scrape(gateway)

    assert samples[("ledger_pending_readings", ())] == 4
    assert samples[("ledger_anchoring_lag_seconds", ())] > 0
    assert samples[("ledger_indexer_block", ())] >= 0


def test_latency_is_labelled_by_route_template_not_by_path(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.base_url}/v1/meters/{METER}").status_code == 200

    samples = scrape(gateway)

    posted = ("method", "POST"), ("route", "/v1/readings"), ("status", "202")
    assert samples[("ledger_http_request_duration_seconds_count", posted)] == 2
    shown = ("method", "GET"), ("route", "/v1/meters/{meter_id}"), ("status", "200")
    assert samples[("ledger_http_request_duration_seconds_count", shown)] >= 1
    assert [labels for _, labels in samples if METER in str(labels)] == []


def test_the_operator_token_reads_the_metrics_too(gateway: Gateway) -> None:
    samples = scrape(gateway, OPERATOR_TOKEN)

    assert readings(samples, "accepted", "") == 4


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-the-token"}, {"Authorization": "Basic b3A6cHc="}],
    ids=["no-token", "another-token", "not-bearer"],
)
def test_metrics_without_the_token_are_refused_with_401_and_show_nothing(
    gateway: Gateway, headers: dict[str, str]
) -> None:
    answer = httpx.get(f"{gateway.base_url}/metrics", headers=headers)

    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthorized"
    assert "ledger_" not in answer.text


def test_a_request_gets_one_json_log_line_with_its_request_id_echoed(gateway: Gateway) -> None:
    answer = httpx.get(
        f"{gateway.base_url}/v1/meters/{METER}", headers={"X-Request-ID": "trace-0001"}
    )

    assert answer.headers["x-request-id"] == "trace-0001"
    (line,) = [entry for entry in log_lines(gateway) if entry.get("request_id") == "trace-0001"]
    assert line["event"] == "request"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/v1/meters/{meter_id}", 200)
    assert line["path"] == f"/v1/meters/{METER}"
    assert line["duration_ms"] >= 0


def test_an_unsafe_request_id_is_replaced_by_a_generated_one(gateway: Gateway) -> None:
    answer = httpx.get(f"{gateway.base_url}/healthz", headers={"X-Request-ID": 'a b"<c>' * 30})

    generated = answer.headers["x-request-id"]
    assert len(generated) == 32 and all(c in "0123456789abcdef" for c in generated)
    assert [e["route"] for e in log_lines(gateway) if e.get("request_id") == generated] == [
        "/healthz"
    ]


def test_log_lines_carry_neither_a_bearer_token_nor_a_password_of_the_url(
    gateway: Gateway,
) -> None:
    url = (
        f"{gateway.base_url}/v1/meters/http:%2F%2Fadmin:{PASSWORD}@db.example"
        f"?password={PASSWORD}&token={OPERATOR_TOKEN}"
    )
    httpx.get(url, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}", "X-Request-ID": "sec-1"})
    scrape(gateway, OPERATOR_TOKEN)

    log = gateway.log()
    (line,) = [entry for entry in log_lines(gateway) if entry.get("request_id") == "sec-1"]
    assert line["status"] in (404, 422)
    assert PASSWORD not in log
    assert OPERATOR_TOKEN not in log
    assert METRICS_TOKEN not in log


def register_for_days(gateway: Gateway, meter_id: str) -> tuple[MeterPrivateKey, int]:
    """A P-256 meter whose key is valid from ten days ago: room for readings a second apart."""
    chain = connect(f"http://127.0.0.1:{gateway.env['LEDGER_CHAIN_PORT']}", DEV_OPERATOR_KEY)
    deployment = ensure_deployed(chain, Path(gateway.env["LEDGER_DATA_DIR"]))
    key = generate_key(KeyAlgorithm.P256)
    start = int(time.time()) - 10 * 86_400
    MeterAdmin(chain, deployment).register(
        meter_id, dev_account(1).address, key.public_key(), valid_from=start
    )
    return key, start


def batch(meter_id: str, key: MeterPrivateKey, start: int, seqs: range) -> dict[str, Any]:
    readings = []
    for seq in seqs:
        reading = Reading(
            chain_id=1337,
            meter_id=meter_id_bytes(meter_id),
            seq=seq,
            timestamp=start + seq,
            import_wh=seq,
            export_wh=0,
        )
        readings.append(
            {
                "meter_id": meter_id,
                "canonical": "0x" + reading.encode().hex(),
                "signature": "0x" + sign_reading(key, reading).hex(),
            }
        )
    return {"readings": readings}


def test_with_two_workers_a_scrape_shows_the_counts_of_both(tmp_path: Path) -> None:
    running = start_gateway(metrics_env(tmp_path, LEDGER_WORKERS="2"), tmp_path / "gateway.log")
    try:
        meters = [f"MTR-OPS-W{n}" for n in range(4)]
        keys = {meter: register_for_days(running, meter) for meter in meters}
        (metrics_dir,) = tmp_path.glob("ledger-metrics-*")
        size = 400

        def send(meter: str, first: int) -> int:
            key, start = keys[meter]
            answer = post(running, batch(meter, key, start, range(first, first + size)))
            return int(answer.json()["accepted"])

        # Rounds of four batches at once, one meter each, on new connections, until both
        # workers have counted readings (a worker's first count creates its file). Which
        # worker accepts a connection is the kernel's choice; one busy checking a batch is
        # slower to accept the next, so the other gets its turn.
        accepted, rounds = 0, 0
        with ThreadPoolExecutor(max_workers=len(meters)) as pool:
            while len(list(metrics_dir.glob("counter_*.db"))) < 2 and rounds < 30:
                first = 1 + rounds * size
                accepted += sum(pool.map(send, meters, [first] * len(meters)))
                rounds += 1
        assert len(list(metrics_dir.glob("counter_*.db"))) == 2
        assert accepted == rounds * size * len(meters)
        # Any worker answers a scrape; each one shows the readings both have counted.
        scrapes = [readings(scrape(running), "accepted", "") for _ in range(6)]
        assert scrapes == [accepted] * 6
        pids = {e["pid"] for e in log_lines(running) if e.get("route") == "/v1/readings"}
        assert len(pids) == 2
    finally:
        running.stop()
    assert not metrics_dir.exists()  # the serving parent removes the directory it made
