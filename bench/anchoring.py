"""Acknowledged -> anchored latency, read from the gateway's SQLite file (read-only).

A reading's latency is its batch's `anchored_at` minus its own `received_at` (the time of the
write transaction that stored it, just before the 202). Readings are picked by seq range, which
the benchmark knows for each phase (every meter sends the same seqs in a phase).
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


def _u64(value: int) -> bytes:
    # The store keeps seq as an 8-byte big-endian BLOB (ledger/store/backends.py).
    return value.to_bytes(8, "big")


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@contextmanager
def _connect(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection, closed on exit (WAL: it never blocks the gateway's writer)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        yield db
    finally:
        db.close()


def has_anchorer(db_path: Path) -> bool:
    """Whether the gateway's store has the anchorer's `batches` table."""
    with _connect(db_path) as db:
        row = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'batches'"
        ).fetchone()
    return row is not None


def count_pending(db_path: Path) -> int:
    """How many readings are in no batch."""
    with _connect(db_path) as db:
        row = db.execute("SELECT count(*) FROM readings WHERE batch_id IS NULL").fetchone()
    return int(row[0])


_ANCHORED = (
    "SELECT r.received_at, b.anchored_at, b.batch_id FROM readings r "
    "LEFT JOIN batches b ON b.batch_id = r.batch_id AND b.status = 'anchored' "
    "WHERE r.seq BETWEEN ? AND ?"
)


@dataclass(frozen=True)
class AnchorLatency:
    readings: int
    anchored: int
    batches: int
    p50_s: float | None
    p99_s: float | None
    max_s: float | None


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def pending_in(db_path: Path, first_seq: int, last_seq: int) -> tuple[int, int]:
    """(readings, anchored readings) with seq in [first_seq, last_seq]."""
    with _connect(db_path) as db:
        rows = db.execute(_ANCHORED, (_u64(first_seq), _u64(last_seq))).fetchall()
    return len(rows), sum(row[1] is not None for row in rows)


def wait_anchored(db_path: Path, first_seq: int, last_seq: int, *, timeout_s: float) -> bool:
    """Waits until every reading in the seq range is in an anchored batch; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        total, anchored = pending_in(db_path, first_seq, last_seq)
        if total and anchored == total:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def latency(db_path: Path, first_seq: int, last_seq: int) -> AnchorLatency:
    """Latency percentiles over the anchored readings with seq in [first_seq, last_seq]; the
    percentiles are None when any reading of the range is not anchored."""
    with _connect(db_path) as db:
        rows = db.execute(_ANCHORED, (_u64(first_seq), _u64(last_seq))).fetchall()
    anchored = [(_seconds(a) - _seconds(r), b) for r, a, b in rows if a is not None]
    values = sorted(v for v, _ in anchored)
    complete = bool(rows) and len(values) == len(rows)
    return AnchorLatency(
        readings=len(rows),
        anchored=len(values),
        batches=len({b for _, b in anchored}),
        p50_s=_percentile(values, 0.50) if complete else None,
        p99_s=_percentile(values, 0.99) if complete else None,
        max_s=values[-1] if complete else None,
    )
