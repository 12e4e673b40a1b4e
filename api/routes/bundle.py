"""Reading bundles for auditors: every stored reading of the selected anchored batches, as signed,
with its Merkle proof, streamed as JSON Lines (docs/bundle.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.access import roles
from api.deps import AuditorDep, NodeDep
from api.schemas.errors import ErrorPublic
from ledger.anchoring.bundle import (
    BundleSelection,
    InvalidBundleRange,
    bundle_lines,
    check_selection,
)

router = APIRouter(tags=["audit"])

MEDIA_TYPE = "application/jsonl"


@router.get(
    "/v1/bundle",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {MEDIA_TYPE: {}},
            "description": "the bundle, one JSON object per line: header, then per batch its "
            "line and its readings, then the trailer with the counts",
        },
        401: {"model": ErrorPublic, "description": "`sign_in_required`, `invalid_session`"},
        403: {"model": ErrorPublic, "description": "`auditor_required`: not an auditor"},
        404: {
            "model": ErrorPublic,
            "description": "`bundle_unknown_batches`: an id of the range names no batch",
        },
        409: {
            "model": ErrorPublic,
            "description": "`bundle_batches_not_anchored`: a batch of the range is not anchored",
        },
        422: {
            "model": ErrorPublic,
            "description": "`bundle_invalid_range`: neither or both of from/to and batches, "
            "from >= to, A > B, or a bound out of range",
        },
        503: {
            "model": ErrorPublic,
            "description": "database unreachable (`store_unavailable`, with Retry-After)",
        },
    },
    openapi_extra=roles("auditor", "operator"),
)
def get_bundle(
    node: NodeDep,
    _: AuditorDep,
    from_ts: Annotated[
        int | None, Query(alias="from", description="start of the time range (Unix s)")
    ] = None,
    to_ts: Annotated[
        int | None, Query(alias="to", description="end of the time range, exclusive (Unix s)")
    ] = None,
    batches: Annotated[
        str | None, Query(description="batch ids A-B (inclusive) or A, instead of from/to")
    ] = None,
) -> StreamingResponse:
    """The reading bundle of the anchored batches whose readings' times meet [from, to), or of
    the batches A-B (each must be anchored). Every batch is carried whole, each reading with the
    exact bytes (and OCMF record) its meter signed, its signature, key epoch, leaf index and
    Merkle proof, so an auditor rebuilds every root and checks every signature from the bundle
    and the chain alone. Streamed: the answer starts at once and the gateway holds one batch at
    a time, whatever the range. Auditors and the operator only."""
    selection = _selection(from_ts, to_ts, batches)
    # Before the first byte: once streaming, the status can no longer say what went wrong.
    check_selection(node.store, selection)
    return StreamingResponse(
        bundle_lines(node.store, selection),
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="reading-bundle.jsonl"'},
    )


def _selection(from_ts: int | None, to_ts: int | None, batches: str | None) -> BundleSelection:
    if batches is not None:
        if from_ts is not None or to_ts is not None:
            raise InvalidBundleRange("give either from and to, or batches, not both")
        return BundleSelection.parse_batches(batches)
    if from_ts is None or to_ts is None:
        raise InvalidBundleRange("give from and to (Unix seconds), or batches=A-B")
    return BundleSelection.time_range(from_ts, to_ts)
