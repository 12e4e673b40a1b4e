"""The gateway's durable store: SQLite (WAL, synchronous=FULL) by default, PostgreSQL by URL.

SQLite: WAL lets readers run beside the single writer; synchronous=FULL makes a COMMIT durable
across a power cut, which is what "acknowledged means durable" needs. PostgreSQL: its default
(fsync on, synchronous_commit on) is durable at COMMIT; several gateways can share one database.

One SQL text serves both (written with `?` placeholders; the PostgreSQL backend rewrites them to
`%s`). The schema is versioned in the database itself so later releases can migrate it in place.

A PostgreSQL server may restart under a running gateway. The backend then reconnects on the next
use: a statement outside a transaction (every read) is retried once on a new connection, and so
is the start of a write transaction; a write transaction that was already under way when the
connection broke is lost with it, and fails as `StoreUnavailable` so that nothing it held is
acknowledged (the client sends it again; readings are idempotent on (meter, seq)).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

from ledger.errors import ConfigError, LedgerError
from ledger.redaction import redact_url
from ledger.settings import Settings

SCHEMA_VERSION = 4
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
    meter_id    {blob} NOT NULL,    -- bytes32
    seq         {blob} NOT NULL,    -- uint64 big-endian
    timestamp   {blob} NOT NULL,    -- uint64 big-endian, Unix seconds
    import_wh   {blob} NOT NULL,    -- uint64 big-endian, OBIS 1-0:1.8.0
    export_wh   {blob} NOT NULL,    -- uint64 big-endian, OBIS 1-0:2.8.0
    status      BIGINT NOT NULL,    -- uint32
    canonical   {blob} NOT NULL,    -- the 256 canonical bytes (as received, for native readings)
    signature   {blob} NOT NULL,    -- the signature bytes as received (first accepted form)
    key_epoch   INTEGER NOT NULL,   -- MeterRegistry key epoch the signature verified under
    leaf        {blob} NOT NULL,    -- keccak256(keccak256(canonical))
    receipt_id  TEXT NOT NULL UNIQUE,
    received_at TEXT NOT NULL,      -- ISO 8601 UTC
    batch_id    BIGINT,             -- ReadingLedger batch (intent or anchored); NULL = pending
    source      TEXT NOT NULL DEFAULT 'native',  -- 'native' | 'ocmf'
    raw         {blob},             -- OCMF: the exact string received (its signature signs it)
    leaf_index  INTEGER,            -- position of the leaf in its batch's Merkle tree
    PRIMARY KEY (meter_id, seq)
);
CREATE INDEX IF NOT EXISTS readings_pending ON readings(received_at) WHERE batch_id IS NULL;
CREATE INDEX IF NOT EXISTS readings_by_batch ON readings(batch_id, leaf_index);
-- Batches of readings for ReadingLedger. A row is committed as an 'intent' (root, and
-- readings.batch_id / leaf_index of its members) BEFORE the anchoring transaction is sent, and
-- marked 'anchored' from the transaction receipt or the chain's event. 'foreign': the chain holds
-- another root under this id (anchored by something that is not this database); its readings
-- were released to a later batch. An anchored batch is final (`final_at`) once the anchorer saw
-- its block LEDGER_CONFIRMATIONS deep on the canonical chain with its root; until then a
-- reorganisation may drop it, and it becomes an intent again.
CREATE TABLE IF NOT EXISTS batches (
    batch_id     BIGINT PRIMARY KEY,
    root         {blob} NOT NULL,
    count        INTEGER NOT NULL,
    from_ts      {blob} NOT NULL,   -- uint64 big-endian: earliest reading time
    to_ts        {blob} NOT NULL,   -- uint64 big-endian: latest reading time
    status       TEXT NOT NULL,     -- 'intent' | 'anchored' | 'foreign'
    tx_hash      {blob},
    block_number BIGINT,
    created_at   TEXT NOT NULL,     -- ISO 8601 UTC
    anchored_at  TEXT,              -- ISO 8601 UTC, when this gateway saw it mined
    final_at     TEXT               -- ISO 8601 UTC, seen final (NULL: a reorg may still drop it)
);
-- A meter signed two different readings with the same seq: evidence for auditors.
CREATE TABLE IF NOT EXISTS meter_integrity_events (
    id                 {serial},
    meter_id           {blob} NOT NULL,
    seq                {blob} NOT NULL,
    kind               TEXT NOT NULL,
    stored_hash        {blob} NOT NULL,   -- SHA-256 of the stored canonical bytes
    received_hash      {blob} NOT NULL,   -- SHA-256 of the refused canonical bytes
    received_canonical {blob} NOT NULL,
    received_signature {blob} NOT NULL,
    detected_at        TEXT NOT NULL,
    received_raw       {blob}             -- OCMF: the whole record received
);
-- Sequence numbers missing between two stored readings of a meter. A gap is never deleted: when
-- a late reading fills part of it, it is marked resolved and what is still missing is recorded
-- as new open gaps.
CREATE TABLE IF NOT EXISTS reading_gaps (
    id          {serial},
    meter_id    {blob} NOT NULL,
    from_seq    {blob} NOT NULL,    -- uint64 big-endian, inclusive
    to_seq      {blob} NOT NULL,    -- uint64 big-endian, inclusive
    detected_at TEXT NOT NULL,
    resolved_at TEXT
);
CREATE INDEX IF NOT EXISTS reading_gaps_open ON reading_gaps(meter_id, from_seq)
    WHERE resolved_at IS NULL;
-- Market orders the operator relayed (and paid the gas of), one row per order, for the per-signer
-- quota (LEDGER_RELAY_QUOTA_PER_HOUR) that every worker and gateway on this database shares.
-- Rows older than the quota's window are deleted as new relays are recorded.
CREATE TABLE IF NOT EXISTS relay_usage (
    id         {serial},
    signer     TEXT NOT NULL,       -- checksummed address of the order's signer
    relayed_at BIGINT NOT NULL      -- Unix seconds, the gateway's clock
);
CREATE INDEX IF NOT EXISTS relay_usage_by_signer ON relay_usage(signer, relayed_at);
CREATE INDEX IF NOT EXISTS relay_usage_by_time ON relay_usage(relayed_at);
"""

