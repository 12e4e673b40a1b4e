"""A database written by the last release before the migrations (schema version 4, no Alembic
history) is upgraded in place when this release opens it, and keeps every row.

The SQLite file `tests/data/store/v4-ledger.db` was written by that release's own code (see
`tests/data/store/make_v4_ledger.py`); for PostgreSQL, that release's schema text
(`v4-schema-postgresql.sql`) is applied and the same rows copied in.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from ledger.chain.client import free_port
from ledger.readings.native import anchored_leaf
from ledger.store.database import Store
from ledger.store.migrate import BASELINE, head_revision, schema_version, upgrade
from tests.fixtures.gateway import ledger_env, start_gateway
from tests.fixtures.postgres import store_location
from tests.unit.store.test_migrate import current_revision, schema_differences

DATA = Path(__file__).resolve().parents[1] / "data" / "store"
EXPECTED = json.loads((DATA / "v4-ledger.json").read_text())
METER_ID = bytes.fromhex(EXPECTED["readings"][0]["meter_id"][2:])
# Tables of schema version 4 in an order their rows can be copied in; the `id` of the serial
# ones is left to the database, as that release's inserts did.
V4_TABLES = ("schema_info", "readings", "batches", "meter_integrity_events", "reading_gaps",
             "relay_usage")  # fmt: skip
SERIAL_TABLES = {"meter_integrity_events", "reading_gaps", "relay_usage"}


def _json(value: object) -> object:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    return value


def copy_v4_rows_to_postgres(url: str) -> None:
    """That release's PostgreSQL schema, with the rows of the SQLite file."""
    with closing(sqlite3.connect(DATA / "v4-ledger.db")) as source, psycopg.connect(url) as db:
        db.execute((DATA / "v4-schema-postgresql.sql").read_text())
        for table in V4_TABLES:
            cursor = source.execute(f"SELECT * FROM {table} ORDER BY rowid")
            columns = [c[0] for c in cursor.description]
            keep = [i for i, c in enumerate(columns) if not (table in SERIAL_TABLES and c == "id")]
            names = ", ".join(columns[i] for i in keep)
            marks = ", ".join(["%s"] * len(keep))
            with db.cursor() as insert:
                insert.executemany(
                    f"INSERT INTO {table} ({names}) VALUES ({marks})",
                    [tuple(row[i] for i in keep) for row in cursor],
                )


@pytest.fixture
def v4_database(database_url: str, tmp_path: Path) -> Path | str:
    """A database as the last release before the migrations left it, on each backend."""
    location = store_location(database_url)
    if isinstance(location, Path):
        shutil.copyfile(DATA / "v4-ledger.db", location)
    else:
        copy_v4_rows_to_postgres(location)
    return location


def stored_rows(store: Store) -> dict[str, Any]:
    """What the store finds of the rows `v4-ledger.json` lists."""
    return {
        "readings": [
            _json(asdict(r))
            for r in (store.reading(METER_ID, e["seq"]) for e in EXPECTED["readings"])
            if r is not None
        ],
        "gaps": [_json(asdict(g)) for g in store.gaps(METER_ID)],
        "integrity_events": [_json(asdict(e)) for e in store.integrity_events(METER_ID)],
        "batches": [_json(asdict(b)) for b in store.batches()],
        "pending": store.count_pending(),
    }


def upgraded_expectation() -> dict[str, Any]:
    """`v4-ledger.json` as the upgrade leaves it (migration 0007, reading leaf version 2): its
    batches at leaf version 1, and the leaf of the reading in no batch yet recomputed as
    version 2 (signed bytes: its canonical bytes; signature: 64 bytes as stored)."""
    expected = dict(EXPECTED)
    expected["batches"] = [{**b, "leaf_version": 1} for b in EXPECTED["batches"]]
    readings = []
    for r in EXPECTED["readings"]:
        if r["batch_id"] is None:
            canonical = bytes.fromhex(r["canonical"][2:])
            signature = bytes.fromhex(r["signature"][2:])
            r = {**r, "leaf": "0x" + anchored_leaf(canonical, canonical, signature).hex()}
        readings.append(r)
    expected["readings"] = readings
    return expected


def test_the_test_data_was_written_at_schema_version_4_without_migration_history() -> None:
    assert EXPECTED["schema_version"] == 4
    assert current_revision(DATA / "v4-ledger.db") is None


def test_a_version_4_database_keeps_every_reading_gap_event_and_batch(
    v4_database: Path | str,
) -> None:
    store = Store(v4_database)
    try:
        found = stored_rows(store)
    finally:
        store.close()

    assert found == {k: upgraded_expectation()[k] for k in found}
    assert len(found["readings"]) == 7 and len(found["gaps"]) == 2
    assert len(found["integrity_events"]) == 1 and len(found["batches"]) == 3


def test_a_version_4_database_is_stamped_at_the_baseline_and_upgraded_to_the_head(
    v4_database: Path | str,
) -> None:
    store = Store(v4_database)
    try:
        status = store.status()
    finally:
        store.close()

    assert current_revision(v4_database) == head_revision()
    assert status["schema_version"] == schema_version(head_revision()) >= schema_version(BASELINE)


def test_an_upgraded_version_4_database_has_exactly_the_declared_schema(
    v4_database: Path | str,
) -> None:
    upgrade(v4_database)

    assert schema_differences(v4_database) == []


def test_upgrading_a_version_4_database_twice_changes_nothing_the_second_time(
    v4_database: Path | str,
) -> None:
    upgrade(v4_database)
    upgrade(v4_database)

    store = Store(v4_database)
    try:
        found = stored_rows(store)
    finally:
        store.close()
    assert found == {k: upgraded_expectation()[k] for k in found}
    assert schema_differences(v4_database) == []


def test_the_upgraded_database_takes_new_rows_after_the_old_ones(
    v4_database: Path | str,
) -> None:
    store = Store(v4_database)
    try:
        slot = store.reserve_relay("0x" + "22" * 20, now=EXPECTED_NOW, window_s=3600, limit=5)
    finally:
        store.close()

    assert slot.row_id == 2  # the identity / AUTOINCREMENT continues after the copied row


EXPECTED_NOW = 1_700_000_000


@pytest.mark.chain
def test_ledger_serve_upgrades_a_version_4_database_on_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    shutil.copyfile(DATA / "v4-ledger.db", data_dir / "ledger.db")
    gateway = start_gateway(ledger_env(data_dir, "anvil", free_port()), tmp_path / "gateway.log")
    try:
        health = httpx.get(f"{gateway.base_url}/healthz", timeout=10).json()
    finally:
        gateway.stop()

    assert health["database"]["schema_version"] == schema_version(head_revision())
    assert current_revision(data_dir / "ledger.db") == head_revision()
    store = Store(data_dir / "ledger.db")
    try:
        assert store.count_readings(METER_ID) == len(EXPECTED["readings"])
    finally:
        store.close()
