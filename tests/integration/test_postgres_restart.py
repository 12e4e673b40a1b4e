"""PostgreSQL restarting under a running store, anchorer and gateway.

A restart (stop + start on the same data directory) ends every session: the store reconnects on
its next use, a write transaction that was under way fails as `StoreUnavailable` without being
acknowledged, and the anchoring lease, which lived in a session, is asked for again rather than
assumed. The gateway test restarts the server while a retrying sender ingests and then checks,
as the crash test does, that nothing acknowledged is lost and nothing is anchored twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from ledger.anchoring.anchorer import Anchorer, AnchorState
from ledger.chain.client import Chain, LocalChain
from ledger.chain.deployment import Deployment, ensure_deployed
from ledger.settings import DEV_OPERATOR_KEY, Settings
from ledger.store.backends import StoreUnavailable
from ledger.store.batches import BatchStatus
from ledger.store.database import Store
from tests.fixtures.gateway import ledger_env, start_gateway
from tests.fixtures.postgres import PostgresServer
from tests.integration.test_anchoring import METER, add_readings, chain_last
from tests.integration.test_durability import (
    GatewayHandle,
    RetryingSender,
    assert_acknowledged_readings_anchored_once,
    ingest_while,
    wait_until_everything_is_anchored,
)

pytestmark = pytest.mark.slow

# The anchoring lease's advisory lock key (ledger.store.backends.PG_ANCHOR_LOCK): one bigint key
# shows in pg_locks as classid 0 and objid = the key.
_ANCHOR_LOCK_KEY = 0x454C_0002


@pytest.fixture
def pg_store(own_postgres_server: PostgresServer) -> Iterator[Store]:
    store = Store(own_postgres_server.url)
    yield store
    store.close()


def end_other_sessions(server: PostgresServer) -> None:
    """Ends every session but this one, as a server crash or failover does to its clients."""
    with psycopg.connect(server.url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )


def end_lease_sessions(url: str) -> None:
    """Ends the session that holds the anchoring lease (the store's own sessions live on).

    Termination is a signal the backend acts on when it next runs, so the lock would still be
    held for a moment after a plain `pg_terminate_backend(pid)`: the timeout argument waits
    (up to 10 s) until the backend is gone and its locks with it.
    """
    with psycopg.connect(url, autocommit=True) as admin:
        ended = admin.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks "
            "WHERE locktype = 'advisory' AND classid = 0 AND objid = %s",
            (_ANCHOR_LOCK_KEY,),
        ).fetchall()
    assert ended == [(True,)], ended


def lease_holders(url: str) -> list[tuple[Any, ...]]:
    """Who holds the anchoring lease now (for a failure's message)."""
    with psycopg.connect(url, autocommit=True) as admin:
        return admin.execute(
            "SELECT a.pid, a.datname, a.application_name, a.client_port, a.backend_start "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = %s",
            (_ANCHOR_LOCK_KEY,),
        ).fetchall()


def test_a_read_after_a_postgresql_restart_reconnects(
    pg_store: Store, own_postgres_server: PostgresServer, chain: Chain
) -> None:
    add_readings(pg_store, chain, 3)

    own_postgres_server.restart()

    assert pg_store.count_readings(METER) == 3
    assert pg_store.status()["reconnects"] == 1


def test_a_write_after_a_postgresql_restart_reconnects_and_commits(
    pg_store: Store, own_postgres_server: PostgresServer, chain: Chain
) -> None:
    own_postgres_server.restart()

    add_readings(pg_store, chain, 2)

    assert pg_store.count_readings(METER) == 2


def test_a_write_whose_session_ended_mid_transaction_fails_unavailable_and_stores_nothing(
    pg_store: Store, own_postgres_server: PostgresServer, chain: Chain
) -> None:
    with pytest.raises(StoreUnavailable), pg_store.reading_transaction() as writer:
        assert writer.latest(METER) is None
        end_other_sessions(own_postgres_server)  # the transaction dies with the session
        writer.latest(METER)

    assert pg_store.count_readings() == 0
    add_readings(pg_store, chain, 1)  # and the next write goes through on a new session
    assert pg_store.count_readings() == 1


def test_while_postgresql_is_down_the_store_answers_unavailable(
    pg_store: Store, own_postgres_server: PostgresServer
) -> None:
    own_postgres_server.shut_down()
    try:
        with pytest.raises(StoreUnavailable) as raised:
            pg_store.count_readings()
    finally:
        own_postgres_server.start()

    assert raised.value.code == "store_unavailable"
    assert pg_store.count_readings() == 0


def test_after_a_postgresql_restart_the_anchorer_takes_the_lease_again_and_anchors(
    pg_store: Store, own_postgres_server: PostgresServer, chain: Chain, deployment: Deployment
) -> None:
    anchorer = Anchorer(pg_store, chain, deployment, interval_s=0.05, max_readings=100)
    try:
        add_readings(pg_store, chain, 3)
        assert anchorer.run_once().anchored == (1,)

        own_postgres_server.restart()
        add_readings(pg_store, chain, 2, first_seq=4)
        again = anchorer.run_once()
    finally:
        anchorer.stop()

    assert again.anchored == (2,)
    assert chain_last(chain, deployment) == 2


def test_an_anchorer_that_lost_its_lease_before_sending_sends_nothing(
    postgres_url: str, chain: Chain, deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(postgres_url)
    anchorer = Anchorer(store, chain, deployment, interval_s=0.05, max_readings=100)
    rival = store.anchor_lease()  # another gateway's
    create_intent = store.create_batch_intent

    def create_intent_then_lose_the_lease(*args: Any, **kwargs: Any) -> None:
        create_intent(*args, **kwargs)
        # The lease's session ends (a restart, a network cut) and another gateway takes it.
        end_lease_sessions(postgres_url)
        assert rival.try_acquire(), lease_holders(postgres_url)

    try:
        add_readings(store, chain, 3)
        monkeypatch.setattr(store, "create_batch_intent", create_intent_then_lose_the_lease)

        lost = anchorer.run_once()

        assert lost.state is AnchorState.STANDBY
        assert chain_last(chain, deployment) == 0  # nothing sent without the lease
        monkeypatch.undo()
        rival.release()
        recovered = anchorer.run_once()  # the lease is free again: the intent is sent, once
        batches = store.batches()
    finally:
        anchorer.stop()
        rival.release()
        store.close()

    assert recovered.state is AnchorState.IDLE
    assert [(b.batch_id, b.status) for b in batches] == [(1, BatchStatus.ANCHORED)]
    assert chain_last(chain, deployment) == 1


def test_a_released_lease_is_free_at_once_for_another_gateway(postgres_url: str) -> None:
    store = Store(postgres_url)
    leaving, taking_over = store.anchor_lease(), store.anchor_lease()
    try:
        assert leaving.try_acquire()
        assert not taking_over.try_acquire()

        leaving.release()  # unlocked on the server, not left to the closed session's exit

        assert lease_holders(postgres_url) == []
        assert taking_over.try_acquire()
    finally:
        leaving.release()
        taking_over.release()
        store.close()


def test_no_acknowledged_reading_is_lost_when_postgresql_restarts_during_ingestion(
    tmp_path: Path, ganache: LocalChain, chain: Chain, own_postgres_server: PostgresServer
) -> None:
    data_dir = tmp_path / "data"
    database_url = own_postgres_server.url
    env = ledger_env(
        data_dir,
        "ganache",
        ganache.port,
        LEDGER_RPC_URL=ganache.rpc_url,
        # A chain the gateway did not start: its operator key is named explicitly.
        LEDGER_OPERATOR_KEY=DEV_OPERATOR_KEY,
        LEDGER_DATABASE_URL=database_url,
        LEDGER_ANCHOR_INTERVAL_S="0.3",
        LEDGER_WORKERS="2",
    )
    handle = GatewayHandle(start_gateway(env, tmp_path / "gateway.log"))
    gateway_pid = handle.current.process.pid
    during: dict[str, httpx.Response] = {}

    sender = RetryingSender(handle)

    def restart_postgres() -> None:
        assert sender.some_acknowledged.wait(timeout=60)
        own_postgres_server.shut_down()
        try:
            assert sender.first_acknowledged is not None
            during["post"] = httpx.post(
                f"{handle.base_url}/v1/readings", json=sender.first_acknowledged, timeout=30
            )
            during["health"] = httpx.get(f"{handle.base_url}/healthz", timeout=30)
            sender.some_refused.wait(timeout=30)  # the simulator met the outage too
        finally:
            own_postgres_server.start()

    settings = Settings(
        rpc_url=ganache.rpc_url,
        operator_key=DEV_OPERATOR_KEY,
        data_dir=data_dir,
        database_url=database_url,
    )
    try:
        _, summary = ingest_while(
            settings, handle, restart_postgres, meters=8, duration="12h", speed=3600, sender=sender
        )
        # While PostgreSQL was down: 503 with a stable code and Retry-After, never a 500.
        assert during["post"].status_code == 503
        assert during["post"].json()["error"]["code"] == "store_unavailable"
        assert during["post"].headers["Retry-After"] == "2"
        assert during["health"].status_code == 503
        assert during["health"].json()["error"]["code"] == "store_unavailable"
        assert any("503" in refusal for refusal in sender.refusals)
        # Afterwards the same gateway, never restarted, took everything.
        assert handle.current.process.pid == gateway_pid
        assert handle.current.process.poll() is None
        assert len(sender.acknowledged) == summary["sent"] == 8 * 48
        wait_until_everything_is_anchored(handle.base_url)
        deployment = ensure_deployed(chain, data_dir)
        assert_acknowledged_readings_anchored_once(
            sender, database_url, chain, deployment, handle.base_url
        )
    finally:
        handle.current.stop()
