"""The event indexer's read model: what the contracts' events say
(ledger/store/read_model_tables.py).

Tables `chain_cursor` (how far the read model is indexed, and of which deployment),
`chain_blocks` (hashes of indexed blocks, to notice a reorganisation), and one table per kind of
event: meters, key epochs, key revocations, anchored batches, offers (with their cancellation),
trades and settlements. Every row of an event names its log (block number, transaction hash,
log index; the last two unique), which makes indexing idempotent. Written out in full rather
than from `schema.metadata`, which later revisions change.

Revision ID: 0002_read_model
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_read_model"
down_revision: str | None = "0001_baseline"
branch_labels = None
depends_on = None

_BINARY = sa.LargeBinary()  # BLOB on SQLite, BYTEA on PostgreSQL; uint64/uint128 big-endian

_TABLES = (
    "chain_cursor",
    "chain_blocks",
    "chain_meters",
    "chain_key_epochs",
    "chain_key_revocations",
    "chain_batches",
    "chain_offers",
    "chain_trades",
    "chain_settlements",
)


def upgrade() -> None:
    op.create_table(
        "chain_cursor",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("deployment", sa.Text(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", _BINARY),
        sa.Column("block_timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_chain_cursor"),
    )
    op.create_table(
        "chain_blocks",
        sa.Column("block_number", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("block_hash", _BINARY, nullable=False),
        sa.PrimaryKeyConstraint("block_number", name="pk_chain_blocks"),
    )
    op.create_table(
        "chain_meters",
        sa.Column("meter_id", _BINARY, nullable=False),
        sa.Column("owner", sa.String(42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", _BINARY, nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("meter_id", name="pk_chain_meters"),
        sa.UniqueConstraint("tx_hash", "log_index", name="uq_chain_meters_tx_hash_log_index"),
    )
    op.create_table(
        "chain_key_epochs",
        sa.Column("meter_id", _BINARY, nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("algorithm", sa.SmallInteger(), nullable=False),
        sa.Column("public_key", _BINARY, nullable=False),
        sa.Column("valid_from", _BINARY, nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", _BINARY, nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("meter_id", "epoch", name="pk_chain_key_epochs"),
        sa.UniqueConstraint("tx_hash", "log_index", name="uq_chain_key_epochs_tx_hash_log_index"),
    )
    op.create_table(
        "chain_key_revocations",
        sa.Column("meter_id", _BINARY, nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", _BINARY, nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", _BINARY, nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tx_hash", "log_index", name="pk_chain_key_revocations"),
    )
    op.create_index(
        "ix_chain_key_revocations_meter_id_epoch", "chain_key_revocations", ["meter_id", "epoch"]
    )
    op.create_table(
        "chain_batches",
        sa.Column("batch_id", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("root", _BINARY, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("from_ts", _BINARY, nullable=False),
        sa.Column("to_ts", _BINARY, nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", _BINARY, nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name="pk_chain_batches"),
        sa.UniqueConstraint("tx_hash", "log_index", name="uq_chain_batches_tx_hash_log_index"),
    )
    op.create_table(
        "chain_offers",
        sa.Column("offer_id", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("seller", sa.String(42), nullable=False),
        sa.Column("seller_meter", _BINARY, nullable=False),
        sa.Column("quantity_wh", _BINARY, nullable=False),
        sa.Column("price_per_kwh", _BINARY, nullable=False),
        sa.Column("delivery_start", _BINARY, nullable=False),
        sa.Column("expiry", _BINARY, nullable=False),
        sa.Column("remaining_wh", _BINARY, nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", _BINARY, nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("cancel_block_number", sa.BigInteger()),
        sa.Column("cancel_tx_hash", _BINARY),
        sa.Column("cancel_log_index", sa.Integer()),
        sa.Column("withdrawn_wh", _BINARY),
        sa.PrimaryKeyConstraint("offer_id", name="pk_chain_offers"),
        sa.UniqueConstraint("tx_hash", "log_index", name="uq_chain_offers_tx_hash_log_index"),
    )
    op.create_index("ix_chain_offers_seller", "chain_offers", ["seller"])
    op.create_table(
        "chain_trades",
        sa.Column("trade_id", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("offer_id", sa.BigInteger(), nullable=False),
        sa.Column("buyer", sa.String(42), nullable=False),
        sa.Column("buyer_meter", _BINARY, nullable=False),
        sa.Column("quantity_wh", _BINARY, nullable=False),
        sa.Column("escrow", _BINARY, nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", _BINARY, nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("trade_id", name="pk_chain_trades"),
        sa.UniqueConstraint("tx_hash", "log_index", name="uq_chain_trades_tx_hash_log_index"),
    )
    op.create_index("ix_chain_trades_buyer", "chain_trades", ["buyer"])
    op.create_index("ix_chain_trades_offer_id", "chain_trades", ["offer_id"])
    op.create_table(
        "chain_settlements",
        sa.Column("trade_id", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("delivered_wh", _BINARY, nullable=False),
        sa.Column("paid", _BINARY, nullable=False),
        sa.Column("refunded", _BINARY, nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", _BINARY, nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("trade_id", name="pk_chain_settlements"),
        sa.UniqueConstraint("tx_hash", "log_index", name="uq_chain_settlements_tx_hash_log_index"),
    )


def downgrade() -> None:
    for table in reversed(_TABLES):
        op.drop_table(table)
