"""The upgrade runner on new databases (SQLite and PostgreSQL): Alembic's revisions create what
`schema.metadata` declares, a second upgrade changes nothing, and two processes opening a new
database at once both find it migrated once."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Connection, Identity, UniqueConstraint, inspect, text

from ledger.store.backends import StoreError
from ledger.store.database import Store
from ledger.store.legacy import statements
from ledger.store.migrate import (
    BASELINE,
    declared_metadata,
    engine_for,
    head_revision,
    schema_version,
    upgrade,
)
from tests.fixtures.postgres import store_location


def _compare_sqlite_default(
    context: MigrationContext, inspected: Column[Any], declared: Column[Any], *_: Any
) -> bool | None:
    # An identity column is a plain INTEGER PRIMARY KEY AUTOINCREMENT on SQLite, which has no
    # identity to reflect; every other default is compared as Alembic does.
    return False if isinstance(declared.server_default, Identity) else None


def _inline_unique_present(connection: Connection, difference: Any) -> bool:
    """Whether `difference` asks for a unique constraint that a SQLite table has, declared
    inline on its column (`receipt_id TEXT NOT NULL UNIQUE`, as version 4 wrote it): SQLite
    enforces it with an automatic unique index (origin 'u'), which SQLAlchemy's reflection
    does not report as a constraint."""
    if connection.dialect.name != "sqlite" or not isinstance(difference, tuple):
        return False
    if difference[0] != "add_constraint" or not isinstance(difference[1], UniqueConstraint):
        return False
    constraint = difference[1]
    wanted = [column.name for column in constraint.columns]
    table = constraint.table.name
    for _, name, unique, origin, *_ in connection.exec_driver_sql(f"PRAGMA index_list({table})"):
        if unique and origin == "u":
            columns = [row[2] for row in connection.exec_driver_sql(f"PRAGMA index_info({name})")]
            if columns == wanted:
                return True
    return False


def schema_differences(location: Path | str) -> list[Any]:
    """What Alembic's autogenerate finds between the database and `schema.metadata` (types and
    server defaults included)."""
    engine = engine_for(location)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "compare_server_default": (
                        _compare_sqlite_default if connection.dialect.name == "sqlite" else True
                    ),
                },
            )
            differences = compare_metadata(context, declared_metadata())
            return [d for d in differences if not _inline_unique_present(connection, d)]
    finally:
        engine.dispose()


def current_revision(location: Path | str) -> str | None:
    engine = engine_for(location)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def test_a_new_database_is_created_at_the_head_revision(store: Store, database_url: str) -> None:
    assert store.revision == head_revision()
    assert current_revision(store_location(database_url)) == head_revision()


def test_a_new_database_has_exactly_the_declared_schema(store: Store, database_url: str) -> None:
    assert schema_differences(store_location(database_url)) == []


def test_upgrading_an_upgraded_database_again_changes_nothing(
    store: Store, database_url: str
) -> None:
    location = store_location(database_url)
    with store.write() as db:
        db.execute("INSERT INTO relay_usage(signer, relayed_at) VALUES (?, ?)", ("0xab", 1))

    assert upgrade(location) == head_revision()
    assert upgrade(location) == head_revision()

    assert schema_differences(location) == []
    assert store.status()["schema_version"] == schema_version(head_revision())
    with store.read() as db:
        assert db.execute("SELECT signer, relayed_at FROM relay_usage").fetchall() == [("0xab", 1)]


def test_the_baseline_revision_is_schema_version_4() -> None:
    assert schema_version(BASELINE) == 4


def test_status_reports_the_integer_schema_version_of_the_head_revision(store: Store) -> None:
    assert store.status()["schema_version"] == schema_version(head_revision())


def test_two_processes_opening_a_new_database_at_once_migrate_it_once(database_url: str) -> None:
    location = store_location(database_url)
    start = threading.Barrier(2)
    revisions: list[str] = []
    errors: list[BaseException] = []

    def open_store() -> None:
        start.wait()
        try:
            revisions.append(upgrade(location))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=open_store) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert revisions == [head_revision(), head_revision()]
    engine = engine_for(location)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
            assert "readings" in inspect(connection).get_table_names()
    finally:
        engine.dispose()
    assert [v for (v,) in versions] == [head_revision()]


def test_a_schema_info_version_above_4_without_migration_history_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE schema_info (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO schema_info VALUES ('version', '9')")
        db.commit()

    with pytest.raises(StoreError, match="schema version 9 but has no migration history"):
        Store(path)


def test_the_legacy_schema_text_splits_into_statements_without_its_comments() -> None:
    script = (
        "CREATE TABLE t (\n  a TEXT  -- first; second\n);\n-- a note; more\n"
        "CREATE INDEX i ON t(a);\n"
    )

    assert statements(script) == ["CREATE TABLE t (\n  a TEXT  \n)", "CREATE INDEX i ON t(a)"]
