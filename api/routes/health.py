"""Liveness and wiring: chain, contracts, database, anchoring."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.access import public
from api.deps import NodeDep
from api.schemas.errors import ErrorPublic
from api.schemas.health import HealthPublic

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=HealthPublic,
    openapi_extra=public(),
    responses={
        503: {
            "model": ErrorPublic,
            "description": "chain unreachable (`chain_unavailable`) or database unreachable "
            "(`store_unavailable`, with Retry-After)",
        }
    },
)
def healthz(node: NodeDep) -> dict[str, Any]:
    """Chain id, latest block, contract addresses, database status and the anchorer's state
    (pending readings, last anchored batch)."""
    return node.health()
