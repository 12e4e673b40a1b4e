"""Complaints (docs/complaints.md).

A customer opens, lists and reads its own complaints, rates a resolution and reopens, each
step signed with EIP-712 and relayed by the gateway; another customer's complaint answers the
404 of a missing one. The operator reads the queue (soonest breach first) and records its
steps. Auditors (and the operator) read every complaint and the monthly statistics. Texts are
served only to these: the complaint's customer, the operator and auditors.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from api.access import Caller, roles
from api.deps import AuditorDep, CallerDep, CustomerDep, NodeDep, OperatorDep
from api.errors import ApiError
from api.schemas.complaints import (
    ComplaintListPublic,
    ComplaintOpenIn,
    ComplaintPublic,
    ComplaintRateIn,
    ComplaintReopenIn,
    ComplaintStepIn,
    ComplaintStepPublic,
    MonthlyStatisticsPublic,
    SigningContextPublic,
)
from api.schemas.errors import ErrorPublic
from ledger.complaints.service import ComplaintService, Signed

router = APIRouter(tags=["complaints"])

ComplaintIdPath = Annotated[int, Path(ge=1, lt=2**63, description="the complaint's id")]


def require_signed_in_customer(caller: CustomerDep) -> Caller:
    """Lets through a signed-in customer only: auditors read, they never act for a customer.

    Raises:
        ApiError: 403 `customer_required` for an auditor.
    """
    if caller.role != "customer" or caller.address is None:
        raise ApiError(403, code="customer_required", message="only a customer may do this")
    return caller


SignedInCustomerDep = Annotated[Caller, Depends(require_signed_in_customer)]

_CUSTOMER_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "`sign_in_required`, `invalid_session`"},
    403: {"model": ErrorPublic, "description": "`customer_required` (an auditor)"},
    404: {"model": ErrorPublic, "description": "`complaint_not_found` (or another's)"},
    409: {
        "model": ErrorPublic,
        "description": "`complaint_registry_step_out_of_order`, ...",
    },
    422: {
        "model": ErrorPublic,
        "description": "`complaint_invalid_signature`, `complaint_invalid_input`, "
        "`complaint_signer_not_signed_in`, `complaint_registry_signature_expired`, ...",
    },
    429: {"model": ErrorPublic, "description": "`relay_quota_exceeded` (Retry-After)"},
}


def _signed(caller: Caller, body: ComplaintOpenIn | ComplaintRateIn | ComplaintReopenIn) -> Signed:
    assert caller.address is not None
    if body.customer.lower() != caller.address.lower():
        raise ApiError(
            422,
            code="complaint_signer_not_signed_in",
            message=f"the step is signed for {body.customer}, not the signed-in {caller.address}",
        )
    return Signed(caller.address, body.deadline, bytes.fromhex(body.signature[2:]))


def _service(node: NodeDep) -> ComplaintService:
    return node.complaints


ServiceDep = Annotated[ComplaintService, Depends(_service)]


@router.get(
    "/v1/complaints/signing",
    response_model=SigningContextPublic,
    responses=_CUSTOMER_ERRORS,
    openapi_extra=roles("customer", "auditor"),
)
def signing_context(caller: CustomerDep, complaints: ServiceDep) -> dict[str, Any]:
    """The EIP-712 domain and the signed-in account's next nonce (docs/complaints.md)."""
    assert caller.address is not None
    return complaints.signing_context(caller.address)


@router.get(
    "/v1/complaints",
    response_model=ComplaintListPublic,
    responses={401: _CUSTOMER_ERRORS[401]},
    openapi_extra=roles("customer", "auditor", "operator"),
)
def list_complaints(caller: CallerDep, complaints: ServiceDep) -> dict[str, Any]:
    """A customer's own complaints; every complaint for auditors and the operator."""
    if caller.role in ("auditor", "operator"):
        return {"complaints": complaints.summaries()}
    if caller.role != "customer" or caller.address is None:
        raise ApiError(401, code="sign_in_required", message="sign in first")
    return {"complaints": complaints.summaries(customer=caller.address)}


