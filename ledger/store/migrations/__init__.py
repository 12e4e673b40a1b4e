"""The Alembic migrations of the ledger's database (run by `ledger.store.migrate`, never by hand).

`env.py` runs them on the connection the runner hands it; `versions/` holds one file per revision,
each naming its `down_revision`, so a new file there is picked up without any other change.
"""
