"""`ledger simulate --outage` against `ledger serve` on Anvil: the backlog a small fleet kept while
offline is sent at once over several connections, the gateway (one batch in flight at a time)
refuses part of it with 429 and Retry-After, and the simulator waits and sends it again until
every reading is accepted."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ledger.chain.client import free_port
from tests.fixtures.gateway import LEDGER_BIN, ledger_env, start_gateway


def test_a_backlog_after_an_outage_is_sent_at_once_and_every_reading_accepted(
    tmp_path: Path,
) -> None:
    env = ledger_env(tmp_path / "data", "anvil", free_port(), LEDGER_MAX_IN_FLIGHT_BATCHES="1")
    gateway = start_gateway(env, tmp_path / "gateway.log")
    try:
        done = subprocess.run(
            [str(LEDGER_BIN), "simulate", "--meters", "6", "--interval", "15m",
             "--duration", "3h", "--outage", "2h", "--outage-at", "15m", "--speed", "0",
             "--batch-size", "4", "--backlog-senders", "6", "--seed", "15",
             "--gateway", gateway.base_url],
            env=gateway.env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        gateway.stop()
    assert done.returncode == 0, f"{done.stderr}\n{done.stdout}"
    summary = json.loads(done.stdout)
    assert summary["mismatches"] == 0
    assert summary["by_status"] == {"accepted": 6 * 12}
    # The eight ticks from 15 min to 2 h 15 min were kept and sent together by six senders.
    assert summary["backlog"]["readings"] == 6 * 8
    assert summary["backlog"]["senders"] == 6
    assert summary["refusals"].get("gateway_saturated", 0) > 0
