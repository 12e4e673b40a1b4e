"""The anchorer against a real chain, on SQLite and on PostgreSQL: batches, intents, crash
recovery, foreign batches, the lease, and proofs that verify on chain and in pure Python.

Crashes are reproduced by the state they leave: an intent committed and never sent, or a batch
mined whose intent was never marked (the process died between the two).
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
from eth_utils.crypto import keccak

from ledger.anchoring.anchorer import Anchorer, AnchorState, AnchorStuck, ProofService
from ledger.anchoring.merkle import MerkleTree
from ledger.anchoring.merkle import verify as verify_proof
from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.readings.native import Reading, reading_leaf
from ledger.store.backends import utc_now_iso
from ledger.store.batches import BatchRecord, BatchStatus
from ledger.store.database import Store
from ledger.store.legacy import schema_v4
from ledger.store.migrate import head_revision, schema_version
from ledger.store.readings import StoredReading
from tests.fixtures.postgres import store_location

METER = b"METER-ANCHOR-01".ljust(32, b"\x00")
FIRST_TS = 1_700_000_000


_started: list[Anchorer] = []


@pytest.fixture(autouse=True)
def _release_leases() -> Iterator[None]:
    """Every anchorer a test made gives its lease back (closing its PostgreSQL session)."""
    yield
    while _started:
        _started.pop().stop()


def make_anchorer(
    store: Store, chain: Chain, deployment: Deployment, max_readings: int = 1000
) -> Anchorer:
    anchorer = Anchorer(store, chain, deployment, interval_s=0.05, max_readings=max_readings)
    _started.append(anchorer)
    return anchorer


def add_readings(store: Store, chain: Chain, count: int, first_seq: int = 1) -> list[StoredReading]:
    """Stores `count` consecutive readings of METER (no signature needed to anchor)."""
    stored = []
    with store.reading_transaction() as writer:
        for seq in range(first_seq, first_seq + count):
            reading = Reading(
                chain_id=chain.chain_id,
                meter_id=METER,
                seq=seq,
                timestamp=FIRST_TS + 900 * seq,
                import_wh=1_000 + 250 * seq,
                export_wh=10 * seq,
                status=0,
            )
            canonical = reading.encode()
            row = StoredReading(
                meter_id=METER,
                seq=seq,
                timestamp=reading.timestamp,
                import_wh=reading.import_wh,
                export_wh=reading.export_wh,
                status=0,
                canonical=canonical,
                signature=b"\x01" * 64,
                key_epoch=0,
                leaf=reading_leaf(canonical),
                receipt_id=uuid.uuid4().hex,
                received_at=utc_now_iso(),
            )
            writer.insert_reading(row)
            stored.append(row)
    return stored


def chain_last(chain: Chain, deployment: Deployment) -> int:
    return int(chain.call(deployment.reading_ledger.functions.lastBatchId()))


def assert_every_reading_provable(
    store: Store, chain: Chain, deployment: Deployment, readings: list[StoredReading]
) -> None:
    proofs = ProofService(store)
    ledger = deployment.reading_ledger
    for reading in readings:
        current = store.reading(reading.meter_id, reading.seq)
        assert current is not None
        proof = proofs.proof(current)
        assert proof is not None, f"seq {reading.seq} is not anchored"
        chain_root = bytes(chain.call(ledger.functions.batchRoot(proof.batch.batch_id)))
        assert proof.batch.root == chain_root
        assert verify_proof(list(proof.proof), chain_root, current.leaf)
        assert chain.call(
            ledger.functions.verifyReading(proof.batch.batch_id, current.leaf, list(proof.proof))
        )


def test_pending_readings_are_anchored_and_provable(
    store: Store, chain: Chain, deployment: Deployment
) -> None:
    readings = add_readings(store, chain, 7)

    result = make_anchorer(store, chain, deployment).run_once()

    assert result.anchored == (1,)
    assert result.state is AnchorState.IDLE
    (batch,) = store.batches()
    assert (batch.status, batch.count, batch.from_ts, batch.to_ts) == (
        BatchStatus.ANCHORED,
        7,
        readings[0].timestamp,
        readings[-1].timestamp,
    )
    assert batch.tx_hash is not None
    receipt = chain.w3.eth.get_transaction_receipt(batch.tx_hash)  # type: ignore[arg-type]
    assert receipt["blockNumber"] == batch.block_number
    assert store.count_pending() == 0
    assert_every_reading_provable(store, chain, deployment, readings)


def test_readings_beyond_the_batch_limit_go_into_later_batches(
    store: Store, chain: Chain, deployment: Deployment
) -> None:
    readings = add_readings(store, chain, 25)
    anchorer = make_anchorer(store, chain, deployment, max_readings=10)

    states = [anchorer.run_once().state for _ in range(3)]

    assert states == [AnchorState.ANCHORING, AnchorState.ANCHORING, AnchorState.IDLE]
    assert [b.count for b in store.batches()] == [10, 10, 5]
    assert chain_last(chain, deployment) == 3
    assert_every_reading_provable(store, chain, deployment, readings)


def test_nothing_pending_sends_nothing(store: Store, chain: Chain, deployment: Deployment) -> None:
    result = make_anchorer(store, chain, deployment).run_once()

    assert (result.state, result.anchored) == (AnchorState.IDLE, ())
    assert chain_last(chain, deployment) == 0


def commit_intent(store: Store, batch_id: int) -> BatchRecord:
    """What a crash right after committing an intent (before sending it) leaves behind."""
    members = store.pending_leaves(1000)
    tree = MerkleTree([m.leaf for m in members])
    intent = BatchRecord(
        batch_id=batch_id,
        root=tree.root,
        count=len(members),
        from_ts=min(m.timestamp for m in members),
        to_ts=max(m.timestamp for m in members),
        status=BatchStatus.INTENT,
        tx_hash=None,
        block_number=None,
        created_at=utc_now_iso(),
        anchored_at=None,
    )
    store.create_batch_intent(intent, members)
    return intent


def test_an_intent_never_sent_is_sent_after_a_restart(
    store: Store, chain: Chain, deployment: Deployment
) -> None:
    readings = add_readings(store, chain, 5)
    commit_intent(store, 1)

    result = make_anchorer(store, chain, deployment).run_once()

    assert result.anchored == ()  # the intent was reconciled, no new batch was needed
    assert chain_last(chain, deployment) == 1
    assert [(b.batch_id, b.status) for b in store.batches()] == [(1, BatchStatus.ANCHORED)]
    assert_every_reading_provable(store, chain, deployment, readings)


def test_an_intent_mined_but_never_marked_is_marked_not_sent_again(
    store: Store, chain: Chain, deployment: Deployment
) -> None:
    readings = add_readings(store, chain, 5)
    intent = commit_intent(store, 1)
    receipt = chain.transact(
        deployment.reading_ledger.functions.anchor(
            1, intent.root, intent.count, intent.from_ts, intent.to_ts
        )
    )

    make_anchorer(store, chain, deployment).run_once()

    assert chain_last(chain, deployment) == 1
    (batch,) = store.batches()
    assert batch.status == BatchStatus.ANCHORED
    assert batch.tx_hash == bytes(receipt["transactionHash"])
    assert batch.block_number == receipt["blockNumber"]
    assert_every_reading_provable(store, chain, deployment, readings)


def test_a_foreign_root_under_the_intents_id_releases_its_readings_to_a_later_batch(
    store: Store, chain: Chain, deployment: Deployment
) -> None:
    readings = add_readings(store, chain, 4)
    commit_intent(store, 1)
    foreign_root = keccak(text="anchored by someone else")
    chain.transact(
        deployment.reading_ledger.functions.anchor(1, foreign_root, 1, FIRST_TS, FIRST_TS)
    )

    anchorer = make_anchorer(store, chain, deployment)
    first = anchorer.run_once()

    assert first.released == 4
    batches = store.batches()
    assert [(b.batch_id, b.status) for b in batches] == [
        (1, BatchStatus.FOREIGN),
        (2, BatchStatus.ANCHORED),
    ]
    assert batches[0].root == foreign_root
    assert_every_reading_provable(store, chain, deployment, readings)


def test_batches_anchored_outside_this_database_are_recorded_and_skipped(
    store: Store, chain: Chain, deployment: Deployment
) -> None:
    readings = add_readings(store, chain, 3)
    chain.transact(
        deployment.reading_ledger.functions.anchor(1, keccak(text="other"), 1, FIRST_TS, FIRST_TS)
    )

    make_anchorer(store, chain, deployment).run_once()

    assert [(b.batch_id, b.status) for b in store.batches()] == [
        (1, BatchStatus.FOREIGN),
        (2, BatchStatus.ANCHORED),
    ]
    assert_every_reading_provable(store, chain, deployment, readings)


def test_an_intent_ahead_of_the_chain_stops_anchoring(
    store: Store, chain: Chain, deployment: Deployment
) -> None:
    add_readings(store, chain, 2)
    commit_intent(store, 3)  # batches 1 and 2 are not on this chain

    with pytest.raises(AnchorStuck):
        make_anchorer(store, chain, deployment).run_once()
    assert chain_last(chain, deployment) == 0


def test_only_one_anchorer_holds_the_lease(
    database_url: str, chain: Chain, deployment: Deployment
) -> None:
    first_store = Store(store_location(database_url))
    second_store = Store(store_location(database_url))
    first = make_anchorer(first_store, chain, deployment)
    second = make_anchorer(second_store, chain, deployment)
    try:
        add_readings(first_store, chain, 3)

        assert first.run_once().state is AnchorState.IDLE
        assert second.run_once().state is AnchorState.STANDBY
        first.stop()  # releases the lease, as a dying process would
        add_readings(first_store, chain, 2, first_seq=4)
        taken_over = second.run_once()
    finally:
        second.stop()
        first_store.close()
        second_store.close()

    assert taken_over.anchored == (2,)
    assert chain_last(chain, deployment) == 2


# --- schema version 4: batches.final_at ------------------------------------------------------


# `batches` as schema version 3 created it in SQLite (SQLite cannot drop a column whose
# definition is followed by a comment, so the table is rebuilt from this text instead).
_SQLITE_BATCHES_V3 = """
CREATE TABLE batches_v3 (
    batch_id     BIGINT PRIMARY KEY,
    root         BLOB NOT NULL,
    count        INTEGER NOT NULL,
    from_ts      BLOB NOT NULL,
    to_ts        BLOB NOT NULL,
    status       TEXT NOT NULL,
    tx_hash      BLOB,
    block_number BIGINT,
    created_at   TEXT NOT NULL,
    anchored_at  TEXT
);
INSERT INTO batches_v3 SELECT batch_id, root, count, from_ts, to_ts, status, tx_hash,
    block_number, created_at, anchored_at FROM batches;
