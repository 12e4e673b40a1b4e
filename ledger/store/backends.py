"""Connections to the database: SQLite (WAL, synchronous=FULL) by default, PostgreSQL by URL.

SQLite: WAL lets readers run beside the single writer; synchronous=FULL makes a COMMIT durable
across a power cut, which is what "acknowledged means durable" needs. PostgreSQL: its default
(fsync on, synchronous_commit on) is durable at COMMIT; several gateways can share one database.

The raw drivers (sqlite3, psycopg), not SQLAlchemy: every reading ingested runs several
statements here, and a layer over the driver would cost throughput on that path. One SQL text
serves both (written with `?` placeholders; the PostgreSQL backend rewrites them to `%s`). The
schema itself is declared in `schema.py` and created by the migrations (`migrate.py`).

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
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ledger.errors import ConfigError, LedgerError
from ledger.redaction import redact_url

# Keys of PostgreSQL advisory locks (any fixed 64-bit numbers; "EL" + purpose).
PG_WRITE_LOCK = 0x454C_0001
PG_ANCHOR_LOCK = 0x454C_0002
PG_MIGRATE_LOCK = 0x454C_0003
# How long a (re)connection to PostgreSQL may take before the request answers 503.
PG_CONNECT_TIMEOUT_S = 5

_T = TypeVar("_T")


def utc_now_iso(clock: Callable[[], float] = time.time) -> str:
    """An ISO 8601 UTC time with microseconds, the format of every time column: fixed width, so
    times sort correctly as text."""
    return datetime.fromtimestamp(clock(), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# uint64 values (seq, timestamp, registers) do not fit SQLite's signed 64-bit INTEGER, so they are
# stored as 8-byte big-endian BLOBs: BLOBs compare with memcmp, so they sort like the numbers and
# `ORDER BY seq` / `seq < ?` work. Meter ids are the raw bytes32.
def u64(value: int) -> bytes:
    """A uint64 as stored: 8 bytes, big-endian."""
    return value.to_bytes(8, "big")


def from_u64(blob: bytes) -> int:
    """The uint64 a stored 8-byte big-endian value holds."""
    return int.from_bytes(blob, "big")


def u128(value: int) -> bytes:
    """A uint128 column's BLOB (uint64 columns use `u64`)."""
    return value.to_bytes(16, "big")


def uint(blob: bytes | memoryview) -> int:
    """The number a uint64 or uint128 BLOB holds."""
    return int.from_bytes(bytes(blob), "big")


class StoreError(LedgerError):
    """The database refused an operation the ledger relies on."""

    code = "store_error"


class StoreUnavailable(StoreError):
    """The database does not answer (PostgreSQL down or restarting); nothing was acknowledged.

    The gateway answers 503 with `Retry-After`: the next use of the store reconnects.
    """

    code = "store_unavailable"
    http_status = 503
    retry_after_s = 2

    def __init__(self, *, location: str, reason: str) -> None:
        self.location = location
        super().__init__(f"the database at {location} is unavailable: {reason}")


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Backend(Protocol):
    """What the store needs of a database connection; SQL is written with `?` placeholders."""

    name: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def begin_write(self) -> None:
        """Starts a transaction that excludes every other writer until COMMIT/ROLLBACK."""
        ...

    def end_write(self) -> None:
        """Called after the COMMIT or ROLLBACK of a `begin_write` transaction."""
        ...

    def in_transaction(self) -> bool: ...

    def close(self) -> None: ...


class SQLiteBackend:
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

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
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


class PostgresBackend:
    """One psycopg connection in autocommit mode (transactions are explicit), replaced by a new
    one on the next use after it broke (see the module docstring)."""

    name = "postgresql"

    def __init__(self, url: str) -> None:
        import psycopg  # imported here: SQLite users never load the driver

        self.url = url
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=PG_CONNECT_TIMEOUT_S)
        except psycopg.Error as error:
            raise ConfigError(
                f"cannot connect to PostgreSQL at {redacted(url)}: {error}"
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
        return StoreUnavailable(location=redacted(self.url), reason=str(error).strip())

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
                    self.url, autocommit=True, connect_timeout=PG_CONNECT_TIMEOUT_S
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

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        # Without parameters the text goes as it is, by the simple query protocol, which also
        # takes several statements at once (the schema).
        if params:
            translated, bound = self._translate(sql), params
        else:
            translated, bound = sql, None
        cursor: Cursor = self._run(lambda db: db.execute(translated, bound))
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
            db.execute("SELECT pg_advisory_xact_lock(%s)", (PG_WRITE_LOCK,))

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

    def status(self) -> dict[str, Any]:
        synchronous = self.execute("SHOW synchronous_commit").fetchone()
        fsync = self.execute("SHOW fsync").fetchone()
        return {
            "backend": self.name,
            "url": redacted(self.url),
            "synchronous_commit": None if synchronous is None else synchronous[0],
            "fsync": None if fsync is None else fsync[0],
            "reconnects": self.reconnects,
        }

    def close(self) -> None:
        self._db.close()


def redacted(url: str) -> str:
    """The URL without its credentials (one redactor for every URL: ledger/redaction.py)."""
    return redact_url(url)
