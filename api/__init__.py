"""The FastAPI gateway over the `ledger` package."""
