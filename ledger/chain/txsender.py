"""One transaction sender per account across threads, processes and gateways.

Every worker process of `ledger serve`, its anchorer, the `ledger` command run beside it and every
gateway on the same PostgreSQL database sign with the same operator key. A transaction's nonce is
read from the node (`eth_getTransactionCount(address, "pending")`) and must not be read again by
anyone until the transaction carrying it has reached the node, or two transactions carry the same
nonce and the node refuses one ("incorrect nonce", "underpriced", "can't be replaced").

`SenderLock.hold(address)` makes "read the pending nonce, sign, send_raw_transaction" one critical
section per address, wherever the senders run:

- SQLite store (one machine): an exclusive `flock` on `<db>.tx-<address>.lock` beside the
  database, as the anchoring lease does. Every process that opens that database finds the file.
- PostgreSQL store (gateways on several machines): a session-level advisory lock
  (`pg_advisory_lock`) on a key derived from the address, on a connection of its own, so it does
  not mix with the store's transactions.

Either way the operating system or the database server drops the lock when its holder's process
or connection ends, so a killed sender never blocks the others. The lock is not held while
waiting for the receipt: once the node has the transaction, its pending nonce counts it.

Why a lock and not a nonce allocator in the database: an allocator hands out nonces the node has
not seen, so a transaction that is never sent (its pre-check call reverts, the process dies
between allocating and sending, the node refuses it) leaves a gap that blocks every later
transaction of the account until someone fills it, and recovering from that needs the node's
pending nonce anyway. With the lock the node stays the one source of nonces: nothing is
allocated ahead, so there is nothing to reconcile after a crash, and a refused transaction
costs nothing. The price is that sends of one account are serialised (a few milliseconds of
JSON-RPC each, not the block time), which is the throughput one account has on a chain anyway.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Protocol

from eth_utils.crypto import keccak

from ledger.redaction import redact_url
from ledger.settings import Settings
from ledger.store.backends import StoreUnavailable


class SenderLock(Protocol):
    """Excludes every other sender of one account while a transaction is numbered and sent."""

    def hold(self, address: str) -> AbstractContextManager[None]:
        """Holds the lock of `address` for the `with` block."""
        ...

    def close(self) -> None:
        """Releases what the lock holds open (files, connections)."""
        ...


class ProcessSenderLock:
    """No cross-process lock: for a Chain that only this process sends from (tests, tools).

    The Chain's own thread lock still orders the threads of the process.
    """

    def hold(self, address: str) -> AbstractContextManager[None]:
        return nullcontext()

    def close(self) -> None:
        pass


class FileSenderLock:
    """An exclusive `flock` on `<database>.tx-<address>.lock`, beside a SQLite database."""

    def __init__(self, database: Path) -> None:
        self._database = database
        # Contracts are deployed (sent) before the store creates the database's directory.
        database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fds: dict[str, int] = {}
        self._guard = threading.Lock()

    def path_for(self, address: str) -> Path:
        """The lock file of one account."""
        return self._database.with_name(f"{self._database.name}.tx-{address.lower()}.lock")

    def _fd(self, address: str) -> int:
        key = address.lower()
        with self._guard:
            fd = self._fds.get(key)
            if fd is None:
                # 0600: nothing in the data directory is for other users of the machine.
                fd = self._fds[key] = os.open(self.path_for(key), os.O_RDWR | os.O_CREAT, 0o600)
            return fd

    @contextmanager
    def hold(self, address: str) -> Iterator[None]:
        fd = self._fd(address)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._guard:
            for fd in self._fds.values():
                os.close(fd)  # closing the descriptor drops a flock still held
            self._fds.clear()


def advisory_key(address: str) -> int:
    """The PostgreSQL advisory-lock key of an account: 64 bits of a hash of its address, signed
    as `bigint` is (the store's own locks use small fixed keys, which this cannot hit in
    practice)."""
    digest = keccak(text=f"energy-ledger transaction sender {address.lower()}")
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresSenderLock:
    """A session-level advisory lock per account on a PostgreSQL connection of its own."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: Any = None
        # One connection serves the whole process; hold() calls are already ordered by the
        # Chain's thread lock, and this guard keeps the connection safe even without it.
        self._guard = threading.Lock()

    def _connect(self) -> Any:
        import psycopg  # imported here: SQLite users never load the driver

        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
        return self._connection

    def _lock(self, key: int) -> Any:
        """Takes the lock on a live connection; a dropped connection is replaced once."""
        import psycopg

        for attempt in (1, 2):
            try:
                connection = self._connect()
                connection.execute("SELECT pg_advisory_lock(%s)", (key,))
                return connection
            except psycopg.OperationalError as error:
                self._drop()
                if attempt == 2:
                    # Nothing is sent without the lock; 503 with Retry-After, like the store.
                    raise StoreUnavailable(
                        location=redact_url(self._url),
                        reason=f"cannot take the transaction sender lock: {error}",
                    ) from error
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:  # noqa: BLE001 - the session, and any lock it held, are gone
                pass
            self._connection = None

    @contextmanager
    def hold(self, address: str) -> Iterator[None]:
        import psycopg

        key = advisory_key(address)
        with self._guard:
            connection = self._lock(key)
            try:
                yield
            finally:
                try:
                    connection.execute("SELECT pg_advisory_unlock(%s)", (key,))
                except psycopg.Error:
                    self._drop()  # ending the session releases the lock

    def close(self) -> None:
        with self._guard:
            self._drop()


def sender_lock_for(settings: Settings) -> SenderLock:
    """The sender lock shared by everything that uses the settings' database: beside the SQLite
    file, or in PostgreSQL."""
    url = settings.database_url
    if url is not None and url.startswith(("postgresql://", "postgres://")):
        return PostgresSenderLock(url)
    path = settings.sqlite_path
    # An unsupported URL: Store.open refuses it with a clear message before anything is sent.
    return ProcessSenderLock() if path is None else FileSenderLock(path)
