"""The store stage: the durable database (SQLite in WAL mode, or PostgreSQL by URL), its schema
and the anchoring lease.

Everything acknowledged lives here. May import only the top-level modules (`errors`, `settings`,
`redaction`): every other stage writes and reads through this package.
"""
