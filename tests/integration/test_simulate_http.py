"""`ledger simulate` against a real gateway and chain: every fault gets the answer it must get."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.gateway import LEDGER_BIN, Gateway

FAULTS = "bad_signature=0.15,replay=0.15,gap=0.15,conflict=0.15"


def simulate(gateway: Gateway, *extra: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    done = subprocess.run(
        [str(LEDGER_BIN), "simulate", "--meters", "5", "--interval", "15m", "--duration", "6h",
         "--speed", "0", "--batch-size", "40", "--pv-share", "0.4", "--faults", FAULTS,
         "--seed", "11", "--gateway", gateway.base_url, *extra],
        env=gateway.env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    # The gateway's log ends each message: a refused connection is explained only there.
    assert done.returncode in (0, 1), (
        f"simulate failed:\n{done.stderr}\n{done.stdout}\ngateway log:\n{gateway.log()[-4000:]}"
    )
    try:
        summary = json.loads(done.stdout)
    except ValueError as error:
        raise AssertionError(
            f"no JSON summary:\n{done.stderr}\n{done.stdout}\ngateway log:\n{gateway.log()[-4000:]}"
        ) from error
    return done, summary


def test_simulated_fleet_gets_exactly_the_expected_answers(gateway: Gateway) -> None:
    done, summary = simulate(gateway)
    assert summary["mismatches"] == 0, json.dumps(summary["mismatch_examples"], indent=1)
    assert done.returncode == 0, done.stderr
    assert summary["meters"] == 5 and summary["pv_meters"] == 2 and summary["ticks"] == 24
    faults = summary["faults"]
    assert set(faults) == {"none", "gap", "bad_signature", "replay", "conflict"}
    for kind, counts in faults.items():
        assert counts["count"] > 0, kind
        assert counts["actual"] == counts["expected"], kind
    assert summary["by_status"]["duplicate"] == faults["replay"]["count"]
    assert summary["by_code"] == {
        "bad_signature": faults["bad_signature"]["count"],
        "conflicting_reading": faults["conflict"]["count"],
    }
    assert summary["sent"] == sum(summary["by_status"].values())
    assert "registered 5/5 meters" in done.stderr
    assert "readings/s" in done.stderr  # progress, plain lines as stderr is not a terminal

    # The gateway serves what was accepted: the first meter's registered key and a stored reading.
    meter = httpx.get(f"{gateway.base_url}/v1/meters/SIM-000001").json()
    assert [k["algorithm"] for k in meter["keys"]] == ["p256"]
    assert meter["keys"][0]["valid_from"] == summary["start"]


def test_a_saved_fleet_continues_where_it_stopped(gateway: Gateway, tmp_path: Path) -> None:
    keys = tmp_path / "fleet"
    first_start = "2026-01-01T00:00:00Z"
    _, first = simulate(gateway, "--keys-dir", str(keys), "--start", first_start)
    assert first["mismatches"] == 0
    state = json.loads((keys / "fleet.json").read_text())
    seqs = [m["state"]["next_seq"] for m in state["meters"]]
    # Same meters, same keys, next seqs: nothing is registered again, and nothing conflicts.
    done, second = simulate(gateway, "--keys-dir", str(keys))
    assert second["mismatches"] == 0, json.dumps(second["mismatch_examples"], indent=1)
    assert second["start"] == first["end"]
    assert "continuing 5 meters" in done.stderr and "registered" not in done.stderr
    again = json.loads((keys / "fleet.json").read_text())
    assert all(m["state"]["next_seq"] > s for m, s in zip(again["meters"], seqs, strict=True))
