"""The readings table group: `readings`, `reading_gaps`, `meter_integrity_events`.

`ReadingWriter` holds the statements of one ingest write transaction (the hot path: raw driver,
no SQLAlchemy); the functions below it are the reads the store answers outside one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ledger.store.backends import Backend, from_u64, u64

READING_COLUMNS = (
    "meter_id, seq, timestamp, import_wh, export_wh, status, canonical, signature, key_epoch, "
    "leaf, receipt_id, received_at, batch_id, source, raw, leaf_index"
)
# What the sequence checks read of a stored reading (`Neighbour`).
_NEIGHBOUR_COLUMNS = "seq, timestamp, import_wh, export_wh"
_INSERT_READING = (
    f"INSERT INTO readings ({READING_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT (meter_id, seq) DO NOTHING"
)


@dataclass(frozen=True)
class StoredReading:
    """One row of `readings`."""

    meter_id: bytes
    seq: int
    timestamp: int
    import_wh: int
    export_wh: int
    status: int
    canonical: bytes
    signature: bytes
    key_epoch: int
    leaf: bytes
    receipt_id: str
    received_at: str
    batch_id: int | None = None
    # "native": `signature` signs `canonical`. "ocmf": `raw` is the whole OCMF record as received
    # (`OCMF|{payload}|{signature}`), `signature` the decoded SD bytes, which sign the payload
    # inside it, and `canonical` is the same reading re-encoded by the gateway.
    source: str = "native"
    raw: bytes | None = None
    leaf_index: int | None = None


class Neighbour(NamedTuple):
    """What the sequence checks of a new reading need of a stored one of the same meter.

    Four narrow columns instead of the whole row: these are read for every reading ingested,
    and the whole row (256 canonical bytes, signature, raw record, ...) is wanted only for a
    duplicate or a conflict (`ReadingWriter.reading`).
    """

    seq: int
    timestamp: int
    import_wh: int
    export_wh: int


def _neighbour(row: Sequence[Any]) -> Neighbour:
    return Neighbour(from_u64(row[0]), from_u64(row[1]), from_u64(row[2]), from_u64(row[3]))


@dataclass(frozen=True)
class IntegrityEvent:
    """One row of `meter_integrity_events`."""

    meter_id: bytes
    seq: int
    kind: str
    stored_hash: bytes
    received_hash: bytes
    received_canonical: bytes
    received_signature: bytes
    detected_at: str
    received_raw: bytes | None = None  # an OCMF record: what its signature signs


@dataclass(frozen=True)
class Gap:
    """One row of `reading_gaps`: seqs from_seq..to_seq (inclusive) were missing."""

    meter_id: bytes
    from_seq: int
    to_seq: int
    detected_at: str
    resolved_at: str | None


def reading_from_row(row: Sequence[Any]) -> StoredReading:
    return StoredReading(
        meter_id=bytes(row[0]),
        seq=from_u64(row[1]),
        timestamp=from_u64(row[2]),
        import_wh=from_u64(row[3]),
        export_wh=from_u64(row[4]),
        status=int(row[5]),
        canonical=bytes(row[6]),
        signature=bytes(row[7]),
        key_epoch=int(row[8]),
        leaf=bytes(row[9]),
        receipt_id=str(row[10]),
        received_at=str(row[11]),
        batch_id=None if row[12] is None else int(row[12]),
        source=str(row[13]),
        raw=None if row[14] is None else bytes(row[14]),
        leaf_index=None if row[15] is None else int(row[15]),
    )


class ReadingWriter:
    """The statements of one write transaction over readings (see `Store.reading_transaction`).

    Every read here sees the transaction's own earlier writes, so readings of one request are
    checked against each other as well as against what was stored before.

    Inserted readings are held back and sent as one `executemany` (`flush`): one statement per
    reading costs several times more on the ingest path. What the reads need of them is kept
    here: a meter's latest reading inserted by this transaction answers `latest` without a
    query, and any other read of a meter with held-back rows sends them first.
    """

    def __init__(self, db: Backend) -> None:
        self._db = db
        self._pending_rows: list[tuple[Any, ...]] = []
        self._pending_meters: set[bytes] = set()
        # The meter's highest seq in the database once the held-back rows are in: set by an
        # insert the caller marks as the meter's new latest reading (`insert_reading`).
        self._latest: dict[bytes, Neighbour] = {}

    def flush(self) -> None:
        """Sends the held-back inserts (`Store.reading_transaction` calls it before COMMIT)."""
        if self._pending_rows:
            self._db.executemany(_INSERT_READING, self._pending_rows)
            self._pending_rows = []
            self._pending_meters.clear()

    def _flush_for(self, meter_id: bytes) -> None:
        if meter_id in self._pending_meters:
            self.flush()

    def reading(self, meter_id: bytes, seq: int) -> StoredReading | None:
        self._flush_for(meter_id)
        row = self._db.execute(
            f"SELECT {READING_COLUMNS} FROM readings WHERE meter_id = ? AND seq = ?",
            (meter_id, u64(seq)),
        ).fetchone()
        return None if row is None else reading_from_row(row)

    def latest(self, meter_id: bytes) -> Neighbour | None:
        """The meter's stored reading with the highest seq, or None if it has none."""
        known = self._latest.get(meter_id)
        if known is not None:
            return known
        self._flush_for(meter_id)
        row = self._db.execute(
            f"SELECT {_NEIGHBOUR_COLUMNS} FROM readings WHERE meter_id = ? "
            "ORDER BY seq DESC LIMIT 1",
            (meter_id,),
        ).fetchone()
        return None if row is None else _neighbour(row)

    def neighbours(self, meter_id: bytes, seq: int) -> tuple[Neighbour | None, Neighbour | None]:
        """The stored readings of the meter just below and just above `seq`."""
        self._flush_for(meter_id)
        before = self._db.execute(
            f"SELECT {_NEIGHBOUR_COLUMNS} FROM readings WHERE meter_id = ? AND seq < ? "
            "ORDER BY seq DESC LIMIT 1",
            (meter_id, u64(seq)),
        ).fetchone()
        after = self._db.execute(
            f"SELECT {_NEIGHBOUR_COLUMNS} FROM readings WHERE meter_id = ? AND seq > ? "
            "ORDER BY seq ASC LIMIT 1",
            (meter_id, u64(seq)),
        ).fetchone()
        return (
            None if before is None else _neighbour(before),
            None if after is None else _neighbour(after),
        )

    def insert_reading(self, reading: StoredReading, *, is_latest: bool = False) -> None:
        """Inserts a reading; a row already stored under (meter_id, seq) is left unchanged.

        `is_latest`: the caller knows the seq is above every stored one of the meter (and that
        none is stored under it), so `latest` answers this reading without a query."""
        meter_id = reading.meter_id
        self._pending_rows.append(
            (
                meter_id,
                u64(reading.seq),
                u64(reading.timestamp),
                u64(reading.import_wh),
                u64(reading.export_wh),
                reading.status,
                reading.canonical,
                reading.signature,
                reading.key_epoch,
                reading.leaf,
                reading.receipt_id,
                reading.received_at,
                reading.batch_id,
                reading.source,
                reading.raw,
                reading.leaf_index,
            )
        )
        self._pending_meters.add(meter_id)
        if is_latest:
            self._latest[meter_id] = Neighbour(
                reading.seq, reading.timestamp, reading.import_wh, reading.export_wh
            )

    def record_integrity_event(self, event: IntegrityEvent) -> None:
        self._db.execute(
            "INSERT INTO meter_integrity_events (meter_id, seq, kind, stored_hash, received_hash, "
            "received_canonical, received_signature, detected_at, received_raw) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (
                event.meter_id,
                u64(event.seq),
                event.kind,
                event.stored_hash,
                event.received_hash,
                event.received_canonical,
                event.received_signature,
                event.detected_at,
                event.received_raw,
            ),
        )

    def open_gap_containing(self, meter_id: bytes, seq: int) -> tuple[int, Gap] | None:
        """The open gap (row id, gap) of the meter that contains `seq`, if any."""
        # Gaps are their own table: the held-back readings do not change the answer.
        row = self._db.execute(
            "SELECT id, meter_id, from_seq, to_seq, detected_at, resolved_at FROM reading_gaps "
            "WHERE meter_id = ? AND resolved_at IS NULL AND from_seq <= ? AND to_seq >= ? "
            "ORDER BY from_seq DESC LIMIT 1",
            (meter_id, u64(seq), u64(seq)),
        ).fetchone()
        return None if row is None else (int(row[0]), _gap(row[1:]))

    def resolve_gap(self, gap_id: int, resolved_at: str) -> None:
        self._db.execute(
            "UPDATE reading_gaps SET resolved_at = ? WHERE id = ?", (resolved_at, gap_id)
        )

    def record_gap(self, meter_id: bytes, from_seq: int, to_seq: int, detected_at: str) -> None:
        self._db.execute(
            "INSERT INTO reading_gaps (meter_id, from_seq, to_seq, detected_at) VALUES (?,?,?,?)",
            (meter_id, u64(from_seq), u64(to_seq), detected_at),
        )


