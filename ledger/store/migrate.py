"""Brings a database to the newest schema: the upgrade runner every `Store` runs on open.

Three kinds of database meet it:
- a new one (no tables): Alembic upgrades it from nothing to the head revision;
- one written by a release before the migrations (a `schema_info` table holding version 1 to 4,
  no `alembic_version`): first what those releases did on open (`legacy.upgrade_to_version_4`),
  then it is stamped with the baseline revision ("0001_baseline", which is schema version 4) and
  upgraded to the head;
- one Alembic manages already: upgraded to the head (nothing to do when it is there).

Everything runs in one transaction under a lock that a second process starting at the same time
waits for (SQLite: the store's write lock file, then BEGIN IMMEDIATE; PostgreSQL: a transaction
advisory lock), so two gateways opening one database never both migrate it, and a failed upgrade
leaves the database as it was. Running it again is a no-op.

The schema version (`Store.status()["schema_version"]`, /health) stays an integer: the baseline
is version 4, as before the migrations, and every later revision adds one (`schema_version`).
It is recorded in `schema_info` by this runner, so a revision file need not bump it.

SQLAlchemy (and Alembic over it) serves only here, at open: the statements of the running store
use the raw drivers (`backends.py`).
"""

from __future__ import annotations

import fcntl
import importlib
import importlib.util
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, create_engine, event, inspect, text
from sqlalchemy.pool import NullPool

from ledger.store.backends import (
    PG_CONNECT_TIMEOUT_S,
    PG_MIGRATE_LOCK,
    StoreError,
    StoreUnavailable,
    redacted,
)
from ledger.store.legacy import LEGACY_VERSION, upgrade_to_version_4
from ledger.store.schema import metadata

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001_baseline"
"""The revision that is schema version 4, where databases of earlier releases join."""

TABLE_MODULES = (
    "ledger.store.schema",
    "ledger.store.read_model_tables",
    "ledger.store.bill_tables",
    "ledger.store.sign_in",
    "ledger.store.complaints",
)
"""The modules that declare tables on `schema.metadata` (imported before it is compared)."""

_SQLITE_BUSY_TIMEOUT_S = 10.0


def declared_metadata() -> MetaData:
    """`schema.metadata` with the tables of every module in `TABLE_MODULES` declared on it."""
    for name in TABLE_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    return metadata


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the ledger's migrations (no alembic.ini: the scripts ship
    inside the package), running on `connection`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision in `migrations/versions/`."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StoreError(f"no migration found in {MIGRATIONS / 'versions'}")
    return head


def schema_version(revision: str) -> int:
    """The integer schema version of a revision: 4 for the baseline, one more per revision."""
    script = ScriptDirectory.from_config(alembic_config())
    return LEGACY_VERSION - 1 + len(list(script.iterate_revisions(revision, "base")))


def engine_for(location: Path | str) -> Engine:
    """An engine on the database at `location` (a SQLite file or a PostgreSQL URL), one
    connection at a time, whose transactions exclude every writer from their start."""
    if isinstance(location, Path):
        path = location

        def connect_sqlite() -> sqlite3.Connection:
            # isolation_level=None: the driver starts no transaction of its own; the "begin"
            # listener below starts each one.
            return sqlite3.connect(
                path,
                timeout=_SQLITE_BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )

        engine = create_engine("sqlite://", creator=connect_sqlite, poolclass=NullPool)

        @event.listens_for(engine, "begin")
        def begin_immediate(connection: Connection) -> None:
            # IMMEDIATE: the write lock from the start, so the tables read here cannot change
            # before the migration writes; and DDL inside the transaction, so it is atomic.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    url = location

    def connect_postgres() -> Any:
        import psycopg

        try:
            return psycopg.connect(url, connect_timeout=PG_CONNECT_TIMEOUT_S)
        except psycopg.OperationalError as error:
            raise StoreUnavailable(location=redacted(url), reason=str(error).strip()) from error

    return create_engine("postgresql+psycopg://", creator=connect_postgres, poolclass=NullPool)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """The store's write lock file (`backends.SQLiteBackend`), which every gateway process on
    this SQLite file takes before writing: a second process starting now waits here for as
    long as the migration takes, where SQLite's busy timeout would give up."""
    fd = os.open(path.with_name(path.name + ".write-lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor drops the flock


def upgrade(location: Path | str) -> str:
    """Brings the database at `location` to the head revision (see the module docstring) and
    records its schema version; returns the revision it is at."""
    engine = engine_for(location)
    try:
        if isinstance(location, Path):
            with _file_lock(location), engine.begin() as connection:
                return _upgrade(connection)
        with engine.begin() as connection:
            # Held until COMMIT: a second gateway starting now waits, then finds it done.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATE_LOCK})
            return _upgrade(connection)
    finally:
        engine.dispose()


def _upgrade(connection: Connection) -> str:
    config = alembic_config(connection)
    tables = set(inspect(connection).get_table_names())
    if "alembic_version" not in tables and "schema_info" in tables:
        _upgrade_legacy(connection)
        command.stamp(config, BASELINE)
    command.upgrade(config, "head")
    revision = MigrationContext.configure(connection).get_current_revision()
    if revision is None:
        raise StoreError("the migrations left the database without a revision")
    connection.execute(
        text(
            "INSERT INTO schema_info(key, value) VALUES ('version', :version) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
        ),
        {"version": str(schema_version(revision))},
    )
    return revision


def _upgrade_legacy(connection: Connection) -> None:
    """A database of a release before the migrations: brought to schema version 4 as those
    releases did on open."""
    found = connection.execute(
        text("SELECT value FROM schema_info WHERE key = 'version'")
    ).scalar_one_or_none()
    if found is not None and int(found) > LEGACY_VERSION:
        raise StoreError(
            f"the database says schema version {found} but has no migration history: it was "
            f"not written by the ledger (version {LEGACY_VERSION} is the last without one)"
        )

    def run(sql: str) -> Sequence[Sequence[Any]]:
        result = connection.exec_driver_sql(sql)
        return [tuple(row) for row in result] if result.returns_rows else []

    upgrade_to_version_4(run, connection.dialect.name)
