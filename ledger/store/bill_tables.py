"""The gateway's own billing tables: tariff texts, issuing runs and the bills they issued.

Declared on `schema.metadata` like the rest of the store; created by the Alembic revision
`0003_bills`. What the chain says about tariffs and runs (hashes, valid-from times, anchored
roots) is in the read model (`chain_tariffs`, `chain_tariff_assignments`, `chain_bill_runs` in
`read_model_tables.py`); these tables hold what only the gateway keeps:

    tariff_texts  the exact bytes of each tariff file whose hash is (to be) published: the chain
                  holds only the hash, anyone rebuilds it from this text
    bill_runs     one row per issuing run: an 'intent' (root, period, bills) committed BEFORE its
                  BillRegistry.anchorBills transaction is sent, 'anchored' once it is mined; a
                  crash between the two is finished by the next `issue` (same run id, same root)
    bills         one row per bill: its canonical JSON bytes (hashed and anchored as they are),
                  its run and leaf position, and the correction links. At most one bill of a
                  customer is current for a period (`replaced_by IS NULL`, a unique partial
                  index): a second one must name the bill it replaces.

Times of the chain (period bounds) are Unix seconds in BIGINT; money in minor units, BIGINT
(signed: a credit note is negative).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    text,
)

from ledger.store.schema import metadata

tariff_texts = Table(
    "tariff_texts",
    metadata,
    Column("tariff_hash", LargeBinary, primary_key=True),  # keccak256(text)
    Column("text", LargeBinary, nullable=False),  # the file's exact bytes
    Column("name", Text, nullable=False),
    Column("added_at", Text, nullable=False),
)
bill_runs = Table(
    "bill_runs",
    metadata,
    Column("run_id", BigInteger, primary_key=True, autoincrement=False),
    Column("period_start", BigInteger, nullable=False),
    Column("period_end", BigInteger, nullable=False),
    Column("period_label", Text),  # "2026-11" for a calendar month, NULL for another range
    Column("root", LargeBinary, nullable=False),
    Column("bill_count", Integer, nullable=False),
    Column("first_reading_batch", BigInteger, nullable=False),
    Column("last_reading_batch", BigInteger, nullable=False),
    Column("status", Text, nullable=False),  # 'intent' | 'anchored'
    Column("tx_hash", LargeBinary),
    Column("block_number", BigInteger),
    Column("created_at", Text, nullable=False),
    Column("anchored_at", Text),
)
bills = Table(
    "bills",
    metadata,
    Column("bill_hash", LargeBinary, primary_key=True),  # keccak256(document)
    Column("run_id", BigInteger, nullable=False),
    Column("leaf_index", Integer, nullable=False),  # position of its leaf in the run's tree
    Column("customer", String(42), nullable=False),  # EIP-55
    Column("period_start", BigInteger, nullable=False),
    Column("period_end", BigInteger, nullable=False),
    Column("document", LargeBinary, nullable=False),  # canonical JSON, exactly as hashed
    Column("total_minor", BigInteger, nullable=False),
    Column("estimated", Integer, nullable=False),  # 1: some line is estimated
    Column("replaces", LargeBinary),  # the bill this one corrects
    Column("replaced_by", LargeBinary),  # the correction that replaced this one
    Column("created_at", Text, nullable=False),
    Index(None, "customer", "period_start"),
    Index(None, "run_id", "leaf_index"),
)
Index(
    "bills_current",
    bills.c.customer,
    bills.c.period_start,
    bills.c.period_end,
    unique=True,
    sqlite_where=text("replaced_by IS NULL"),
    postgresql_where=text("replaced_by IS NULL"),
)

BILL_TABLES = (tariff_texts, bill_runs, bills)