def _gap(row: Sequence[Any]) -> Gap:
    return Gap(
        meter_id=bytes(row[0]),
        from_seq=from_u64(row[1]),
        to_seq=from_u64(row[2]),
        detected_at=str(row[3]),
        resolved_at=None if row[4] is None else str(row[4]),
    )


def first_reading_at_or_after(db: Backend, meter_id: bytes, timestamp: int) -> StoredReading | None:
    row = db.execute(
        f"SELECT {READING_COLUMNS} FROM readings WHERE meter_id = ? AND timestamp >= ? "
        "ORDER BY seq LIMIT 1",
        (meter_id, u64(timestamp)),
    ).fetchone()
    return None if row is None else reading_from_row(row)


def readings_of_key_from(
    db: Backend, meter_id: bytes, key_epoch: int, timestamp: int, *, after_seq: int, limit: int
) -> tuple[int, list[StoredReading]]:
    where = "WHERE meter_id = ? AND key_epoch = ? AND timestamp >= ?"
    params: tuple[Any, ...] = (meter_id, key_epoch, u64(timestamp))
    total = db.execute(f"SELECT COUNT(*) FROM readings {where}", params).fetchone()
    rows = db.execute(
        f"SELECT {READING_COLUMNS} FROM readings {where} AND seq > ? ORDER BY seq LIMIT ?",
        (*params, u64(after_seq) if after_seq >= 0 else b"", limit),
    ).fetchall()
    return int(total[0]), [reading_from_row(row) for row in rows]


