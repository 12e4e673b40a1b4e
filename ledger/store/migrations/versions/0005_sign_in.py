"""Sign-in nonces (ledger/store/sign_in.py): `sign_in_nonces`, the single-use nonces of Sign-In
with Ethereum, shared by every worker and gateway on the database.

Revision ID: 0005_sign_in
Revises: 0004_readings_for_bills
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_sign_in"
down_revision: str | None = "0004_readings_for_bills"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_nonces",
        sa.Column("nonce", sa.Text(), primary_key=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("sign_in_nonces_by_expiry", "sign_in_nonces", ["expires_at"])


def downgrade() -> None:
    op.drop_table("sign_in_nonces")