DROP TABLE batches;
ALTER TABLE batches_v3 RENAME TO batches;
UPDATE schema_info SET value = '3' WHERE key = 'version';
"""


def tables_after_version_4(tables: list[str]) -> list[str]:
    """The tables no version-3 database had: Alembic's history and those of later revisions
    (the read model, ...), i.e. every table the legacy v4 schema does not create."""
    v4 = set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", schema_v4("sqlite")))
    return [name for name in tables if name not in v4]


# Indexes later revisions added to version 4's own tables (a version-3 database has none of them).
INDEXES_AFTER_VERSION_4 = ("readings_for_bills",)  # 0004_readings_for_bills


def downgrade_to_version_3(database_url: str) -> None:
    """Makes the database what schema version 3 wrote: batches without `final_at`, and no
    Alembic history (the migrations came after version 4)."""
    location = store_location(database_url)
    if isinstance(location, Path):
        with closing(sqlite3.connect(location)) as db:
            db.executescript(_SQLITE_BATCHES_V3)
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for name in tables_after_version_4(tables):
                if not name.startswith("sqlite_"):
                    db.execute(f"DROP TABLE {name}")
            for index in INDEXES_AFTER_VERSION_4:
                db.execute(f"DROP INDEX IF EXISTS {index}")
            db.commit()
        return
    with psycopg.connect(location, autocommit=True) as db:
        db.execute("ALTER TABLE batches DROP COLUMN final_at")
        db.execute("ALTER TABLE batches DROP COLUMN leaf_version")  # added by migration 0007
        db.execute("UPDATE schema_info SET value = '3' WHERE key = 'version'")
        tables = [
            r[0]
            for r in db.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            ).fetchall()
        ]
        for name in tables_after_version_4(tables):
            db.execute(f"DROP TABLE {name}")
        for index in INDEXES_AFTER_VERSION_4:
            db.execute(f"DROP INDEX IF EXISTS {index}")


def anchored_then_downgraded(
    database_url: str, chain: Chain, deployment: Deployment
) -> list[StoredReading]:
    """Five readings anchored in batch 1 by a version-3 database (closed again)."""
    store = Store(store_location(database_url))
    try:
        readings = add_readings(store, chain, 5)
        make_anchorer(store, chain, deployment).run_once()
    finally:
        _started.pop().stop()
        store.close()
    downgrade_to_version_3(database_url)
    return readings


def test_a_version_3_database_is_upgraded_in_place_and_keeps_its_rows(
    database_url: str, chain: Chain, deployment: Deployment
) -> None:
    readings = anchored_then_downgraded(database_url, chain, deployment)

    store = Store(store_location(database_url))
    try:
        status, batches = store.status(), store.batches()
        stored = [store.reading(r.meter_id, r.seq) for r in readings]
    finally:
        store.close()

    assert status["schema_version"] == schema_version(head_revision())
    assert [(b.batch_id, b.status, b.count, b.final_at) for b in batches] == [
        (1, BatchStatus.ANCHORED, 5, None)
    ]
    assert batches[0].tx_hash is not None
    assert [(s.leaf, s.batch_id) for s in stored if s is not None] == [
        (r.leaf, 1) for r in readings
    ]


def test_a_batch_anchored_before_the_upgrade_is_final_once_checked_on_chain(
    database_url: str, chain: Chain, deployment: Deployment
) -> None:
    readings = anchored_then_downgraded(database_url, chain, deployment)
    store = Store(store_location(database_url))
    try:
        first = store.reading(readings[0].meter_id, readings[0].seq)
        assert first is not None
        before = ProofService(store).proof(first)

        make_anchorer(store, chain, deployment).run_once()

        assert before is None  # not served as final before the anchorer looked at the chain
        assert_every_reading_provable(store, chain, deployment, readings)
    finally:
        store.close()


def test_without_confirmations_a_batch_is_final_at_its_receipt(
    store: Store, chain: Chain, deployment: Deployment
) -> None:
    add_readings(store, chain, 2)

    make_anchorer(store, chain, deployment).run_once()

    (batch,) = store.batches()
    assert batch.final_at is not None
    assert store.count_unfinal_batches() == 0
