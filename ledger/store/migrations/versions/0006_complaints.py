"""Complaints: the read model's `chain_complaint_steps` (ComplaintRegistry's events, one row per
step of a round) and the gateway's `complaint_texts` (the texts whose hashes are on chain).

Written out in full rather than from `schema.metadata`, which later revisions change.

Revision ID: 0006_complaints
Revises: 0005_sign_in
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_complaints"
down_revision: str | None = "0005_sign_in"
branch_labels = None
depends_on = None

_BINARY = sa.LargeBinary()


def upgrade() -> None:
    op.create_table(
        "chain_complaint_steps",
        sa.Column("complaint_id", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.String(12), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("customer", sa.String(42)),
        sa.Column("subject_kind", sa.SmallInteger()),
        sa.Column("subject_ref", _BINARY),
        sa.Column("handler", _BINARY),
        sa.Column("rating", sa.SmallInteger()),
        sa.Column("text_hash", _BINARY),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", _BINARY, nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("complaint_id", "round", "step", name="pk_chain_complaint_steps"),
        sa.UniqueConstraint(
            "tx_hash", "log_index", name="uq_chain_complaint_steps_tx_hash_log_index"
        ),
    )
    op.create_index("ix_chain_complaint_steps_customer", "chain_complaint_steps", ["customer"])
    op.create_index("ix_chain_complaint_steps_at", "chain_complaint_steps", ["at"])
    op.create_table(
        "complaint_texts",
        sa.Column("text_hash", _BINARY, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("added_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("text_hash", name="pk_complaint_texts"),
    )


def downgrade() -> None:
    op.drop_table("complaint_texts")
    op.drop_table("chain_complaint_steps")
