"""The read model's tables: what the contracts' events say, in the ledger's own database.

Declared here on `schema.metadata` (SQLAlchemy Core), with the integer encodings their columns
use; `ledger/store/read_model.py` holds the queries and writes of the event indexer. All
prefixed `chain_`:

    chain_cursor          the last indexed block (number, hash, time) and the deployment it is of
    chain_blocks          hashes of indexed blocks, to notice a reorganisation and roll back
    chain_meters          MeterRegistered: owner
    chain_key_epochs      MeterRegistered / MeterKeyRotated: one row per key epoch
    chain_key_revocations MeterKeyRevoked (a revocation may later move earlier: one row each)
    chain_batches         ReadingBatchAnchored
    chain_offers          OfferCreated, with OfferCancelled in its cancel_* columns and the
                          remaining energy derived from its takes
    chain_trades          OfferTaken
    chain_settlements     TradeSettled / TradeRefunded (a trade ends at most once)
    chain_tariffs         TariffPublished: a tariff version's hash and valid-from
    chain_tariff_assignments  TariffAssigned: which tariff a customer has from when
    chain_bill_runs       BillsAnchored: one Merkle root over the bills of an issuing run
    chain_complaint_steps ComplaintRegistry's events: one row per step of a complaint's round
                          (opened, responded, assigned, planned, resolved, rated, reopened)

Every row of an event names the log it came from (block number, transaction hash, log index);
(tx_hash, log_index) is unique in each table.

Chain integers that may exceed SQLite's signed 64-bit INTEGER are fixed-width big-endian BLOBs,
as in the rest of the store: uint64 (energy, times) in 8 bytes, uint128 (prices, money) in 16.
BLOBs compare bytewise, so they sort and compare like the numbers. Ids (offer, trade, batch,
key epoch) and block numbers are counters that stay far below 2^63 and are BIGINT.

The tables are created by the Alembic revisions `0002_read_model` (the first nine),
`0003_bills` (tariffs, assignments, bill runs) and `0006_complaints` (complaint steps), which
opening the store runs (`ledger/store/migrate.py`); `tests/unit/store/test_migrate.py` checks
it against these declarations.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ledger.store.schema import metadata


def _log_columns() -> list[Column[Any]]:
    """Where a row came from: the log's block, transaction and index in its block."""
    return [
        Column("block_number", BigInteger, nullable=False),
        Column("tx_hash", LargeBinary, nullable=False),
        Column("log_index", Integer, nullable=False),
    ]


