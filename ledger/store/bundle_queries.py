"""The reads a reading bundle is written from, one bounded page at a time.

A bundle may hold a month of a large fleet, so nothing here loads a whole selection: batches are
read by keyset pagination on `batch_id`, a batch's readings on `(batch_id, leaf_index)` (the
`readings_by_batch` index). Each page takes the store's lock for one query only, so a bundle
streamed over HTTP for minutes never holds the lock while the client reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ledger.store.backends import u64
from ledger.store.batches import BATCH_COLUMNS, BatchRecord, BatchStatus, batch_from_row
from ledger.store.database import Store
from ledger.store.readings import READING_COLUMNS, StoredReading, reading_from_row

PAGE_SIZE = 500
"""Rows per query: a page of readings is ~1 KB each, so a page costs ~0.5 MB at most."""


@dataclass(frozen=True)
class BatchIdCensus:
    """What the store holds of the batch ids first..last (inclusive)."""

    anchored: int
    other: tuple[tuple[int, str], ...]
    """(batch id, status) of the first ids found that are not anchored (intent or foreign)."""
    missing: tuple[int, ...]
    """The first ids the store holds no batch under."""


def census_of_batch_ids(
    store: Store, first: int, last: int, *, examples: int = 10
) -> BatchIdCensus:
    """Counts the anchored batches among ids first..last and names (up to `examples` of) the
    ids that are missing or not anchored; reads the ids page by page."""
    anchored = 0
    other: list[tuple[int, str]] = []
    missing: list[int] = []
    expected = first
    after = first - 1
    while True:
        with store.read() as db:
            rows = db.execute(
                "SELECT batch_id, status FROM batches WHERE batch_id > ? AND batch_id <= ? "
                "ORDER BY batch_id LIMIT ?",
                (after, last, PAGE_SIZE),
            ).fetchall()
        for batch_id, status in rows:
            batch_id = int(batch_id)
            missing.extend(range(expected, batch_id)[: examples - len(missing)])
            expected = batch_id + 1
            if status == BatchStatus.ANCHORED:
                anchored += 1
            elif len(other) < examples:
                other.append((batch_id, str(status)))
        if len(rows) < PAGE_SIZE:
            break
        after = int(rows[-1][0])
    missing.extend(range(expected, last + 1)[: examples - len(missing)])
    return BatchIdCensus(anchored, tuple(other), tuple(missing))


def anchored_batches(
    store: Store,
    *,
    batch_ids: tuple[int, int] | None = None,
    time_range: tuple[int, int] | None = None,
) -> Iterator[BatchRecord]:
    """The anchored batches with ids in `batch_ids` (inclusive), or whose readings' times
    [from_ts, to_ts] meet `time_range` [from, to), by id, read page by page."""
    where = ["status = ?"]
    params: list[object] = [BatchStatus.ANCHORED]
    if batch_ids is not None:
        where.append("batch_id >= ? AND batch_id <= ?")
        params += [batch_ids[0], batch_ids[1]]
    if time_range is not None:
        # uint64 big-endian blobs compare like the numbers (schema.py).
        where.append("from_ts < ? AND to_ts >= ?")
        params += [u64(time_range[1]), u64(time_range[0])]
    after = -1
    while True:
        with store.read() as db:
            rows = db.execute(
                f"SELECT {BATCH_COLUMNS} FROM batches WHERE {' AND '.join(where)} "
                "AND batch_id > ? ORDER BY batch_id LIMIT ?",
                (*params, after, PAGE_SIZE),
            ).fetchall()
        for row in rows:
            yield batch_from_row(row)
        if len(rows) < PAGE_SIZE:
            return
        after = int(rows[-1][0])


def readings_of_batch(store: Store, batch_id: int) -> Iterator[StoredReading]:
    """The stored readings of batch `batch_id` in leaf order, read page by page."""
    after = -1
    while True:
        with store.read() as db:
            rows = db.execute(
                f"SELECT {READING_COLUMNS} FROM readings WHERE batch_id = ? AND leaf_index > ? "
                "ORDER BY leaf_index LIMIT ?",
                (batch_id, after, PAGE_SIZE),
            ).fetchall()
        for row in rows:
            yield reading_from_row(row)
        if len(rows) < PAGE_SIZE:
            return
        after = int(rows[-1][15])
