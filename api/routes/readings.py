"""Readings: submit signed native readings (anyone may relay them: the meter's signature is what
proves them); read a stored one back (its owner, the auditors and the operator only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Request, Response

from api.access import private, require_meter_reader, roles
from api.deps import CallerDep, NodeDep
from api.routes.meters import MeterIdPath
from api.schemas.errors import ErrorPublic
from api.schemas.readings import (
    OcmfReadingIn,
    ReadingBatchIn,
    ReadingIn,
    ReadingResultsPublic,
    ReadingsRequestIn,
    StoredReadingPublic,
    readings_answer,
)
from ledger.meters.registry import meter_id_bytes
from ledger.readings.ingest import BatchTooLarge, ReadingNotFound
from ledger.readings.results import OcmfSubmission, Submission

router = APIRouter(tags=["readings"])


async def refuse_oversized_batch(request: Request, node: NodeDep) -> None:
    """Refuses a batch of more than max_batch readings before any of them is validated.

    FastAPI parses the JSON body, then runs the route's dependencies, then validates the body
    against the schema: validating 100,000 small items costs seconds and the errors of each
    would fill the answer. Counting them here costs nothing (the parsed body is cached on the
    request). A body that is not JSON is left to the validation's own error.
    """
    try:
        parsed = await request.json()
    except (ValueError, RecursionError):
        return
    readings = parsed.get("readings") if isinstance(parsed, dict) else None
    if isinstance(readings, list) and len(readings) > node.ingestor.max_batch:
        raise BatchTooLarge(len(readings), node.ingestor.max_batch)


@router.post(
    "/v1/readings",
    status_code=202,
    response_model=ReadingResultsPublic,
    responses={
        413: {
            "model": ErrorPublic,
            "description": "more readings than LEDGER_MAX_BATCH (batch_too_large), or a body "
            "over LEDGER_MAX_BODY_BYTES (request_too_large)",
        },
        422: {"model": ErrorPublic, "description": "malformed JSON or fields"},
        429: {
            "model": ErrorPublic,
            "description": "this gateway process handles LEDGER_MAX_IN_FLIGHT_BATCHES batches "
            "already (`gateway_saturated`, with Retry-After); nothing was stored: send it again "
            "after Retry-After seconds",
        },
        503: {
            "model": ErrorPublic,
            "description": "chain unreachable (`chain_unavailable`), database unreachable "
            "(`store_unavailable`, with Retry-After), or more than LEDGER_MAX_PENDING_READINGS "
            "readings wait for anchoring (`anchoring_backlog`, with Retry-After); nothing was "
            "acknowledged: send it again",
        },
    },
    dependencies=[Depends(refuse_oversized_batch)],
    openapi_extra=roles("meter"),
)
def post_readings(body: Annotated[ReadingsRequestIn, Body()], node: NodeDep) -> Response:
    """Checks and stores one reading or a batch; one result per reading, in order.

    A reading is native (`meter_id`, `canonical`, `signature`) or an OCMF record (`meter_id`,
    `ocmf`: `OCMF|{payload}|{signature}`); a batch may mix both. Each result is `accepted` (with
    its receipt), `duplicate` (same meter, seq and canonical bytes as a stored reading: the
    original receipt) or `rejected` (with a stable `code`). Accepted readings are committed to
    the database before this answer is sent.
    """
    items = body.readings if isinstance(body, ReadingBatchIn) else [body]
    results = node.ingestor.submit([_submission(item) for item in items])
    # The JSON of ReadingResultsPublic (the response_model, which the OpenAPI document shows),
    # built without a model per reading; a Response is sent as it is, not validated again.
    return Response(readings_answer(results), status_code=202, media_type="application/json")


def _submission(item: ReadingIn | OcmfReadingIn) -> Submission | OcmfSubmission:
    if isinstance(item, OcmfReadingIn):
        return OcmfSubmission(item.meter_id, item.ocmf)
    return Submission(item.meter_id, item.canonical, item.signature)


@router.get(
    "/v1/meters/{meter_id}/readings/{seq}",
    response_model=StoredReadingPublic,
    tags=["meters"],
    responses={
        401: {"model": ErrorPublic, "description": "`sign_in_required`, `invalid_session`"},
        404: {
            "model": ErrorPublic,
            "description": "`reading_not_found`: no reading stored under (meter, seq), or the "
            "meter is not the signed-in customer's",
        },
        422: {"model": ErrorPublic, "description": "malformed meter id or seq"},
        503: {
            "model": ErrorPublic,
            "description": "database unreachable (`store_unavailable`, with Retry-After)",
        },
    },
    openapi_extra=private(),
)
def get_reading(
    meter_id: MeterIdPath,
    seq: Annotated[int, Path(ge=0, lt=2**64, description="the reading's seq")],
    node: NodeDep,
    caller: CallerDep,
) -> StoredReadingPublic:
    """A stored reading: its fields, the exact bytes and signature received, its receipt, and
    where it is anchored: batch id, leaf, Merkle proof, root and transaction (null until
    anchored). The proof verifies with `ReadingLedger.verifyReading(batch_id, leaf, proof)`.

    The proof is shown as soon as its batch is mined, with `confirmations` (blocks on top of the
    anchoring block) and `final`: true once the batch was seen `LEDGER_CONFIRMATIONS` deep on
    the canonical chain. Until then a reorganisation may drop the batch (the gateway then
    anchors it again and the proof may change).

    The meter's owner (signed in), an auditor or the operator only: anyone else gets the 404 of
    a reading that is not stored."""
    require_meter_reader(
        node,
        caller,
        meter_id_bytes(meter_id),
        not_found=ReadingNotFound(f"no reading of meter {meter_id!r} with seq {seq} is stored"),
    )
    stored = node.ingestor.reading(meter_id, seq)
    return StoredReadingPublic.of(stored, node.proofs.anchoring(stored))
