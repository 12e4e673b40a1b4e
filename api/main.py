"""The gateway application: `create_app(node)` wires routes and error handling to a LedgerNode."""

from __future__ import annotations

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.routes import health, meters, readings
from ledger.node import LedgerNode


def create_app(node: LedgerNode) -> FastAPI:
    """Builds the FastAPI app around a started LedgerNode (the caller owns its lifetime)."""
    app = FastAPI(
        title="Energy ledger gateway",
        version="0.1.0",
        description="Signed meter readings anchored on an EVM chain; meter identities; health.",
    )
    app.state.node = node
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(meters.router)
    app.include_router(readings.router)
    return app