chain_cursor = Table(
    "chain_cursor",
    metadata,
    Column("id", Integer, primary_key=True),  # always 1: one cursor per database
    Column("deployment", Text, nullable=False),  # chain id and contract addresses indexed
    Column("block_number", BigInteger, nullable=False),  # indexed up to and including this
    Column("block_hash", LargeBinary),  # NULL before the first block is indexed
    Column("block_timestamp", BigInteger, nullable=False),
)
chain_blocks = Table(
    "chain_blocks",
    metadata,
    Column("block_number", BigInteger, primary_key=True, autoincrement=False),
    Column("block_hash", LargeBinary, nullable=False),
)
chain_meters = Table(
    "chain_meters",
    metadata,
    Column("meter_id", LargeBinary, primary_key=True),  # bytes32
    Column("owner", String(42), nullable=False),  # EIP-55
    *_log_columns(),
    UniqueConstraint("tx_hash", "log_index"),
)
chain_key_epochs = Table(
    "chain_key_epochs",
    metadata,
    Column("meter_id", LargeBinary, primary_key=True),
    Column("epoch", BigInteger, primary_key=True, autoincrement=False),
    Column("algorithm", SmallInteger, nullable=False),
    Column("public_key", LargeBinary, nullable=False),
    Column("valid_from", LargeBinary, nullable=False),  # uint64
    *_log_columns(),
    UniqueConstraint("tx_hash", "log_index"),
)
chain_key_revocations = Table(
    "chain_key_revocations",
    metadata,
    Column("meter_id", LargeBinary, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("revoked_at", LargeBinary, nullable=False),  # uint64; the earliest one counts
    *_log_columns(),
    PrimaryKeyConstraint("tx_hash", "log_index"),
    Index(None, "meter_id", "epoch"),
)
chain_batches = Table(
    "chain_batches",
    metadata,
    Column("batch_id", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("from_ts", LargeBinary, nullable=False),  # uint64
    Column("to_ts", LargeBinary, nullable=False),  # uint64
    *_log_columns(),
    UniqueConstraint("tx_hash", "log_index"),
)
chain_offers = Table(
    "chain_offers",
    metadata,
    Column("offer_id", BigInteger, primary_key=True, autoincrement=False),
    Column("seller", String(42), nullable=False),
    Column("seller_meter", LargeBinary, nullable=False),
    Column("quantity_wh", LargeBinary, nullable=False),  # uint64
    Column("price_per_kwh", LargeBinary, nullable=False),  # uint128
    Column("delivery_start", LargeBinary, nullable=False),  # uint64
    Column("expiry", LargeBinary, nullable=False),  # uint64
    Column("remaining_wh", LargeBinary, nullable=False),  # uint64, derived (`_refresh_offers`)
    *_log_columns(),
    Column("cancel_block_number", BigInteger),  # OfferCancelled; NULL while not cancelled
    Column("cancel_tx_hash", LargeBinary),
    Column("cancel_log_index", Integer),
    Column("withdrawn_wh", LargeBinary),  # uint64
    UniqueConstraint("tx_hash", "log_index"),
    Index(None, "seller"),
)
chain_trades = Table(
    "chain_trades",
    metadata,
    Column("trade_id", BigInteger, primary_key=True, autoincrement=False),
    Column("offer_id", BigInteger, nullable=False),
    Column("buyer", String(42), nullable=False),
    Column("buyer_meter", LargeBinary, nullable=False),
    Column("quantity_wh", LargeBinary, nullable=False),  # uint64
    Column("escrow", LargeBinary, nullable=False),  # uint128
    *_log_columns(),
    UniqueConstraint("tx_hash", "log_index"),
    Index(None, "buyer"),
    Index(None, "offer_id"),
)
chain_settlements = Table(
    "chain_settlements",
    metadata,
    Column("trade_id", BigInteger, primary_key=True, autoincrement=False),
    Column("outcome", String(8), nullable=False),  # 'settled' | 'refunded'
    Column("delivered_wh", LargeBinary, nullable=False),  # uint64
    Column("paid", LargeBinary, nullable=False),  # uint128
    Column("refunded", LargeBinary, nullable=False),  # uint128
    *_log_columns(),
    UniqueConstraint("tx_hash", "log_index"),
)

chain_tariffs = Table(
    "chain_tariffs",
    metadata,
    Column("tariff_hash", LargeBinary, primary_key=True),  # keccak256 of the tariff file
    Column("valid_from", LargeBinary, nullable=False),  # uint64
    *_log_columns(),
    UniqueConstraint("tx_hash", "log_index"),
)
chain_tariff_assignments = Table(
    "chain_tariff_assignments",
    metadata,
    Column("customer", String(42), nullable=False),  # EIP-55
    Column("valid_from", LargeBinary, nullable=False),  # uint64; rises per customer
    Column("tariff_hash", LargeBinary, nullable=False),
    *_log_columns(),
    PrimaryKeyConstraint("customer", "valid_from"),
    UniqueConstraint("tx_hash", "log_index"),
)
chain_bill_runs = Table(
    "chain_bill_runs",
    metadata,
    Column("run_id", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary, nullable=False),
    Column("bill_count", BigInteger, nullable=False),
    Column("period_start", LargeBinary, nullable=False),  # uint64
    Column("period_end", LargeBinary, nullable=False),  # uint64
    Column("first_reading_batch", BigInteger, nullable=False),
    Column("last_reading_batch", BigInteger, nullable=False),
    *_log_columns(),
    UniqueConstraint("tx_hash", "log_index"),
)
chain_complaint_steps = Table(
    "chain_complaint_steps",
    metadata,
    Column("complaint_id", BigInteger, nullable=False),
    # 'opened' | 'responded' | 'assigned' | 'planned' | 'resolved' | 'rated' | 'reopened'
    Column("step", String(12), nullable=False),
    Column("round", Integer, nullable=False),  # 1, + 1 at each reopening
    Column("at", BigInteger, nullable=False),  # the block's time (uint48 on chain)
    Column("customer", String(42)),  # EIP-55; 'opened' rows only
    Column("subject_kind", SmallInteger),  # IComplaintRegistry.SubjectKind; 'opened' only
    Column("subject_ref", LargeBinary),  # 'opened' only
    Column("handler", LargeBinary),  # 'assigned' only
    Column("rating", SmallInteger),  # 'rated' only
    Column("text_hash", LargeBinary),  # keccak256 of the step's text; not for 'rated'
    *_log_columns(),
    # A round has each step at most once (the contract's order enforces it).
    PrimaryKeyConstraint("complaint_id", "round", "step"),
    UniqueConstraint("tx_hash", "log_index"),
    Index(None, "customer"),
    Index(None, "at"),
)

READ_MODEL_TABLES = (
    chain_cursor,
    chain_blocks,
    chain_meters,
    chain_key_epochs,
    chain_key_revocations,
    chain_batches,
    chain_offers,
    chain_trades,
    chain_settlements,
    chain_tariffs,
    chain_tariff_assignments,
    chain_bill_runs,
    chain_complaint_steps,
)
EVENT_TABLES = tuple(t.name for t in READ_MODEL_TABLES if "tx_hash" in t.c)
"""The tables of rows that come from logs: what a reset or a rollback deletes."""
