"""The batches table group: `batches` and the batch columns of `readings` (what the anchorer
writes and reads). Each function runs on a connection the `Store` hands it, under its lock or in
its write transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.store.backends import Backend, StoreError, from_u64, u64

BATCH_COLUMNS = (
    "batch_id, root, count, from_ts, to_ts, status, tx_hash, block_number, created_at, "
    "anchored_at, final_at, leaf_version"
)


class BatchStatus:
    INTENT = "intent"
    ANCHORED = "anchored"
    FOREIGN = "foreign"


@dataclass(frozen=True)
class BatchRecord:
    """One row of `batches`."""

    batch_id: int
    root: bytes
    count: int
    from_ts: int
    to_ts: int
    status: str
    tx_hash: bytes | None
    block_number: int | None
    created_at: str
    anchored_at: str | None
    final_at: str | None = None  # None while its block may still be reorganised away
    # The leaf encoding of its readings: 1 before reading leaf version 2, 2 since
    # (docs/reading-format.md); a verifier computes the leaf of this version.
    leaf_version: int = 2

    @property
    def final(self) -> bool:
        return self.final_at is not None


def batch_from_row(row: Sequence[Any]) -> BatchRecord:
    return BatchRecord(
        batch_id=int(row[0]),
        root=bytes(row[1]),
        count=int(row[2]),
        from_ts=from_u64(row[3]),
        to_ts=from_u64(row[4]),
        status=str(row[5]),
        tx_hash=None if row[6] is None else bytes(row[6]),
        block_number=None if row[7] is None else int(row[7]),
        created_at=str(row[8]),
        anchored_at=None if row[9] is None else str(row[9]),
        final_at=None if row[10] is None else str(row[10]),
        leaf_version=int(row[11]),
    )


@dataclass(frozen=True)
class PendingLeaf:
    """A reading not yet in a batch: what the batcher needs of it."""

    meter_id: bytes
    seq: int
    timestamp: int
    leaf: bytes


def batch_row(batch: BatchRecord) -> tuple[Any, ...]:
    return (
        batch.batch_id,
        batch.root,
        batch.count,
        u64(batch.from_ts),
        u64(batch.to_ts),
        batch.status,
        batch.tx_hash,
        batch.block_number,
        batch.created_at,
        batch.anchored_at,
        batch.final_at,
        batch.leaf_version,
    )


def count_pending(db: Backend) -> int:
    row = db.execute("SELECT COUNT(*) FROM readings WHERE batch_id IS NULL").fetchone()
    return int(row[0])


@dataclass(frozen=True)
class AnchoringBacklog:
    """What waits to be anchored, for the metrics: how many readings are in no batch, when the
    oldest of them was received, and when a batch was last seen mined (ISO 8601 UTC or None)."""

    pending: int
    oldest_pending_received_at: str | None
    last_anchored_at: str | None


def anchoring_backlog(db: Backend) -> AnchoringBacklog:
    # COUNT and MIN over the partial index readings_pending; MAX over batches, a small table.
    pending = db.execute(
        "SELECT COUNT(*), MIN(received_at) FROM readings WHERE batch_id IS NULL"
    ).fetchone()
    anchored = db.execute(
        "SELECT MAX(anchored_at) FROM batches WHERE status = ?", (BatchStatus.ANCHORED,)
    ).fetchone()
    return AnchoringBacklog(
        pending=int(pending[0]),
        oldest_pending_received_at=None if pending[1] is None else str(pending[1]),
        last_anchored_at=None if anchored is None or anchored[0] is None else str(anchored[0]),
    )


def pending_leaves(db: Backend, limit: int) -> list[PendingLeaf]:
    rows = db.execute(
        "SELECT meter_id, seq, timestamp, leaf FROM readings WHERE batch_id IS NULL "
        "ORDER BY received_at, meter_id, seq LIMIT ?",
        (limit,),
    ).fetchall()
    return [PendingLeaf(bytes(r[0]), from_u64(r[1]), from_u64(r[2]), bytes(r[3])) for r in rows]


def create_batch_intent(db: Backend, batch: BatchRecord, members: Sequence[PendingLeaf]) -> None:
    taken = db.execute("SELECT 1 FROM batches WHERE batch_id = ?", (batch.batch_id,)).fetchone()
    if taken is not None:
        raise StoreError(f"batch {batch.batch_id} already exists")
    db.execute(
        f"INSERT INTO batches ({BATCH_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        batch_row(batch),
    )
    db.executemany(
        "UPDATE readings SET batch_id = ?, leaf_index = ? "
        "WHERE meter_id = ? AND seq = ? AND batch_id IS NULL",
        [(batch.batch_id, i, m.meter_id, u64(m.seq)) for i, m in enumerate(members)],
    )
    assigned = db.execute(
        "SELECT COUNT(*) FROM readings WHERE batch_id = ?", (batch.batch_id,)
    ).fetchone()[0]
    if int(assigned) != len(members):
        raise StoreError(
            f"batch {batch.batch_id}: {assigned} of {len(members)} readings were still pending"
        )


def mark_anchored(
    db: Backend,
    batch_id: int,
    tx_hash: bytes | None,
    block_number: int | None,
    anchored_at: str,
    final_at: str | None,
) -> None:
    db.execute(
        "UPDATE batches SET status = ?, tx_hash = ?, block_number = ?, anchored_at = ?, "
        "final_at = ? WHERE batch_id = ? AND status = ?",
        (
            BatchStatus.ANCHORED,
            tx_hash,
            block_number,
            anchored_at,
            final_at,
            batch_id,
            BatchStatus.INTENT,
        ),
    )


def unfinal_batches(db: Backend, limit: int) -> list[BatchRecord]:
    rows = db.execute(
        f"SELECT {BATCH_COLUMNS} FROM batches WHERE status = ? AND final_at IS NULL "
        "ORDER BY batch_id LIMIT ?",
        (BatchStatus.ANCHORED, limit),
    ).fetchall()
    return [batch_from_row(r) for r in rows]


def update_anchor_block(
    db: Backend, batch_id: int, block_number: int, final_at: str | None
) -> None:
    db.execute(
        "UPDATE batches SET block_number = ?, final_at = ? "
        "WHERE batch_id = ? AND status = ? AND final_at IS NULL",
        (block_number, final_at, batch_id, BatchStatus.ANCHORED),
    )


def mark_dropped(db: Backend, batch_id: int) -> None:
    db.execute(
        "UPDATE batches SET status = ?, tx_hash = NULL, block_number = NULL, "
        "anchored_at = NULL WHERE batch_id = ? AND status = ? AND final_at IS NULL",
        (BatchStatus.INTENT, batch_id, BatchStatus.ANCHORED),
    )


def mark_foreign(db: Backend, batch_id: int, chain_root: bytes) -> int:
    released = db.execute(
        "UPDATE readings SET batch_id = NULL, leaf_index = NULL WHERE batch_id = ?",
        (batch_id,),
    ).rowcount
    db.execute(
        "UPDATE batches SET status = ?, root = ?, count = 0, tx_hash = NULL, "
        "block_number = NULL WHERE batch_id = ?",
        (BatchStatus.FOREIGN, chain_root, batch_id),
    )
    return int(released)


def batches(db: Backend, status: str | None) -> list[BatchRecord]:
    query = f"SELECT {BATCH_COLUMNS} FROM batches"
    params: tuple[Any, ...] = ()
    if status is not None:
        query += " WHERE status = ?"
        params = (status,)
    rows = db.execute(query + " ORDER BY batch_id", params).fetchall()
    return [batch_from_row(r) for r in rows]


def batch(db: Backend, batch_id: int) -> BatchRecord | None:
    row = db.execute(
        f"SELECT {BATCH_COLUMNS} FROM batches WHERE batch_id = ?", (batch_id,)
    ).fetchone()
    return None if row is None else batch_from_row(row)


def last_batch_id(db: Backend, status: str | None) -> int:
    query = "SELECT MAX(batch_id) FROM batches"
    params: tuple[str, ...] = ()
    if status is not None:
        query, params = query + " WHERE status = ?", (status,)
    row = db.execute(query, params).fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


def count_batches(db: Backend, status: str) -> int:
    row = db.execute("SELECT COUNT(*) FROM batches WHERE status = ?", (status,)).fetchone()
    return int(row[0])


def count_unfinal_batches(db: Backend) -> int:
    row = db.execute(
        "SELECT COUNT(*) FROM batches WHERE status = ? AND final_at IS NULL",
        (BatchStatus.ANCHORED,),
    ).fetchone()
    return int(row[0])


def batch_leaves(db: Backend, batch_id: int) -> list[bytes]:
    rows = db.execute(
        "SELECT leaf FROM readings WHERE batch_id = ? ORDER BY leaf_index", (batch_id,)
    ).fetchall()
    return [bytes(r[0]) for r in rows]
