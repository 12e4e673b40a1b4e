"""Databases written before the migrations: what today's code did on open, kept to bring them
to schema version 4, the state the first migration ("0001_baseline") starts from.

Releases up to schema version 4 created their tables from the SQL text below on every open
(`CREATE ... IF NOT EXISTS`), added the columns of later versions to older SQLite files by hand,
and recorded the version as an integer in `schema_info`. `upgrade_to_version_4` does exactly that
once more on such a database; `migrate.py` then stamps it with the baseline revision and hands it
to Alembic. Do not change this text: it is the history of what is in users' databases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

LEGACY_VERSION = 4
# uint64 values (seq, timestamp, registers) do not fit SQLite's signed 64-bit INTEGER, so they are
# stored as 8-byte big-endian BLOBs: BLOBs compare with memcmp, so they sort like the numbers and
# `ORDER BY seq` / `seq < ?` work. Meter ids are the raw bytes32.
SCHEMA_V4 = """
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

# SQLite lets a primary key column that is not an INTEGER hold NULL unless it says NOT NULL, and
# version 4 did not say it for `schema_info.key` and `batches.batch_id` (PostgreSQL implies it).
# The baseline says it, so these two small tables (a row per batch) are rebuilt with it, the
# way SQLite changes a column: copy into a new table, drop the old one, rename.
_SQLITE_NOT_NULL_KEYS = """
CREATE TABLE schema_info_v4 (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO schema_info_v4 SELECT key, value FROM schema_info;
DROP TABLE schema_info;
ALTER TABLE schema_info_v4 RENAME TO schema_info;
CREATE TABLE batches_v4 (
    batch_id     BIGINT NOT NULL PRIMARY KEY,
    root         BLOB NOT NULL,
    count        INTEGER NOT NULL,
    from_ts      BLOB NOT NULL,
    to_ts        BLOB NOT NULL,
    status       TEXT NOT NULL,
    tx_hash      BLOB,
    block_number BIGINT,
    created_at   TEXT NOT NULL,
    anchored_at  TEXT,
    final_at     TEXT
);
INSERT INTO batches_v4 SELECT batch_id, root, count, from_ts, to_ts, status, tx_hash,
    block_number, created_at, anchored_at, final_at FROM batches;
DROP TABLE batches;
ALTER TABLE batches_v4 RENAME TO batches;
"""

Run = Callable[[str], Sequence[Sequence[Any]]]
"""Runs one SQL statement (no parameters) and returns its rows ([] for a statement without)."""


def statements(script: str) -> list[str]:
    """The statements of an SQL script, one per item, without comments (none of its strings
    holds `--` or `;`), so that any driver can run them one at a time."""
    text = "\n".join(line.split("--", 1)[0] for line in script.splitlines())
    return [statement.strip() for statement in text.split(";") if statement.strip()]


def schema_v4(dialect: str) -> str:
    """Schema version 4 as the SQL text the code up to version 4 ran, for one dialect."""
    return SCHEMA_V4.format(**(_SQLITE_TYPES if dialect == "sqlite" else _POSTGRES_TYPES))


def upgrade_to_version_4(run: Run, dialect: str) -> None:
    """What opening a database of schema version 1 to 4 did up to version 4: the columns of
    versions 3 and 4 added to the tables that lack them, every table and index created if it is
    missing, and version 4 recorded in `schema_info`; on SQLite, the two primary keys version 4
    left nullable made NOT NULL, as the baseline revision declares them."""
    if dialect == "sqlite":
        # A version-2 file: add the columns version 3 introduced before the new indexes (which
        # name them) are created.
        for table, columns in (*_V3_COLUMNS.items(), *_V4_COLUMNS.items()):
            present = {row[1] for row in run(f"PRAGMA table_info({table})")}
            for column, definition in columns.items():
                if present and column not in present:
                    run(f"ALTER TABLE {table} ADD COLUMN {definition}")
    for statement in statements(schema_v4(dialect)):
        run(statement)
    if dialect != "sqlite":
        for table, columns in _V4_COLUMNS.items():
            for definition in columns.values():
                run(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {definition}")
    if dialect == "sqlite":
        for statement in statements(_SQLITE_NOT_NULL_KEYS):
            run(statement)
    run(
        "INSERT INTO schema_info(key, value) VALUES ('version', '4') "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value "
        "WHERE CAST(schema_info.value AS INTEGER) < CAST(excluded.value AS INTEGER)"
    )