def integrity_events(db: Backend, meter_id: bytes) -> list[IntegrityEvent]:
    rows = db.execute(
        "SELECT meter_id, seq, kind, stored_hash, received_hash, received_canonical, "
        "received_signature, detected_at, received_raw FROM meter_integrity_events "
        "WHERE meter_id = ? ORDER BY id",
        (meter_id,),
    ).fetchall()
    return [
        IntegrityEvent(
            meter_id=bytes(r[0]),
            seq=from_u64(r[1]),
            kind=str(r[2]),
            stored_hash=bytes(r[3]),
            received_hash=bytes(r[4]),
            received_canonical=bytes(r[5]),
            received_signature=bytes(r[6]),
            detected_at=str(r[7]),
            received_raw=None if r[8] is None else bytes(r[8]),
        )
        for r in rows
    ]


def gaps(db: Backend, meter_id: bytes, *, open_only: bool) -> list[Gap]:
    query = (
        "SELECT meter_id, from_seq, to_seq, detected_at, resolved_at FROM reading_gaps "
        "WHERE meter_id = ?"
    )
    if open_only:
        query += " AND resolved_at IS NULL"
    rows = db.execute(query + " ORDER BY id", (meter_id,)).fetchall()
    return [_gap(r) for r in rows]


def count_readings(db: Backend, meter_id: bytes | None) -> int:
    if meter_id is None:
        row = db.execute("SELECT COUNT(*) FROM readings").fetchone()
    else:
        row = db.execute("SELECT COUNT(*) FROM readings WHERE meter_id = ?", (meter_id,)).fetchone()
    return int(row[0])
