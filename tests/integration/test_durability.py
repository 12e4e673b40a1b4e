"""Acknowledged means durable, through crashes and chain outages.

The simulator ingests a fleet over HTTP while (a) the gateway is killed with SIGKILL at random
moments and restarted, 20 times, or (b) Ganache is stopped and restarted. The sender behaves like
a data concentrator: when the gateway does not answer, it sends the same batch again until it
does. Afterwards, checked against the chain and the database:

- no acknowledged reading is missing (every `accepted` or `duplicate` answer's reading is stored
  with the leaf its receipt named);
- no reading is in two batches (each chain batch's root is rebuilt from the database's leaves,
  and no leaf occurs twice over all batches);
- every reading is anchored and provable (its proof from the HTTP route verifies against the
  chain's root in pure Python, and a sample also with `ReadingLedger.verifyReading`).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.anchoring.merkle import MerkleTree
from ledger.anchoring.merkle import verify as verify_proof
from ledger.chain.client import Chain, LocalChain, connect, free_port
from ledger.chain.deployment import Deployment, ensure_deployed
from ledger.meters.registry import meter_id_bytes
from ledger.settings import DEV_OPERATOR_KEY, Settings
from ledger.sim.fleet import Planned, SimulationError, parse_duration
from ledger.sim.harness import HttpSender
from ledger.sim.runner import SimulationConfig, simulate
from ledger.store.batches import BatchStatus
from ledger.store.database import Store
from tests.fixtures.gateway import OPERATOR_HEADERS, Gateway, ledger_env, start_gateway
from tests.fixtures.postgres import store_location

# Each 20-kill test takes about five minutes with other tests on both cores (the chain outage
# test about one): queued first of all, so that the two databases' runs go to different workers.
pytestmark = pytest.mark.slow(minutes=5)

KILLS = 20


@dataclass
class GatewayHandle:
    """The gateway currently running; replaced on every restart."""

    current: Gateway
    lock: threading.Lock = field(default_factory=threading.Lock)
    restarts: int = 0

    @property
    def base_url(self) -> str:
        with self.lock:
            return self.current.base_url


class RetryingSender:
    """Sends a batch until some gateway answers 202, as a data concentrator would."""

    def __init__(self, gateway: GatewayHandle, *, give_up_s: float = 300.0) -> None:
        self._gateway = gateway
        self._give_up_s = give_up_s
        self.acknowledged: dict[tuple[str, int], str] = {}  # (meter, seq) -> receipt leaf
        self.retries = 0
        self.refusals: list[str] = []  # why each failed attempt failed
        self.first_acknowledged: dict[str, Any] | None = None  # a request body answered 202
        self.some_acknowledged = threading.Event()
        self.some_refused = threading.Event()

    def __call__(self, batch: Sequence[Planned]) -> list[dict[str, Any]]:
        deadline = time.monotonic() + self._give_up_s
        while True:
            sender = HttpSender(self._gateway.base_url, timeout_s=30)
            try:
                results = sender(batch)
                break
            except SimulationError as error:
                if time.monotonic() > deadline:
                    raise
                self.retries += 1
                self.refusals.append(str(error))
                self.some_refused.set()
                time.sleep(0.05)  # a gateway that is down refuses at once: retry soon
            finally:
                # A 503 with Retry-After (the database down) is waited out and resent by the
                # simulator's sender itself: counted here as the refusal it was.
                self.refusals.extend(
                    f"{refusal.status} {refusal.code}" for refusal in sender.refusals
                )
                if sender.refusals:
                    self.some_refused.set()
                sender.close()
        for planned, result in zip(batch, results, strict=True):
            if result["status"] in ("accepted", "duplicate"):
                key = (planned.meter_id, planned.reading.seq)
                self.acknowledged[key] = result["receipt"]["leaf"]
                if self.first_acknowledged is None:
                    self.first_acknowledged = {"readings": [planned.body()]}
        self.some_acknowledged.set()
        return results


def ingest_while(
    settings: Settings,
    gateway: GatewayHandle,
    disturb: Callable[[], None],
    *,
    meters: int,
    duration: str,
    speed: float,
    sender: RetryingSender | None = None,
) -> tuple[RetryingSender, dict[str, Any]]:
    """Runs the simulator (no faults) against the gateway while `disturb` runs in a thread."""
    sender = sender or RetryingSender(gateway)
    config = SimulationConfig(
        meters=meters,
        interval_s=900,
        duration_s=parse_duration(duration),
        speed=speed,
        batch_size=50,
        seed=7,
        gateway=gateway.base_url,
        prefix=f"DUR{os.getpid() % 1000:03d}{random.randrange(10**6):06d}-",
    )
    problems: list[BaseException] = []

    def run_disturbance() -> None:
        try:
            disturb()
        except BaseException as error:  # noqa: BLE001 - reported by the test thread
            problems.append(error)

    disturber = threading.Thread(target=run_disturbance, name="disturb")
    disturber.start()
    try:
        summary = simulate(settings, config, send=sender)
    finally:
        disturber.join(timeout=300)
    if problems:
        raise problems[0]
    return sender, summary


def wait_until_everything_is_anchored(base_url: str, *, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    health: dict[str, Any] = {}
    while time.monotonic() < deadline:
        health = httpx.get(f"{base_url}/healthz", timeout=10).json()
        anchoring = health["anchoring"]
        settled = anchoring["pending_readings"] == 0 and anchoring["unanchored_batches"] == 0
        # With several workers, the one answering may be in standby (another holds the lease).
        if settled and anchoring["state"] in ("idle", "standby"):
            return
        time.sleep(0.1)
    raise AssertionError(f"readings still pending after {timeout_s}s: {health.get('anchoring')}")


def assert_acknowledged_readings_anchored_once(
    sender: RetryingSender, database_url: str, chain: Chain, deployment: Deployment, base_url: str
) -> None:
    ledger = deployment.reading_ledger
    store = Store(store_location(database_url))
    try:
        batches = store.batches()
        leaves_by_batch = {b.batch_id: store.batch_leaves(b.batch_id) for b in batches}
        stored = {key: store.reading(meter_id_bytes(key[0]), key[1]) for key in sender.acknowledged}
    finally:
        store.close()

    missing = [key for key, row in stored.items() if row is None]
    assert missing == [], f"{len(missing)} acknowledged readings are missing: {missing[:5]}"
    wrong_leaf = [
        key
        for key, row in stored.items()
        if row is not None and "0x" + row.leaf.hex() != sender.acknowledged[key]
    ]
    assert wrong_leaf == []

    # Every batch on chain is one of ours, its root rebuilt from our leaves; no leaf twice.
    assert [b.status for b in batches] == [BatchStatus.ANCHORED] * len(batches), [
        (b.batch_id, b.status, b.count, b.created_at, b.anchored_at) for b in batches
    ] + [("chain last", chain.call(ledger.functions.lastBatchId()))]
    assert [b.batch_id for b in batches] == list(range(1, len(batches) + 1))
    assert int(chain.call(ledger.functions.lastBatchId())) == len(batches)
    roots = {}
    for batch in batches:
        roots[batch.batch_id] = bytes(chain.call(ledger.functions.batchRoot(batch.batch_id)))
        assert MerkleTree(leaves_by_batch[batch.batch_id]).root == roots[batch.batch_id]
        assert batch.count == len(leaves_by_batch[batch.batch_id])
    all_leaves = [leaf for leaves in leaves_by_batch.values() for leaf in leaves]
    assert len(all_leaves) == len(set(all_leaves)), "a reading is in two batches"
    assert {row.leaf for row in stored.values() if row is not None} <= set(all_leaves)

    # Every acknowledged reading's proof, as the HTTP route serves it, verifies.
    sample = random.Random(1).sample(sorted(sender.acknowledged), 40)
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for meter, seq in sorted(sender.acknowledged):
            view = client.get(f"/v1/meters/{meter}/readings/{seq}", headers=OPERATOR_HEADERS).json()
            anchor = view["anchor"]
            assert anchor is not None, f"{meter}/{seq} is not anchored"
            proof = [bytes.fromhex(p[2:]) for p in anchor["proof"]]
            leaf = bytes.fromhex(view["leaf"][2:])
            assert verify_proof(proof, roots[anchor["batch_id"]], leaf), (meter, seq)
            if (meter, seq) in sample:
                assert chain.call(ledger.functions.verifyReading(anchor["batch_id"], leaf, proof))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url_for_gateway(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'ledger.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_no_acknowledged_reading_is_lost_or_anchored_twice_across_20_sigkills(
    tmp_path: Path, ganache: LocalChain, chain: Chain, database_url_for_gateway: str
) -> None:
    data_dir = tmp_path / "data"
    env = ledger_env(
        data_dir,
        "ganache",
        ganache.port,
        LEDGER_RPC_URL=ganache.rpc_url,
        LEDGER_OPERATOR_KEY=DEV_OPERATOR_KEY,
        LEDGER_DATABASE_URL=database_url_for_gateway,
        LEDGER_ANCHOR_INTERVAL_S="0.3",
        LEDGER_ANCHOR_MAX_READINGS="400",
        LEDGER_WORKERS="2",  # SIGKILL of `ledger serve` must take its workers (and lease) along
    )
    log_path = tmp_path / "gateway.log"
    handle = GatewayHandle(start_gateway(env, log_path))
    rng = random.Random(2026)

    # Each kill lands at a random moment up to half a second after the gateway answered: once
    # the simulator sends (after registering its meters), it is behind its schedule after every
    # outage and sends back to back, and the anchorer (every 0.3 s) is somewhere in its cycle.
    # The restart, three processes importing the API, takes far longer than this delay (10 to
    # 25 s each with other tests on both cores): it is what the test's time goes to.
    def kill_and_restart() -> None:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.05, 0.5))
            with handle.lock:
                handle.current.process.send_signal(signal.SIGKILL)
                handle.current.process.wait()
                handle.current.log_file.close()
            restarted = start_gateway(env, log_path)
            with handle.lock:
                handle.current = restarted
                handle.restarts += 1

    settings = Settings(
        rpc_url=ganache.rpc_url,
        operator_key=DEV_OPERATOR_KEY,
        data_dir=data_dir,
        database_url=database_url_for_gateway,
    )
    try:
        sender, summary = ingest_while(
            settings, handle, kill_and_restart, meters=12, duration="30h", speed=1800
        )
        assert handle.restarts == KILLS
        assert summary["sent"] == 12 * 120
        assert sender.retries > 0  # the kills did land while the simulator was sending
        assert len(sender.acknowledged) == summary["sent"]  # every reading acknowledged once
        wait_until_everything_is_anchored(handle.base_url)
        deployment = ensure_deployed(chain, data_dir)
        assert_acknowledged_readings_anchored_once(
            sender, database_url_for_gateway, chain, deployment, handle.base_url
        )
    finally:
        handle.current.stop()


@pytest.fixture
def own_ganache(tmp_path: Path) -> Iterator[LocalChain]:
    """A Ganache of this test's own, keeping its state on disk so it survives a restart."""
    node = LocalChain(
        kind="ganache",
        port=free_port(),
        db_path=tmp_path / "chain",
        log_path=tmp_path / "ganache.log",
    )
    node.start()
    yield node
    node.stop()


