"""Bills: the read model's tariff, assignment and bill-run events, and the gateway's tariff
texts, issuing runs and bills (ledger/store/read_model_tables.py, ledger/store/bill_tables.py).

Written out in full rather than from `schema.metadata`, which later revisions change.

Revision ID: 0003_bills
Revises: 0002_read_model
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_bills"
down_revision: str | None = "0002_read_model"
branch_labels = None
depends_on = None

_BINARY = sa.LargeBinary()  # BLOB on SQLite, BYTEA on PostgreSQL; uint64 big-endian

_TABLES = (
    "chain_tariffs",
    "chain_tariff_assignments",
    "chain_bill_runs",
    "tariff_texts",
    "bill_runs",
    "bills",
)


def _log_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", _BINARY, nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "chain_tariffs",
        sa.Column("tariff_hash", _BINARY, nullable=False),
        sa.Column("valid_from", _BINARY, nullable=False),
        *_log_columns(),
        sa.PrimaryKeyConstraint("tariff_hash", name="pk_chain_tariffs"),
        sa.UniqueConstraint("tx_hash", "log_index", name="uq_chain_tariffs_tx_hash_log_index"),
    )
    op.create_table(
        "chain_tariff_assignments",
        sa.Column("customer", sa.String(42), nullable=False),
        sa.Column("valid_from", _BINARY, nullable=False),
        sa.Column("tariff_hash", _BINARY, nullable=False),
        *_log_columns(),
        sa.PrimaryKeyConstraint("customer", "valid_from", name="pk_chain_tariff_assignments"),
        sa.UniqueConstraint(
            "tx_hash", "log_index", name="uq_chain_tariff_assignments_tx_hash_log_index"
        ),
    )
    op.create_table(
        "chain_bill_runs",
        sa.Column("run_id", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("root", _BINARY, nullable=False),
        sa.Column("bill_count", sa.BigInteger(), nullable=False),
        sa.Column("period_start", _BINARY, nullable=False),
        sa.Column("period_end", _BINARY, nullable=False),
        sa.Column("first_reading_batch", sa.BigInteger(), nullable=False),
        sa.Column("last_reading_batch", sa.BigInteger(), nullable=False),
        *_log_columns(),
        sa.PrimaryKeyConstraint("run_id", name="pk_chain_bill_runs"),
        sa.UniqueConstraint("tx_hash", "log_index", name="uq_chain_bill_runs_tx_hash_log_index"),
    )
    op.create_table(
        "tariff_texts",
        sa.Column("tariff_hash", _BINARY, nullable=False),
        sa.Column("text", _BINARY, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("added_at", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tariff_hash", name="pk_tariff_texts"),
    )
    op.create_table(
        "bill_runs",
        sa.Column("run_id", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("period_start", sa.BigInteger(), nullable=False),
        sa.Column("period_end", sa.BigInteger(), nullable=False),
        sa.Column("period_label", sa.Text()),
        sa.Column("root", _BINARY, nullable=False),
        sa.Column("bill_count", sa.Integer(), nullable=False),
        sa.Column("first_reading_batch", sa.BigInteger(), nullable=False),
        sa.Column("last_reading_batch", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("tx_hash", _BINARY),
        sa.Column("block_number", sa.BigInteger()),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("anchored_at", sa.Text()),
        sa.PrimaryKeyConstraint("run_id", name="pk_bill_runs"),
    )
    op.create_table(
        "bills",
        sa.Column("bill_hash", _BINARY, nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("leaf_index", sa.Integer(), nullable=False),
        sa.Column("customer", sa.String(42), nullable=False),
        sa.Column("period_start", sa.BigInteger(), nullable=False),
        sa.Column("period_end", sa.BigInteger(), nullable=False),
        sa.Column("document", _BINARY, nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("estimated", sa.Integer(), nullable=False),
        sa.Column("replaces", _BINARY),
        sa.Column("replaced_by", _BINARY),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("bill_hash", name="pk_bills"),
    )
    op.create_index("ix_bills_customer_period_start", "bills", ["customer", "period_start"])
    op.create_index("ix_bills_run_id_leaf_index", "bills", ["run_id", "leaf_index"])
    current = sa.text("replaced_by IS NULL")
    op.create_index(
        "bills_current",
        "bills",
        ["customer", "period_start", "period_end"],
        unique=True,
        sqlite_where=current,
        postgresql_where=current,
    )


def downgrade() -> None:
    for table in reversed(_TABLES):
        op.drop_table(table)