_SQLITE_TYPES = {"blob": "BLOB", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"}
_POSTGRES_TYPES = {"blob": "BYTEA", "serial": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"}
# Columns added to `readings` by schema version 3 (SQLite files of version 2 get them on open).
_V3_COLUMNS = {
    "readings": {
        "source": "source TEXT NOT NULL DEFAULT 'native'",
        "raw": "raw BLOB",
        "leaf_index": "leaf_index INTEGER",
    },
    "meter_integrity_events": {"received_raw": "received_raw BLOB"},
}
# Columns added by schema version 4, on SQLite and PostgreSQL. Batches anchored under version 3
# get no `final_at`: the anchorer checks them against the chain once and then marks them final.
_V4_COLUMNS = {"batches": {"final_at": "final_at TEXT"}}

_READING_COLUMNS = (
    "meter_id, seq, timestamp, import_wh, export_wh, status, canonical, signature, key_epoch, "
    "leaf, receipt_id, received_at, batch_id, source, raw, leaf_index"
)
# What the sequence checks read of a stored reading (`Neighbour`).
_NEIGHBOUR_COLUMNS = "seq, timestamp, import_wh, export_wh"
_BATCH_COLUMNS = (
    "batch_id, root, count, from_ts, to_ts, status, tx_hash, block_number, created_at, "
    "anchored_at, final_at"
)
# Keys of PostgreSQL advisory locks (any fixed 64-bit numbers; "EL" + purpose).
_PG_WRITE_LOCK = 0x454C_0001
_PG_ANCHOR_LOCK = 0x454C_0002
# How long a (re)connection to PostgreSQL may take before the request answers 503.
_PG_CONNECT_TIMEOUT_S = 5

_T = TypeVar("_T")


def utc_now_iso(clock: Callable[[], float] = time.time) -> str:
    """An ISO 8601 UTC time with microseconds, the format of every time column: fixed width, so
    times sort correctly as text."""
    return datetime.fromtimestamp(clock(), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
    return Neighbour(_int(row[0]), _int(row[1]), _int(row[2]), _int(row[3]))


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


def _reading(row: Sequence[Any]) -> StoredReading:
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
        source=str(row[13]),
        raw=None if row[14] is None else bytes(row[14]),
        leaf_index=None if row[15] is None else int(row[15]),
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

    @property
    def final(self) -> bool:
        return self.final_at is not None


def _batch(row: Sequence[Any]) -> BatchRecord:
    return BatchRecord(
        batch_id=int(row[0]),
        root=bytes(row[1]),
        count=int(row[2]),
        from_ts=_int(row[3]),
        to_ts=_int(row[4]),
        status=str(row[5]),
        tx_hash=None if row[6] is None else bytes(row[6]),
        block_number=None if row[7] is None else int(row[7]),
        created_at=str(row[8]),
        anchored_at=None if row[9] is None else str(row[9]),
        final_at=None if row[10] is None else str(row[10]),
    )


@dataclass(frozen=True)
class PendingLeaf:
    """A reading not yet in a batch: what the batcher needs of it."""

    meter_id: bytes
    seq: int
    timestamp: int
    leaf: bytes


class StoreError(LedgerError):
    """The database refused an operation the ledger relies on."""

    code = "store_error"


class StoreUnavailable(StoreError):
    """The database does not answer (PostgreSQL down or restarting); nothing was acknowledged.

    The gateway answers 503 with `Retry-After`: the next use of the store reconnects.
    """

    code = "store_unavailable"
    retry_after_s = 2

    def __init__(self, *, location: str, reason: str) -> None:
        self.location = location
        super().__init__(f"the database at {location} is unavailable: {reason}")


class _Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class _Backend(Protocol):
    """What the store needs of a database connection; SQL is written with `?` placeholders."""

    name: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def begin_write(self) -> None:
        """Starts a transaction that excludes every other writer until COMMIT/ROLLBACK."""
        ...

    def end_write(self) -> None:
        """Called after the COMMIT or ROLLBACK of a `begin_write` transaction."""
        ...

    def in_transaction(self) -> bool: ...

    def close(self) -> None: ...


class ReadingWriter:
    """The statements of one write transaction over readings (see `Store.reading_transaction`).

    Every read here sees the transaction's own earlier writes, so readings of one request are
    checked against each other as well as against what was stored before.
    """

    def __init__(self, db: _Backend) -> None:
        self._db = db

    def reading(self, meter_id: bytes, seq: int) -> StoredReading | None:
        row = self._db.execute(
            f"SELECT {_READING_COLUMNS} FROM readings WHERE meter_id = ? AND seq = ?",
            (meter_id, _u64(seq)),
        ).fetchone()
        return None if row is None else _reading(row)

    def latest(self, meter_id: bytes) -> Neighbour | None:
        """The meter's stored reading with the highest seq, or None if it has none."""
        row = self._db.execute(
            f"SELECT {_NEIGHBOUR_COLUMNS} FROM readings WHERE meter_id = ? "
            "ORDER BY seq DESC LIMIT 1",
            (meter_id,),
        ).fetchone()
        return None if row is None else _neighbour(row)

    def neighbours(self, meter_id: bytes, seq: int) -> tuple[Neighbour | None, Neighbour | None]:
        """The stored readings of the meter just below and just above `seq`."""
        before = self._db.execute(
            f"SELECT {_NEIGHBOUR_COLUMNS} FROM readings WHERE meter_id = ? AND seq < ? "
            "ORDER BY seq DESC LIMIT 1",
            (meter_id, _u64(seq)),
        ).fetchone()
        after = self._db.execute(
            f"SELECT {_NEIGHBOUR_COLUMNS} FROM readings WHERE meter_id = ? AND seq > ? "
            "ORDER BY seq ASC LIMIT 1",
            (meter_id, _u64(seq)),
        ).fetchone()
        return (
            None if before is None else _neighbour(before),
            None if after is None else _neighbour(after),
        )

    def insert_reading(self, reading: StoredReading) -> None:
        """Inserts a reading; a row already stored under (meter_id, seq) is left unchanged."""
        self._db.execute(
            f"INSERT INTO readings ({_READING_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
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
                reading.source,
                reading.raw,
                reading.leaf_index,
            ),
        )

    def record_integrity_event(self, event: IntegrityEvent) -> None:
        self._db.execute(
            "INSERT INTO meter_integrity_events (meter_id, seq, kind, stored_hash, received_hash, "
            "received_canonical, received_signature, detected_at, received_raw) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (
                event.meter_id,
                _u64(event.seq),
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


def _gap(row: Sequence[Any]) -> Gap:
    return Gap(
        meter_id=bytes(row[0]),
        from_seq=_int(row[1]),
        to_seq=_int(row[2]),
        detected_at=str(row[3]),
        resolved_at=None if row[4] is None else str(row[4]),
    )


class _SQLiteBackend:
    """One SQLite connection in autocommit mode (transactions are explicit)."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created 0600 here, not by SQLite (0644 under the usual umask): readings and the lock
        # files are for this user only. SQLite gives the -wal and -shm files the database's mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        # Another process (a second gateway, the CLI) may hold the write lock briefly.
        self._db.execute("PRAGMA busy_timeout=10000")
        self._write_lock = os.open(
            path.with_name(path.name + ".write-lock"), os.O_RDWR | os.O_CREAT, 0o600
        )

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        return self._db.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)

    def begin_write(self) -> None:
        # Gateway processes (workers) on this file queue on an flock first: a blocked flock
        # wakes the moment the holder releases it, where SQLite's busy handler polls with sleeps
        # of up to 100 ms, which under load idles a worker that could be writing.
        fcntl.flock(self._write_lock, fcntl.LOCK_EX)
        try:
            # IMMEDIATE takes the database's write lock now, not at the first write (and still
            # excludes writers that do not take the flock, such as the sqlite3 shell).
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            fcntl.flock(self._write_lock, fcntl.LOCK_UN)
            raise

    def end_write(self) -> None:
        fcntl.flock(self._write_lock, fcntl.LOCK_UN)

    def in_transaction(self) -> bool:
        return self._db.in_transaction

    def create_schema(self) -> None:
        # A version-2 file: add the columns version 3 introduced before the new indexes (which
        # name them) are created. A new file has no tables yet, so nothing is added here.
        for table, columns in (*_V3_COLUMNS.items(), *_V4_COLUMNS.items()):
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for column, definition in columns.items():
                if present and column not in present:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {definition}")
        self._db.executescript(_SCHEMA.format(**_SQLITE_TYPES))

    def status(self) -> dict[str, Any]:
        journal = self._db.execute("PRAGMA journal_mode").fetchone()[0]
        synchronous = self._db.execute("PRAGMA synchronous").fetchone()[0]
        return {
            "backend": self.name,
            "path": str(self.path),
            "journal_mode": journal,
            "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[synchronous],
        }

    def close(self) -> None:
        self._db.close()
        os.close(self._write_lock)


class _PostgresBackend:
    """One psycopg connection in autocommit mode (transactions are explicit), replaced by a new
    one on the next use after it broke (see the module docstring)."""

    name = "postgresql"

    def __init__(self, url: str) -> None:
        import psycopg  # imported here: SQLite users never load the driver

        self.url = url
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=_PG_CONNECT_TIMEOUT_S)
        except psycopg.Error as error:
            raise ConfigError(
                f"cannot connect to PostgreSQL at {_redacted(url)}: {error}"
            ) from error
        self._sql: dict[str, str] = {}
        self._in_write = False
        self.reconnects = 0  # connections replaced since start (for /healthz)

    def _translate(self, sql: str) -> str:
        translated = self._sql.get(sql)
        if translated is None:
            translated = self._sql[sql] = sql.replace("%", "%%").replace("?", "%s")
        return translated

    def _unavailable(self, error: Exception) -> StoreUnavailable:
        return StoreUnavailable(location=_redacted(self.url), reason=str(error).strip())

    def _connection(self) -> Any:
        """The connection, replaced by a new one if the last one broke or was closed."""
        import psycopg

        if self._db.closed or self._db.broken:
            try:
                self._db.close()
            except psycopg.Error:
                pass  # it is gone either way
            try:
                self._db = psycopg.connect(
                    self.url, autocommit=True, connect_timeout=_PG_CONNECT_TIMEOUT_S
                )
            except psycopg.Error as error:
                raise self._unavailable(error) from error
            self.reconnects += 1
        return self._db

    def _run(self, action: Callable[[Any], _T]) -> _T:
        """Runs `action` on the connection: outside a write transaction, once more on a new
        connection if the first one broke (a read is safe to repeat); inside one, never again,
        because the transaction died with the connection."""
        import psycopg

        attempts = 1 if self._in_write else 2
        for attempt in range(1, attempts + 1):
            db = self._db if self._in_write else self._connection()
            try:
                return action(db)
            except (psycopg.OperationalError, psycopg.InterfaceError) as error:
                if attempt < attempts and (db.closed or db.broken):
                    continue
                raise self._unavailable(error) from error
        raise AssertionError("unreachable")  # the loop returns or raises

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        # Without parameters the text goes as it is, by the simple query protocol, which also
        # takes several statements at once (the schema).
        if params:
            translated, bound = self._translate(sql), params
        else:
            translated, bound = sql, None
        cursor: _Cursor = self._run(lambda db: db.execute(translated, bound))
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        translated = self._translate(sql)

        def run(db: Any) -> None:
            with db.cursor() as cursor:
                cursor.executemany(translated, rows)

        self._run(run)

    def begin_write(self) -> None:
        def begin(db: Any) -> None:
            db.execute("BEGIN")
            # One writer at a time across every gateway on this database, like SQLite's write
            # lock: the sequence checks of a request read a meter's neighbours and must not race
            # another gateway's insert. Released by COMMIT or ROLLBACK.
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_WRITE_LOCK,))

        # Nothing is written yet, so a connection found broken here is replaced and BEGIN
        # tried again (`_in_write` is still False).
        self._run(begin)
        self._in_write = True

    def end_write(self) -> None:
        self._in_write = False  # the advisory lock ends with the transaction

    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        if self._db.closed or self._db.broken:
            return False  # the server ended the transaction with the connection
        return self._db.info.transaction_status != TransactionStatus.IDLE

    def create_schema(self) -> None:
        self.begin_write()  # two gateways starting at once must not both create tables
        try:
            self.execute(_SCHEMA.format(**_POSTGRES_TYPES))
            for table, columns in _V4_COLUMNS.items():
                for definition in columns.values():
                    self.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {definition}")
            self.execute("COMMIT")
        except BaseException:
            if self.in_transaction():
                self.execute("ROLLBACK")
            raise
        finally:
            self.end_write()

    def status(self) -> dict[str, Any]:
        synchronous = self.execute("SHOW synchronous_commit").fetchone()
        fsync = self.execute("SHOW fsync").fetchone()
        return {
            "backend": self.name,
            "url": _redacted(self.url),
            "synchronous_commit": None if synchronous is None else synchronous[0],
            "fsync": None if fsync is None else fsync[0],
            "reconnects": self.reconnects,
        }

    def close(self) -> None:
        self._db.close()


def _redacted(url: str) -> str:
    """The URL without its credentials (one redactor for every URL: ledger/redaction.py)."""
    return redact_url(url)


class AnchorLease:
    """The right to anchor: held by at most one gateway per database, released when it dies.

    SQLite: an exclusive `flock` on a file next to the database. PostgreSQL: a session-level
    advisory lock on a connection of its own. Either way the operating system or the database
    server drops the lease when the holder's process or connection ends, so a killed gateway
    never blocks anchoring.

    A PostgreSQL restart ends the session and so the lease, while another gateway may take it
    on the new server: `held()` asks the server whether this session still holds the lock, and
    the anchorer asks before every anchoring transaction, never assuming it kept the lease.
    """

    def __init__(self, location: Path | str) -> None:
        self._location = location
        self._fd: int | None = None
        self._pg: Any = None

    def try_acquire(self) -> bool:
        """Takes the lease if it is free; True if this process holds it now."""
        if self.held():
            return True
        self.release()
        if isinstance(self._location, Path):
            fd = os.open(self._location, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._fd = fd
            return True
        import psycopg

        try:
            connection = psycopg.connect(
                self._location, autocommit=True, connect_timeout=_PG_CONNECT_TIMEOUT_S
            )
        except psycopg.Error as error:
            raise StoreUnavailable(
                location=_redacted(self._location), reason=str(error).strip()
            ) from error
        try:
            row = connection.execute(
                "SELECT pg_try_advisory_lock(%s)", (_PG_ANCHOR_LOCK,)
            ).fetchone()
        except psycopg.Error:
            connection.close()
            return False
        if row is None or not row[0]:
            connection.close()
            return False
        self._pg = connection
        return True

    def held(self) -> bool:
        """Whether the lease is still held (a PostgreSQL connection may have died)."""
        if self._fd is not None:
            return True
        if self._pg is None:
            return False
        try:
            # The server's lock table, not just a live socket: a connection proxy could hand
            # out a session that never took the lock.
            row = self._pg.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = %s",
                (_PG_ANCHOR_LOCK,),
            ).fetchone()
        except Exception:  # noqa: BLE001 - any failure means the session, and the lock, are gone
            return False
        return row is not None and int(row[0]) > 0

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
        if self._pg is not None:
            try:
                self._pg.close()
            except Exception:  # noqa: BLE001 - the session is gone either way
                pass
            self._pg = None


class RelaySlot(NamedTuple):
    """The answer to a relay reservation: the recorded row, or how long until one frees up."""

    row_id: int | None  # None: the signer's quota is used up
    retry_after_s: int  # when refused: seconds until the oldest relay leaves the window


class Store:
    """The ledger's database: a SQLite file (a `Path`) or PostgreSQL (a `postgresql://` URL)."""

    def __init__(self, location: Path | str) -> None:
        # The gateway serves requests from a thread pool and anchors from another thread; one
        # connection guarded by a lock keeps the single-writer rule explicit.
        self._lock = threading.Lock()
        self._backend: _SQLiteBackend | _PostgresBackend
        if isinstance(location, Path):
            self.path: Path | None = location
            self._backend = _SQLiteBackend(location)
            self._lease_location: Path | str = location.with_name(location.name + ".anchor-lock")
        else:
            self.path = None
            self._backend = _PostgresBackend(location)
            self._lease_location = location
        with self._lock:
            self._backend.create_schema()
            self._backend.execute(
                "INSERT INTO schema_info(key, value) VALUES ('version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value "
                "WHERE CAST(schema_info.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                (str(SCHEMA_VERSION),),
            )

    @classmethod
    def open(cls, settings: Settings) -> Store:
        """Opens the store the settings name."""
        url = settings.database_url
        if url is not None and url.startswith(("postgresql://", "postgres://")):
            return cls(url)
        path = settings.sqlite_path
        if path is None:
            raise ConfigError(
                f"LEDGER_DATABASE_URL {settings.database_url!r} is not supported: "
                "use sqlite:///path/to/file.db or postgresql://user@host:port/database"
            )
        return cls(path)

    @property
    def backend(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self._backend.name

    def anchor_lease(self) -> AnchorLease:
        """A lease object for this database (not yet acquired)."""
        return AnchorLease(self._lease_location)

    def status(self) -> dict[str, Any]:
        """Health facts: backend, location, durability settings, schema version."""
        with self._lock:
            facts = self._backend.status()
            version = self._backend.execute(
                "SELECT value FROM schema_info WHERE key = 'version'"
            ).fetchone()[0]
        return {**facts, "schema_version": int(version)}

    @contextmanager
    def write(self) -> Iterator[_Backend]:
        """One write transaction under the store's lock; COMMIT on exit, ROLLBACK on error."""
        with self._lock:
            self._backend.begin_write()
            try:
                yield self._backend
                self._backend.execute("COMMIT")
            except BaseException:
                if self._backend.in_transaction():
                    self._backend.execute("ROLLBACK")
                raise
            finally:
                self._backend.end_write()

    @contextmanager
    def read(self) -> Iterator[_Backend]:
        """The connection under the store's lock, for reads outside a write transaction."""
        with self._lock:
            yield self._backend

    @contextmanager
    def reading_transaction(self) -> Iterator[ReadingWriter]:
        """One write transaction: every other writer (thread, process, gateway) waits.

        SQLite: BEGIN IMMEDIATE takes the write lock at the start; PostgreSQL: a transaction
        advisory lock. Either way, what the caller reads inside (a meter's stored neighbours)
        cannot change before it writes: two requests for the same (meter, seq) cannot both be
        accepted. The COMMIT is durable when this block exits; an exception rolls back.
        """
        with self.write() as db:
            yield ReadingWriter(db)

    def reading(self, meter_id: bytes, seq: int) -> StoredReading | None:
        """The stored reading (meter_id, seq), or None."""
        with self._lock:
            return ReadingWriter(self._backend).reading(meter_id, seq)

    def first_reading_at_or_after(self, meter_id: bytes, timestamp: int) -> StoredReading | None:
        """The meter's stored reading with the smallest timestamp >= `timestamp`, or None.

        A meter's timestamps rise with its seq (the ingest checks keep it so, gap fills too), so
        the first by seq is the first by time; the scan stays within the meter's primary-key range.
        """
        with self._lock:
            row = self._backend.execute(
                f"SELECT {_READING_COLUMNS} FROM readings WHERE meter_id = ? AND timestamp >= ? "
                "ORDER BY seq LIMIT 1",
                (meter_id, _u64(timestamp)),
            ).fetchone()
        return None if row is None else _reading(row)

    def readings_of_key_from(
        self, meter_id: bytes, key_epoch: int, timestamp: int, *, after_seq: int = -1, limit: int
    ) -> tuple[int, list[StoredReading]]:
        """Readings of the meter accepted under key epoch `key_epoch` and timestamped at or
        after `timestamp` (those a revocation from a compromise time makes suspect): how many
        there are, and up to `limit` of them with seq > `after_seq`, by seq."""
        where = "WHERE meter_id = ? AND key_epoch = ? AND timestamp >= ?"
        params: tuple[Any, ...] = (meter_id, key_epoch, _u64(timestamp))
        with self._lock:
            total = self._backend.execute(
                f"SELECT COUNT(*) FROM readings {where}", params
            ).fetchone()
            rows = self._backend.execute(
                f"SELECT {_READING_COLUMNS} FROM readings {where} AND seq > ? ORDER BY seq LIMIT ?",
                (*params, _u64(after_seq) if after_seq >= 0 else b"", limit),
            ).fetchall()
        return int(total[0]), [_reading(row) for row in rows]

    def integrity_events(self, meter_id: bytes) -> list[IntegrityEvent]:
        """The meter's integrity events, oldest first."""
        with self._lock:
            rows = self._backend.execute(
                "SELECT meter_id, seq, kind, stored_hash, received_hash, received_canonical, "
                "received_signature, detected_at, received_raw FROM meter_integrity_events "
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
                received_raw=None if r[8] is None else bytes(r[8]),
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
            rows = self._backend.execute(query + " ORDER BY id", (meter_id,)).fetchall()
        return [_gap(r) for r in rows]

    def count_readings(self, meter_id: bytes | None = None) -> int:
        """How many readings are stored (of one meter, if given)."""
        with self._lock:
            if meter_id is None:
                row = self._backend.execute("SELECT COUNT(*) FROM readings").fetchone()
            else:
                row = self._backend.execute(
                    "SELECT COUNT(*) FROM readings WHERE meter_id = ?", (meter_id,)
                ).fetchone()
        return int(row[0])

    # --- batches (used by the anchorer) ------------------------------------------------------

    def count_pending(self) -> int:
        """How many readings are in no batch yet."""
        with self._lock:
            row = self._backend.execute(
                "SELECT COUNT(*) FROM readings WHERE batch_id IS NULL"
            ).fetchone()
        return int(row[0])

    def pending_leaves(self, limit: int) -> list[PendingLeaf]:
        """Up to `limit` readings in no batch, oldest received first."""
        with self._lock:
            rows = self._backend.execute(
                "SELECT meter_id, seq, timestamp, leaf FROM readings WHERE batch_id IS NULL "
                "ORDER BY received_at, meter_id, seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [PendingLeaf(bytes(r[0]), _int(r[1]), _int(r[2]), bytes(r[3])) for r in rows]

    def create_batch_intent(self, batch: BatchRecord, members: Sequence[PendingLeaf]) -> None:
        """Commits a batch intent and assigns its readings (leaf index = position in `members`).

        Raises:
            StoreError: The batch id is taken or a member is already in a batch (another
                anchorer got there first); nothing is written.
        """
        with self.write() as db:
            taken = db.execute(
                "SELECT 1 FROM batches WHERE batch_id = ?", (batch.batch_id,)
            ).fetchone()
            if taken is not None:
                raise StoreError(f"batch {batch.batch_id} already exists")
            db.execute(
                f"INSERT INTO batches ({_BATCH_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                _batch_row(batch),
            )
            db.executemany(
                "UPDATE readings SET batch_id = ?, leaf_index = ? "
                "WHERE meter_id = ? AND seq = ? AND batch_id IS NULL",
                [(batch.batch_id, i, m.meter_id, _u64(m.seq)) for i, m in enumerate(members)],
            )
            assigned = db.execute(
                "SELECT COUNT(*) FROM readings WHERE batch_id = ?", (batch.batch_id,)
            ).fetchone()[0]
            if int(assigned) != len(members):
                raise StoreError(
                    f"batch {batch.batch_id}: {assigned} of {len(members)} readings were still "
                    "pending"
                )

    def mark_anchored(
        self,
        batch_id: int,
        tx_hash: bytes | None,
        block_number: int | None,
        anchored_at: str,
        *,
        final_at: str | None = None,
    ) -> None:
        """Marks an intent anchored (idempotent: an anchored batch is left as it is); final at
        once when `final_at` is given (no confirmations are asked for)."""
        with self.write() as db:
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

    def unfinal_batches(self, limit: int) -> list[BatchRecord]:
        """Up to `limit` anchored batches not yet final, oldest first."""
        with self._lock:
            rows = self._backend.execute(
                f"SELECT {_BATCH_COLUMNS} FROM batches WHERE status = ? AND final_at IS NULL "
                "ORDER BY batch_id LIMIT ?",
                (BatchStatus.ANCHORED, limit),
            ).fetchall()
        return [_batch(r) for r in rows]

    def update_anchor_block(
        self, batch_id: int, block_number: int, *, final_at: str | None = None
    ) -> None:
        """Records the block an anchored, not yet final batch is in now (a reorganisation may
        have mined its transaction again elsewhere); final from `final_at` if given."""
        with self.write() as db:
            db.execute(
                "UPDATE batches SET block_number = ?, final_at = ? "
                "WHERE batch_id = ? AND status = ? AND final_at IS NULL",
                (block_number, final_at, batch_id, BatchStatus.ANCHORED),
            )

    def mark_dropped(self, batch_id: int) -> None:
        """An anchored, not yet final batch is no longer on the chain (its block was
        reorganised away): it becomes an intent again, with the same root and readings, so the
        anchorer's reconciliation sends it again under its id or releases its readings."""
        with self.write() as db:
            db.execute(
                "UPDATE batches SET status = ?, tx_hash = NULL, block_number = NULL, "
                "anchored_at = NULL WHERE batch_id = ? AND status = ? AND final_at IS NULL",
                (BatchStatus.INTENT, batch_id, BatchStatus.ANCHORED),
            )

    def mark_foreign(self, batch_id: int, chain_root: bytes) -> int:
        """The chain holds another root under `batch_id`: releases the intent's readings to a
        later batch and keeps the id as 'foreign' with the chain's root. Returns how many
        readings were released."""
        with self.write() as db:
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

    def batches(self, *, status: str | None = None) -> list[BatchRecord]:
        """Batches by id (only those with `status`, if given)."""
        query = f"SELECT {_BATCH_COLUMNS} FROM batches"
        params: tuple[Any, ...] = ()
        if status is not None:
            query += " WHERE status = ?"
            params = (status,)
        with self._lock:
            rows = self._backend.execute(query + " ORDER BY batch_id", params).fetchall()
        return [_batch(r) for r in rows]

    def batch(self, batch_id: int) -> BatchRecord | None:
        with self._lock:
            row = self._backend.execute(
                f"SELECT {_BATCH_COLUMNS} FROM batches WHERE batch_id = ?", (batch_id,)
            ).fetchone()
        return None if row is None else _batch(row)

    def last_batch_id(self, *, status: str | None = None) -> int:
        """The highest batch id recorded (with `status`, if given); 0 when there is none."""
        query = "SELECT MAX(batch_id) FROM batches"
        params: tuple[str, ...] = ()
        if status is not None:
            query, params = query + " WHERE status = ?", (status,)
        with self._lock:
            row = self._backend.execute(query, params).fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    def count_batches(self, status: str) -> int:
        """How many batches have `status`."""
        with self._lock:
            row = self._backend.execute(
                "SELECT COUNT(*) FROM batches WHERE status = ?", (status,)
            ).fetchone()
        return int(row[0])

    def count_unfinal_batches(self) -> int:
        """How many anchored batches are not final yet."""
        with self._lock:
            row = self._backend.execute(
                "SELECT COUNT(*) FROM batches WHERE status = ? AND final_at IS NULL",
                (BatchStatus.ANCHORED,),
            ).fetchone()
        return int(row[0])

    def batch_leaves(self, batch_id: int) -> list[bytes]:
        """The leaves of a batch in tree order."""
        with self._lock:
            rows = self._backend.execute(
                "SELECT leaf FROM readings WHERE batch_id = ? ORDER BY leaf_index", (batch_id,)
            ).fetchall()
        return [bytes(r[0]) for r in rows]

    def reserve_relay(self, signer: str, *, now: int, window_s: int, limit: int) -> RelaySlot:
        """Records a relay for `signer` at `now` if fewer than `limit` were recorded in the
        `window_s` seconds before; in one write transaction, so concurrent workers and gateways
        never let a signer past the limit. Older rows (of every signer) are deleted first."""
        with self.write() as db:
            db.execute("DELETE FROM relay_usage WHERE relayed_at <= ?", (now - window_s,))
            count, oldest = db.execute(
                "SELECT COUNT(*), MIN(relayed_at) FROM relay_usage WHERE signer = ?", (signer,)
            ).fetchone()
            if int(count) >= limit:
                return RelaySlot(row_id=None, retry_after_s=max(1, int(oldest) + window_s - now))
            (row_id,) = db.execute(
                "INSERT INTO relay_usage(signer, relayed_at) VALUES (?, ?) RETURNING id",
                (signer, now),
            ).fetchone()
        return RelaySlot(row_id=int(row_id), retry_after_s=0)

    def release_relay(self, row_id: int) -> None:
        """Forgets a reserved relay that was not sent after all (refused by its pre-check)."""
        with self.write() as db:
            db.execute("DELETE FROM relay_usage WHERE id = ?", (row_id,))

    def close(self) -> None:
        with self._lock:
            self._backend.close()


def _batch_row(batch: BatchRecord) -> tuple[Any, ...]:
    return (
        batch.batch_id,
        batch.root,
        batch.count,
        _u64(batch.from_ts),
        _u64(batch.to_ts),
        batch.status,
        batch.tx_hash,
        batch.block_number,
        batch.created_at,
        batch.anchored_at,
        batch.final_at,
    )
