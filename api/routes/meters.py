"""Meters: public read access to a meter's owner and key history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.deps import NodeDep
from api.schemas import ErrorPublic, KeyEpochPublic, MeterPublic

router = APIRouter(prefix="/v1/meters", tags=["meters"])

MeterIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=66,
        # Characters, not bytes: a multi-byte serial over 32 bytes is still refused by the
        # ledger with `invalid_meter`.
        pattern=r"^(0x[0-9a-fA-F]{64}|[^\x00-\x1f\x7f]{1,32})$",
        description="the meter serial (1-32 printable bytes) or 0x + 64 hex digits",
    ),
]
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "unknown meter, or no key at that time"},
    422: {"model": ErrorPublic, "description": "malformed meter id or parameter"},
}


@router.get("/{meter_id}", response_model=MeterPublic, responses=_ERRORS)
def get_meter(meter_id: MeterIdPath, node: NodeDep) -> dict[str, Any]:
    """The meter's owner and its full key history, as the MeterRegistry holds it."""
    return node.meters.show(meter_id).as_dict()


@router.get("/{meter_id}/key", response_model=KeyEpochPublic, responses=_ERRORS)
def get_meter_key_at(
    meter_id: MeterIdPath,
    node: NodeDep,
    at: Annotated[int, Query(ge=0, lt=2**64, description="Unix time (s)")],
) -> dict[str, Any]:
    """The key that was valid for the meter at time `at`."""
    return node.meters.key_at(meter_id, at).as_dict()
