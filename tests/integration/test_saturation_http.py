"""A burst past the gateway's bounds: refused with 429/503 and Retry-After, retried, nothing lost.

`ledger serve` (one worker, a real Ganache, real HTTP) with tight bounds: two reading batches in
flight at a time (`LEDGER_MAX_IN_FLIGHT_BATCHES=2`) and at most 10 readings waiting for anchoring
(`LEDGER_MAX_PENDING_READINGS=10`), against eight clients that send their meters' batches at
once, each over its own connection with the simulator's `HttpSender`, which waits `Retry-After`
seconds and sends a refused batch again. At the end every acknowledged reading is stored with
its receipt's leaf and anchored in exactly one batch whose root is on chain.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ledger.chain.client import connect, free_port
from ledger.chain.deployment import ensure_deployed
from ledger.meters.registry import MeterAdmin
from ledger.settings import DEV_OPERATOR_KEY
from ledger.sim.fleet import FaultRates, Planned, generate, make_fleet
from ledger.sim.harness import HttpSender, Refusal
from tests.fixtures.gateway import ledger_env, start_gateway
from tests.integration.test_durability import (
    assert_acknowledged_readings_anchored_once,
    wait_until_everything_is_anchored,
)

pytestmark = pytest.mark.slow

CLIENTS = 8
METERS_PER_CLIENT = 2
TICKS = 10
BATCH = 20  # readings per request: one request per client


class Acknowledged:
    """What the gateway acknowledged, as `assert_acknowledged_readings_anchored_once` reads it."""

    def __init__(self) -> None:
        self.acknowledged: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()

    def add(self, batch: list[Planned], results: list[dict[str, Any]]) -> None:
        with self._lock:
            for planned, result in zip(batch, results, strict=True):
                if result["status"] in ("accepted", "duplicate"):
                    leaf = result["receipt"]["leaf"]
                    self.acknowledged[(planned.meter_id, planned.reading.seq)] = leaf


def test_a_burst_past_the_bounds_is_refused_with_retry_after_and_nothing_acknowledged_is_lost(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    database_url = f"sqlite:///{data_dir / 'ledger.db'}"
    env = ledger_env(
        data_dir,
        "ganache",
        free_port(),
        LEDGER_MAX_IN_FLIGHT_BATCHES="2",
        LEDGER_MAX_PENDING_READINGS="10",
        # Slower than the burst arrives, so the backlog passes its bound.
        LEDGER_ANCHOR_INTERVAL_S="3",
        LEDGER_ANCHOR_MAX_READINGS="200",
    )
    gateway = start_gateway(env, tmp_path / "gateway.log")
    try:
        chain = connect(f"http://127.0.0.1:{env['LEDGER_CHAIN_PORT']}", DEV_OPERATOR_KEY)
        deployment = ensure_deployed(chain, data_dir)
        fleet = make_fleet(CLIENTS * METERS_PER_CLIENT, seed=15, prefix="BURST-")
        start = int(time.time()) - TICKS * 60 - 600
        admin = MeterAdmin(chain, deployment)
        for meter in fleet:
            admin.register(
                meter.meter_id, chain.operator.address, meter.key.public_key(), valid_from=start
            )
        planned = [
            p
            for tick in generate(
                fleet,
                chain_id=chain.chain_id,
                start=start,
                interval_s=60,
                ticks=TICKS,
                faults=FaultRates(),
                seed=15,
            )
            for p in tick
        ]
        # Each client owns its meters and sends their readings in seq order.
        batches_of: list[list[list[Planned]]] = []
        for owner in range(CLIENTS):
            owned = {m.meter_id for m in fleet[owner::CLIENTS]}
            mine = [p for p in planned if p.meter_id in owned]
            batches_of.append([mine[i : i + BATCH] for i in range(0, len(mine), BATCH)])

        acknowledged = Acknowledged()
        senders: list[HttpSender] = []
        waits: list[tuple[Refusal, float]] = []  # each refusal and how long its client waited
        failures: list[BaseException] = []
        go = threading.Barrier(CLIENTS)

        def client(index: int) -> None:
            def back_off(seconds: float) -> None:
                began = time.monotonic()
                time.sleep(seconds)  # the client's own back-off, as a meter's
                waits.append((sender.refusals[-1], time.monotonic() - began))

            sender = HttpSender(gateway.base_url, timeout_s=30, give_up_s=120, sleep=back_off)
            senders.append(sender)
            try:
                go.wait()
                for batch in batches_of[index]:
                    acknowledged.add(batch, sender(batch))
            except BaseException as error:  # noqa: BLE001 - reported by the test thread
                failures.append(error)
            finally:
                sender.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)

        assert failures == []
        refusals = [r for s in senders for r in s.refusals]
        assert {(r.status, r.code) for r in refusals} == {
            (429, "gateway_saturated"),
            (503, "anchoring_backlog"),
        }
        assert all(r.retry_after_s >= 1 for r in refusals)
        # Every refused batch was sent again only after its Retry-After.
        assert len(waits) == len(refusals)
        assert all(waited >= refusal.retry_after_s for refusal, waited in waits)
        # Every reading was acknowledged in the end, once refusals were retried.
        assert len(acknowledged.acknowledged) == len(planned)

        wait_until_everything_is_anchored(gateway.base_url)
        assert_acknowledged_readings_anchored_once(
            acknowledged,  # type: ignore[arg-type]
            database_url,
            chain,
            deployment,
            gateway.base_url,
        )
    finally:
        gateway.stop()
