"""The gateway's durable store: SQLite in WAL mode with synchronous=FULL.

WAL lets readers run beside the single writer; synchronous=FULL makes a COMMIT durable across a
power cut, which is what "acknowledged means durable" needs. The schema is versioned in the
database itself so later releases can migrate it in place.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.errors import ConfigError
from ledger.settings import Settings

SCHEMA_VERSION = 2
# uint64 values (seq, timestamp, registers) do not fit SQLite's signed 64-bit INTEGER, so they are
# stored as 8-byte big-endian BLOBs: BLOBs compare with memcmp, so they sort like the numbers and
# `ORDER BY seq` / `seq < ?` work. Meter ids are the raw bytes32.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_info (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Accepted native readings: the exact bytes and signature received, never a re-serialisation.
CREATE TABLE IF NOT EXISTS readings (
    meter_id    BLOB NOT NULL,      -- bytes32
    seq         BLOB NOT NULL,      -- uint64 big-endian
    timestamp   BLOB NOT NULL,      -- uint64 big-endian, Unix seconds
    import_wh   BLOB NOT NULL,      -- uint64 big-endian, OBIS 1-0:1.8.0
    export_wh   BLOB NOT NULL,      -- uint64 big-endian, OBIS 1-0:2.8.0
    status      INTEGER NOT NULL,   -- uint32
    canonical   BLOB NOT NULL,      -- the 256 canonical bytes as received
    signature   BLOB NOT NULL,      -- the signature bytes as received (first accepted form)
    key_epoch   INTEGER NOT NULL,   -- MeterRegistry key epoch the signature verified under
    leaf        BLOB NOT NULL,      -- keccak256(keccak256(canonical))
    receipt_id  TEXT NOT NULL UNIQUE,
    received_at TEXT NOT NULL,      -- ISO 8601 UTC
    batch_id    INTEGER,            -- ReadingLedger batch, set by the anchorer; NULL = pending
    PRIMARY KEY (meter_id, seq)
);
CREATE INDEX IF NOT EXISTS readings_pending ON readings(batch_id) WHERE batch_id IS NULL;
-- A meter signed two different readings with the same seq: evidence for auditors.
CREATE TABLE IF NOT EXISTS meter_integrity_events (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    meter_id           BLOB NOT NULL,
    seq                BLOB NOT NULL,
    kind               TEXT NOT NULL,
    stored_hash        BLOB NOT NULL,   -- SHA-256 of the stored canonical bytes
    received_hash      BLOB NOT NULL,   -- SHA-256 of the refused canonical bytes
    received_canonical BLOB NOT NULL,
    received_signature BLOB NOT NULL,
    detected_at        TEXT NOT NULL
);
-- Sequence numbers missing between two stored readings of a meter. A gap is never deleted: when
-- a late reading fills part of it, it is marked resolved and what is still missing is recorded
-- as new open gaps.
CREATE TABLE IF NOT EXISTS reading_gaps (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    meter_id    BLOB NOT NULL,
    from_seq    BLOB NOT NULL,      -- uint64 big-endian, inclusive
    to_seq      BLOB NOT NULL,      -- uint64 big-endian, inclusive
    detected_at TEXT NOT NULL,
    resolved_at TEXT
);
CREATE INDEX IF NOT EXISTS reading_gaps_open ON reading_gaps(meter_id, from_seq)
    WHERE resolved_at IS NULL;
"""

_READING_COLUMNS = (
    "meter_id, seq, timestamp, import_wh, export_wh, status, canonical, signature, key_epoch, "
    "leaf, receipt_id, received_at, batch_id"
)


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def _int(blob: bytes) -> int:
    return int.from_bytes(blob, "big")


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


@dataclass(frozen=True)
class Gap:
    """One row of `reading_gaps`: seqs from_seq..to_seq (inclusive) were missing."""

    meter_id: bytes
    from_seq: int
    to_seq: int
    detected_at: str
    resolved_at: str | None


