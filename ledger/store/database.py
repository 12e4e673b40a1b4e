"""The `Store`: the ledger's database, a SQLite file or PostgreSQL, behind one lock.

Opening a store brings its schema up to date (`migrate.py`), so `ledger serve`, every worker and
every command upgrade an existing database on start. The statements live with their tables
(`readings.py`, `batches.py`, `relay.py`); the `Store` holds the connection, its lock and the
write transaction, and hands them the connection.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ledger.errors import ConfigError
from ledger.settings import Settings
from ledger.store import batches as batch_table
from ledger.store import readings as reading_tables
from ledger.store import relay as relay_table
from ledger.store.backends import Backend, PostgresBackend, SQLiteBackend
from ledger.store.batches import AnchoringBacklog, BatchRecord, PendingLeaf
from ledger.store.lease import AnchorLease
from ledger.store.readings import Gap, IntegrityEvent, ReadingWriter, StoredReading
from ledger.store.relay import RelaySlot


class Store:
    """The ledger's database: a SQLite file (a `Path`) or PostgreSQL (a `postgresql://` URL)."""

    def __init__(self, location: Path | str, *, upgrade_schema: bool = True) -> None:
        # The gateway serves requests from a thread pool and anchors from another thread; one
        # connection guarded by a lock keeps the single-writer rule explicit.
        self._lock = threading.Lock()
        # Where it is: another process (a billing worker) opens its own connection from it.
        self.location = location
        self._backend: SQLiteBackend | PostgresBackend
        if isinstance(location, Path):
            self.path: Path | None = location
            self._backend = SQLiteBackend(location)
            self._lease_location: Path | str = location.with_name(location.name + ".anchor-lock")
        else:
            self.path = None
            self._backend = PostgresBackend(location)
            self._lease_location = location
        self.revision: str | None = None
        if not upgrade_schema:
            # A process whose parent has opened (so upgraded) this database: billing's worker
            # processes, which would each import Alembic and queue for the upgrade lock.
            return
        # Imported here: Alembic alone takes ~0.4 s to import, which those workers skip.
        from ledger.store.migrate import upgrade  # noqa: PLC0415

        try:
            # Before any other use: a database of an older release is brought to this one's
            # schema (under a lock, so several workers opening it at once is safe).
            self.revision = upgrade(location)
        except BaseException:
            self._backend.close()
            raise

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
    def write(self) -> Iterator[Backend]:
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
    def read(self) -> Iterator[Backend]:
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
            writer = ReadingWriter(db)
            yield writer
            writer.flush()  # the inserts it held back, before the COMMIT

    # --- readings, gaps and integrity events -------------------------------------------------

    def reading(self, meter_id: bytes, seq: int) -> StoredReading | None:
        """The stored reading (meter_id, seq), or None."""
        with self.read() as db:
            return ReadingWriter(db).reading(meter_id, seq)

    def first_reading_at_or_after(self, meter_id: bytes, timestamp: int) -> StoredReading | None:
        """The meter's stored reading with the smallest timestamp >= `timestamp`, or None.

        A meter's timestamps rise with its seq (the ingest checks keep it so, gap fills too), so
        the first by seq is the first by time; the scan stays within the meter's primary-key range.
        """
        with self.read() as db:
            return reading_tables.first_reading_at_or_after(db, meter_id, timestamp)

    def readings_of_key_from(
        self, meter_id: bytes, key_epoch: int, timestamp: int, *, after_seq: int = -1, limit: int
    ) -> tuple[int, list[StoredReading]]:
        """Readings of the meter accepted under key epoch `key_epoch` and timestamped at or
        after `timestamp` (those a revocation from a compromise time makes suspect): how many
        there are, and up to `limit` of them with seq > `after_seq`, by seq."""
        with self.read() as db:
            return reading_tables.readings_of_key_from(
                db, meter_id, key_epoch, timestamp, after_seq=after_seq, limit=limit
            )

    def integrity_events(self, meter_id: bytes) -> list[IntegrityEvent]:
        """The meter's integrity events, oldest first."""
        with self.read() as db:
            return reading_tables.integrity_events(db, meter_id)

    def gaps(self, meter_id: bytes, *, open_only: bool = False) -> list[Gap]:
        """The meter's recorded gaps (only unresolved ones with `open_only`), by detection."""
        with self.read() as db:
            return reading_tables.gaps(db, meter_id, open_only=open_only)

    def count_readings(self, meter_id: bytes | None = None) -> int:
        """How many readings are stored (of one meter, if given)."""
        with self.read() as db:
            return reading_tables.count_readings(db, meter_id)

    # --- batches (used by the anchorer) ------------------------------------------------------

    def count_pending(self) -> int:
        """How many readings are in no batch yet."""
        with self.read() as db:
            return batch_table.count_pending(db)

    def anchoring_backlog(self) -> AnchoringBacklog:
        """Pending readings, the oldest one's arrival and the last anchoring (for /metrics)."""
        with self.read() as db:
            return batch_table.anchoring_backlog(db)

    def pending_leaves(self, limit: int) -> list[PendingLeaf]:
        """Up to `limit` readings in no batch, oldest received first."""
        with self.read() as db:
            return batch_table.pending_leaves(db, limit)

    def create_batch_intent(self, batch: BatchRecord, members: Sequence[PendingLeaf]) -> None:
        """Commits a batch intent and assigns its readings (leaf index = position in `members`).

        Raises:
            StoreError: The batch id is taken or a member is already in a batch (another
                anchorer got there first); nothing is written.
        """
        with self.write() as db:
            batch_table.create_batch_intent(db, batch, members)

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
            batch_table.mark_anchored(db, batch_id, tx_hash, block_number, anchored_at, final_at)

    def unfinal_batches(self, limit: int) -> list[BatchRecord]:
        """Up to `limit` anchored batches not yet final, oldest first."""
        with self.read() as db:
            return batch_table.unfinal_batches(db, limit)

    def update_anchor_block(
        self, batch_id: int, block_number: int, *, final_at: str | None = None
    ) -> None:
        """Records the block an anchored, not yet final batch is in now (a reorganisation may
        have mined its transaction again elsewhere); final from `final_at` if given."""
        with self.write() as db:
            batch_table.update_anchor_block(db, batch_id, block_number, final_at)

    def mark_dropped(self, batch_id: int) -> None:
        """An anchored, not yet final batch is no longer on the chain (its block was
        reorganised away): it becomes an intent again, with the same root and readings, so the
        anchorer's reconciliation sends it again under its id or releases its readings."""
        with self.write() as db:
            batch_table.mark_dropped(db, batch_id)

    def mark_foreign(self, batch_id: int, chain_root: bytes) -> int:
        """The chain holds another root under `batch_id`: releases the intent's readings to a
        later batch and keeps the id as 'foreign' with the chain's root. Returns how many
        readings were released."""
        with self.write() as db:
            return batch_table.mark_foreign(db, batch_id, chain_root)

    def batches(self, *, status: str | None = None) -> list[BatchRecord]:
        """Batches by id (only those with `status`, if given)."""
        with self.read() as db:
            return batch_table.batches(db, status)

    def batch(self, batch_id: int) -> BatchRecord | None:
        with self.read() as db:
            return batch_table.batch(db, batch_id)

    def last_batch_id(self, *, status: str | None = None) -> int:
        """The highest batch id recorded (with `status`, if given); 0 when there is none."""
        with self.read() as db:
            return batch_table.last_batch_id(db, status)

    def count_batches(self, status: str) -> int:
        """How many batches have `status`."""
        with self.read() as db:
            return batch_table.count_batches(db, status)

    def count_unfinal_batches(self) -> int:
        """How many anchored batches are not final yet."""
        with self.read() as db:
            return batch_table.count_unfinal_batches(db)

    def batch_leaves(self, batch_id: int) -> list[bytes]:
        """The leaves of a batch in tree order."""
        with self.read() as db:
            return batch_table.batch_leaves(db, batch_id)

    # --- relay quota -------------------------------------------------------------------------

    def reserve_relay(self, signer: str, *, now: int, window_s: int, limit: int) -> RelaySlot:
        """Records a relay for `signer` at `now` if fewer than `limit` were recorded in the
        `window_s` seconds before; in one write transaction, so concurrent workers and gateways
        never let a signer past the limit. Older rows (of every signer) are deleted first."""
        with self.write() as db:
            return relay_table.reserve_relay(db, signer, now=now, window_s=window_s, limit=limit)

    def release_relay(self, row_id: int) -> None:
        """Forgets a reserved relay that was not sent after all (refused by its pre-check)."""
        with self.write() as db:
            relay_table.release_relay(db, row_id)

    def close(self) -> None:
        with self._lock:
            self._backend.close()
