"""The database schema as SQLAlchemy Core metadata: one definition for SQLite and PostgreSQL.

Every table of the ledger's database is declared on `metadata`; the Alembic migrations in
`ledger/store/migrations/` create and upgrade databases to match it, and a test compares the two.
Other modules declare their tables on this same object (the indexer's read model in
`ledger/store/read_model.py`).
"""

from __future__ import annotations

from sqlalchemy import MetaData

# Constraint names fixed by convention, so a migration can name what it alters on both backends.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