def test_ingestion_continues_through_a_chain_outage_and_anchoring_resumes(
    tmp_path: Path, own_ganache: LocalChain
) -> None:
    data_dir = tmp_path / "data"
    database_url = f"sqlite:///{data_dir / 'ledger.db'}"
    env = ledger_env(
        data_dir,
        "ganache",
        own_ganache.port,
        LEDGER_RPC_URL=own_ganache.rpc_url,
        LEDGER_OPERATOR_KEY=DEV_OPERATOR_KEY,
        LEDGER_ANCHOR_INTERVAL_S="0.3",
    )
    handle = GatewayHandle(start_gateway(env, tmp_path / "gateway.log"))
    outage: dict[str, Any] = {}
    sender = RetryingSender(handle)

    def stop_and_restart_the_chain() -> None:
        # Once readings flow: the simulator registers its meters on the chain first, which a
        # loaded machine may not have done after a fixed few seconds.
        assert sender.some_acknowledged.wait(timeout=120)
        own_ganache.stop()
        time.sleep(6)  # the simulator keeps sending meanwhile
        outage["during"] = httpx.get(f"{handle.base_url}/healthz", timeout=10)
        own_ganache.start()

    settings = Settings(
        rpc_url=own_ganache.rpc_url,
        operator_key=DEV_OPERATOR_KEY,
        data_dir=data_dir,
        database_url=database_url,
    )
    try:
        sender, summary = ingest_while(
            settings,
            handle,
            stop_and_restart_the_chain,
            meters=8,
            duration="36h",
            speed=3600,
            sender=sender,
        )
        # While the chain was down the gateway answered, and said so.
        assert outage["during"].status_code == 503
        assert outage["during"].json()["error"]["code"] == "chain_unavailable"
        assert len(sender.acknowledged) == summary["sent"] == 8 * 144
        wait_until_everything_is_anchored(handle.base_url)
        chain = connect(own_ganache.rpc_url, DEV_OPERATOR_KEY)
        deployment = ensure_deployed(chain, data_dir)
        assert_acknowledged_readings_anchored_once(
            sender, database_url, chain, deployment, handle.base_url
        )
    finally:
        handle.current.stop()
