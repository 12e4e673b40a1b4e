"""The anchoring lease: at most one anchorer per database."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from ledger.store.backends import (
    PG_ANCHOR_LOCK,
    PG_CONNECT_TIMEOUT_S,
    StoreUnavailable,
    redacted,
)


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
                self._location, autocommit=True, connect_timeout=PG_CONNECT_TIMEOUT_S
            )
        except psycopg.Error as error:
            raise StoreUnavailable(
                location=redacted(self._location), reason=str(error).strip()
            ) from error
        try:
            row = connection.execute(
                "SELECT pg_try_advisory_lock(%s)", (PG_ANCHOR_LOCK,)
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
                (PG_ANCHOR_LOCK,),
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
                # Unlocked before the connection closes: the server drops a closed session's
                # locks only once its backend has exited, a moment after `close()` returns,
                # and a gateway taking over the lease meanwhile would find it still held.
                self._pg.execute("SELECT pg_advisory_unlock(%s)", (PG_ANCHOR_LOCK,))
            except Exception:  # noqa: BLE001 - a dead session holds no lock any more
                pass
            try:
                self._pg.close()
            except Exception:  # noqa: BLE001 - the session is gone either way
                pass
            self._pg = None