@router.post(
    "/v1/complaints",
    response_model=ComplaintStepPublic,
    status_code=201,
    responses=_CUSTOMER_ERRORS,
    openapi_extra=roles("customer"),
)
def open_complaint(
    body: ComplaintOpenIn, caller: SignedInCustomerDep, complaints: ServiceDep
) -> dict[str, Any]:
    """Opens a complaint the customer signed; the text is kept here, its hash goes on chain."""
    return complaints.open(
        kind=body.subject_kind,
        subject_ref=body.subject_ref,
        text=body.text,
        signed=_signed(caller, body),
    )


@router.get(
    "/v1/complaints/queue",
    response_model=ComplaintListPublic,
    responses={401: _CUSTOMER_ERRORS[401]},
    openapi_extra=roles("operator"),
)
def queue(_: OperatorDep, complaints: ServiceDep) -> dict[str, Any]:
    """Operator: the complaints owing a step, soonest breach first (overdue at the top)."""
    return {"complaints": complaints.queue()}


@router.get(
    "/v1/complaints/statistics",
    response_model=MonthlyStatisticsPublic,
    responses={
        401: _CUSTOMER_ERRORS[401],
        403: {"model": ErrorPublic, "description": "`auditor_required`"},
        422: {"model": ErrorPublic, "description": "`complaint_invalid_month`"},
    },
    openapi_extra=roles("auditor", "operator"),
)
def statistics(
    month: Annotated[str, Query(description="YYYY-MM, a calendar month in UTC")],
    _: AuditorDep,
    complaints: ServiceDep,
) -> dict[str, Any]:
    """Auditors: the month's count, median and p90 of each step's time, share meeting target
    and the negative list (docs/complaints.md#monthly-statistics)."""
    return asdict(complaints.statistics(month))


@router.get(
    "/v1/complaints/{complaint_id}",
    response_model=ComplaintPublic,
    responses=_CUSTOMER_ERRORS,
    openapi_extra=roles("customer", "auditor", "operator"),
)
def get_complaint(
    complaint_id: ComplaintIdPath, caller: CallerDep, complaints: ServiceDep
) -> dict[str, Any]:
    """One complaint with its rounds, each step's time, target, and met, waiting or overdue."""
    if caller.role in ("auditor", "operator"):
        return complaints.detail(complaint_id)
    if caller.role != "customer" or caller.address is None:
        raise ApiError(401, code="sign_in_required", message="sign in first")
    return complaints.detail(complaint_id, customer=caller.address)


@router.post(
    "/v1/complaints/{complaint_id}/rate",
    response_model=ComplaintStepPublic,
    responses=_CUSTOMER_ERRORS,
    openapi_extra=roles("customer"),
)
def rate(
    complaint_id: ComplaintIdPath,
    body: ComplaintRateIn,
    caller: SignedInCustomerDep,
    complaints: ServiceDep,
) -> dict[str, Any]:
    """Rates the resolution (1-5), signed by the complaint's customer."""
    return complaints.rate(complaint_id, rating=body.rating, signed=_signed(caller, body))


@router.post(
    "/v1/complaints/{complaint_id}/reopen",
    response_model=ComplaintStepPublic,
    responses=_CUSTOMER_ERRORS,
    openapi_extra=roles("customer"),
)
def reopen(
    complaint_id: ComplaintIdPath,
    body: ComplaintReopenIn,
    caller: SignedInCustomerDep,
    complaints: ServiceDep,
) -> dict[str, Any]:
    """Reopens a resolved complaint (a new round), signed by its customer."""
    return complaints.reopen(complaint_id, text=body.text, signed=_signed(caller, body))


@router.post(
    "/v1/complaints/{complaint_id}/steps",
    response_model=ComplaintStepPublic,
    responses={
        401: _CUSTOMER_ERRORS[401],
        404: _CUSTOMER_ERRORS[404],
        409: _CUSTOMER_ERRORS[409],
        422: {"model": ErrorPublic, "description": "`complaint_invalid_input`, ..."},
    },
    openapi_extra=roles("operator"),
)
def record_step(
    complaint_id: ComplaintIdPath, body: ComplaintStepIn, _: OperatorDep, complaints: ServiceDep
) -> dict[str, Any]:
    """Operator: records a step; its time is the block's, never the request's."""
    complaints.detail(complaint_id)  # an unknown id: complaint_not_found before any call
    return complaints.step(complaint_id, step=body.step, text=body.text, handler=body.handler)
