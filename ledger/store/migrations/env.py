"""Alembic's environment: runs the migrations on the connection `ledger.store.migrate` opened.

The runner holds that connection in a transaction under the migration lock (SQLite: the write
lock; PostgreSQL: an advisory lock), so Alembic neither opens a connection of its own nor commits:
a database is upgraded whole, or (PostgreSQL, SQLite) not at all.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from ledger.errors import ConfigError
from ledger.store.migrate import declared_metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise ConfigError(
        "the ledger's migrations run from ledger.store.migrate.upgrade (every Store opens it), "
        "not from the alembic command line"
    )
context.configure(
    connection=connection,
    target_metadata=declared_metadata(),
    # SQLite cannot ALTER most of a table: a migration that changes a column uses
    # `op.batch_alter_table`, which copies the table on SQLite and alters it on PostgreSQL.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