def _reading(row: tuple[Any, ...]) -> StoredReading:
    return StoredReading(
        meter_id=bytes(row[0]),
        seq=_int(row[1]),
        timestamp=_int(row[2]),
        import_wh=_int(row[3]),
        export_wh=_int(row[4]),
        status=int(row[5]),
        canonical=bytes(row[6]),
        signature=bytes(row[7]),
        key_epoch=int(row[8]),
        leaf=bytes(row[9]),
        receipt_id=str(row[10]),
        received_at=str(row[11]),
        batch_id=None if row[12] is None else int(row[12]),
    )


class ReadingWriter:
    """The statements of one write transaction over readings (see `Store.reading_transaction`).

    Every read here sees the transaction's own earlier writes, so readings of one request are
    checked against each other as well as against what was stored before.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def reading(self, meter_id: bytes, seq: int) -> StoredReading | None:
        row = self._db.execute(
            f"SELECT {_READING_COLUMNS} FROM readings WHERE meter_id = ? AND seq = ?",
            (meter_id, _u64(seq)),
        ).fetchone()
        return None if row is None else _reading(row)

    def neighbours(
        self, meter_id: bytes, seq: int
    ) -> tuple[StoredReading | None, StoredReading | None]:
        """The stored readings of the meter just below and just above `seq`."""
        before = self._db.execute(
            f"SELECT {_READING_COLUMNS} FROM readings WHERE meter_id = ? AND seq < ? "
            "ORDER BY seq DESC LIMIT 1",
            (meter_id, _u64(seq)),
        ).fetchone()
        after = self._db.execute(
            f"SELECT {_READING_COLUMNS} FROM readings WHERE meter_id = ? AND seq > ? "
            "ORDER BY seq ASC LIMIT 1",
            (meter_id, _u64(seq)),
        ).fetchone()
        return (
            None if before is None else _reading(before),
            None if after is None else _reading(after),
        )

    def insert_reading(self, reading: StoredReading) -> None:
        """Inserts a reading; a row already stored under (meter_id, seq) is left unchanged."""
        self._db.execute(
            f"INSERT INTO readings ({_READING_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (meter_id, seq) DO NOTHING",
            (
                reading.meter_id,
                _u64(reading.seq),
                _u64(reading.timestamp),
                _u64(reading.import_wh),
                _u64(reading.export_wh),
                reading.status,
                reading.canonical,
                reading.signature,
                reading.key_epoch,
                reading.leaf,
                reading.receipt_id,
                reading.received_at,
                reading.batch_id,
            ),
        )

    def record_integrity_event(self, event: IntegrityEvent) -> None:
        self._db.execute(
            "INSERT INTO meter_integrity_events (meter_id, seq, kind, stored_hash, received_hash, "
            "received_canonical, received_signature, detected_at) VALUES (?,?,?,?,?,?,?,?)",
            (
                event.meter_id,
                _u64(event.seq),
                event.kind,
                event.stored_hash,
                event.received_hash,
                event.received_canonical,
                event.received_signature,
                event.detected_at,
            ),
        )

    def open_gap_containing(self, meter_id: bytes, seq: int) -> tuple[int, Gap] | None:
        """The open gap (row id, gap) of the meter that contains `seq`, if any."""
        row = self._db.execute(
            "SELECT id, meter_id, from_seq, to_seq, detected_at, resolved_at FROM reading_gaps "
            "WHERE meter_id = ? AND resolved_at IS NULL AND from_seq <= ? AND to_seq >= ? "
            "ORDER BY from_seq DESC LIMIT 1",
            (meter_id, _u64(seq), _u64(seq)),
        ).fetchone()
        return None if row is None else (int(row[0]), _gap(row[1:]))

    def resolve_gap(self, gap_id: int, resolved_at: str) -> None:
        self._db.execute(
            "UPDATE reading_gaps SET resolved_at = ? WHERE id = ?", (resolved_at, gap_id)
        )

    def record_gap(self, meter_id: bytes, from_seq: int, to_seq: int, detected_at: str) -> None:
        self._db.execute(
            "INSERT INTO reading_gaps (meter_id, from_seq, to_seq, detected_at) VALUES (?,?,?,?)",
            (meter_id, _u64(from_seq), _u64(to_seq), detected_at),
        )


def _gap(row: tuple[Any, ...]) -> Gap:
    return Gap(
        meter_id=bytes(row[0]),
        from_seq=_int(row[1]),
        to_seq=_int(row[2]),
        detected_at=str(row[3]),
        resolved_at=None if row[4] is None else str(row[4]),
    )


class Store:
    """One SQLite database file, opened with durable settings."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # The gateway serves requests from a thread pool; one connection guarded by a lock keeps
        # SQLite's single-writer rule explicit.
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        # Another process (a second gateway, the CLI) may hold the write lock briefly.
        self._db.execute("PRAGMA busy_timeout=10000")
        with self._lock:
            self._db.executescript(_SCHEMA)
            # Version 2 only added tables (created above if missing), so older files upgrade here.
            self._db.execute(
                "INSERT INTO schema_info(key, value) VALUES ('version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value "
                "WHERE CAST(schema_info.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                (str(SCHEMA_VERSION),),
            )

    @classmethod
    def open(cls, settings: Settings) -> Store:
        """Opens the store the settings name (only SQLite so far)."""
        path = settings.sqlite_path
        if path is None:
            raise ConfigError(
                f"LEDGER_DATABASE_URL {settings.database_url!r} is not supported: "
                "use sqlite:///path/to/file.db"
            )
        return cls(path)

    def status(self) -> dict[str, Any]:
        """Health facts: backend, file, journal mode, synchronous level, schema version."""
        with self._lock:
            journal = self._db.execute("PRAGMA journal_mode").fetchone()[0]
            synchronous = self._db.execute("PRAGMA synchronous").fetchone()[0]
            version = self._db.execute(
                "SELECT value FROM schema_info WHERE key = 'version'"
            ).fetchone()[0]
        return {
            "backend": "sqlite",
            "path": str(self.path),
            "journal_mode": journal,
            "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[synchronous],
            "schema_version": int(version),
            "ok": True,
        }

    @contextmanager
    def reading_transaction(self) -> Iterator[ReadingWriter]:
        """One write transaction, under the store's lock: BEGIN IMMEDIATE ... COMMIT.

        IMMEDIATE takes SQLite's write lock at the start, so what the caller reads inside (a
        meter's stored neighbours) cannot change before it writes: two requests for the same
        (meter, seq), in this process or another, cannot both be accepted. The COMMIT is durable
        (synchronous=FULL) when this block exits; an exception rolls everything back.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield ReadingWriter(self._db)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def reading(self, meter_id: bytes, seq: int) -> StoredReading | None:
        """The stored reading (meter_id, seq), or None."""
        with self._lock:
            return ReadingWriter(self._db).reading(meter_id, seq)

    def integrity_events(self, meter_id: bytes) -> list[IntegrityEvent]:
        """The meter's integrity events, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT meter_id, seq, kind, stored_hash, received_hash, received_canonical, "
                "received_signature, detected_at FROM meter_integrity_events "
                "WHERE meter_id = ? ORDER BY id",
                (meter_id,),
            ).fetchall()
        return [
            IntegrityEvent(
                meter_id=bytes(r[0]),
                seq=_int(r[1]),
                kind=str(r[2]),
                stored_hash=bytes(r[3]),
                received_hash=bytes(r[4]),
                received_canonical=bytes(r[5]),
                received_signature=bytes(r[6]),
                detected_at=str(r[7]),
            )
            for r in rows
        ]

    def gaps(self, meter_id: bytes, *, open_only: bool = False) -> list[Gap]:
        """The meter's recorded gaps (only unresolved ones with `open_only`), by detection."""
        query = (
            "SELECT meter_id, from_seq, to_seq, detected_at, resolved_at FROM reading_gaps "
            "WHERE meter_id = ?"
        )
        if open_only:
            query += " AND resolved_at IS NULL"
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", (meter_id,)).fetchall()
        return [_gap(r) for r in rows]

    def count_readings(self, meter_id: bytes) -> int:
        """How many readings of the meter are stored."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM readings WHERE meter_id = ?", (meter_id,)
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
