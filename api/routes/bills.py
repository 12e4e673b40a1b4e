"""Tariffs, issuing runs and bills.

Tariffs are public (a price list is published, and its hash is on chain): anyone may list them
and read a tariff's text. A customer's bills and tariff assignments are its own, the auditors'
and the operator's (api/access.py; any other caller gets the 404 of an unknown bill or
customer). Publishing and assigning a tariff and issuing a run are the operator's
(`LEDGER_OPERATOR_TOKEN`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from api.access import (
    Caller,
    private,
    public,
    require_customer_data,
    roles,
    sign_in_required,
)
from api.deps import CallerDep, NodeDep, OperatorDep
from api.errors import ApiError
from api.errors import account_address as _account
from api.schemas.bills import (
    BillEvidencePublic,
    BillListPublic,
    BillPublic,
    BillRunIn,
    BillRunPublic,
    TariffAssignedPublic,
    TariffAssignmentIn,
    TariffAssignmentListPublic,
    TariffAssignmentPublic,
    TariffIn,
    TariffListPublic,
    TariffPublic,
    TariffPublishedPublic,
)
from api.schemas.errors import ErrorPublic
from ledger.billing.evidence import BillNotFound, bill_evidence, bill_view
from ledger.billing.timeline import month_period
from ledger.node import LedgerNode
from ledger.store.bills import PublishedTariff, StoredBill

router = APIRouter(tags=["bills"])

HashPath = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="0x + 64 hex digits")]
AddressPath = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{40}$")]

_OPERATOR_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "no bearer token, or not the operator token"},
    403: {"model": ErrorPublic, "description": "`operator_api_disabled`"},
}


_PRIVATE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "`sign_in_required`, `invalid_session`"},
    404: {"model": ErrorPublic, "description": "another customer's: `customer_not_found`"},
}


def _readable_bill(node: LedgerNode, caller: Caller, bill_hash: str) -> StoredBill:
    """The bill, if the caller may read it; otherwise the same 404 as for no such bill."""
    if caller.role == "anonymous":  # before the lookup: the answer must not depend on it
        raise sign_in_required()
    found = node.billing.bills.bill(bytes.fromhex(bill_hash[2:]))
    not_found = BillNotFound(f"no bill {bill_hash.lower()}")
    if found is None:
        raise not_found
    require_customer_data(caller, found.customer, not_found=not_found)
    return found


def _tariff(found: PublishedTariff) -> TariffPublic:
    return TariffPublic(
        tariff_hash="0x" + found.tariff_hash.hex(),
        valid_from=found.valid_from,
        block_number=found.block_number,
        name=found.name,
        text=None if found.text is None else found.text.decode("utf-8"),
    )


# --- tariffs ------------------------------------------------------------------------------------


@router.get("/v1/tariffs", response_model=TariffListPublic, openapi_extra=public())
def list_tariffs(node: NodeDep) -> TariffListPublic:
    """Every tariff published on chain (public), with its text where this gateway holds it."""
    return TariffListPublic(tariffs=[_tariff(t) for t in node.billing.bills.published_tariffs()])


@router.get(
    "/v1/tariffs/{tariff_hash}",
    response_model=TariffPublic,
    responses={404: {"model": ErrorPublic, "description": "`unknown_tariff`"}},
    openapi_extra=public(),
)
def get_tariff(tariff_hash: HashPath, node: NodeDep) -> TariffPublic:
    """A published tariff and its file (public): keccak256 of `text` is `tariff_hash`."""
    found = node.billing.bills.published_tariff(bytes.fromhex(tariff_hash[2:]))
    if found is None:
        raise ApiError(404, code="unknown_tariff", message=f"no tariff {tariff_hash} on chain")
    return _tariff(found)


@router.post(
    "/v1/tariffs",
    response_model=TariffPublishedPublic,
    status_code=201,
    responses={
        **_OPERATOR_ERRORS,
        409: {"model": ErrorPublic, "description": "`bill_registry_tariff_already_published`"},
        422: {"model": ErrorPublic, "description": "`invalid_tariff` (names the field), ..."},
    },
    openapi_extra=roles("operator"),
)
def publish_tariff(body: TariffIn, node: NodeDep, _: OperatorDep) -> dict[str, Any]:
    """Operator: checks a tariff file, keeps its text and records its hash on chain."""
    return node.billing.publish_tariff(body.text.encode("utf-8"), body.valid_from)


@router.get(
    "/v1/customers/{address}/tariff-assignments",
    response_model=TariffAssignmentListPublic,
    responses=_PRIVATE_ERRORS,
    openapi_extra=private(),
)
def list_assignments(
    address: AddressPath, node: NodeDep, caller: CallerDep
) -> TariffAssignmentListPublic:
    """The customer's tariff assignments (the customer, the auditors and the operator)."""
    customer = _account(address)
    require_customer_data(caller, customer)
    return TariffAssignmentListPublic(
        customer=customer,
        assignments=[
            TariffAssignmentPublic(tariff_hash="0x" + digest.hex(), valid_from=valid_from)
            for valid_from, digest in node.billing.bills.assignments(customer)
        ],
    )


@router.post(
    "/v1/customers/{address}/tariff-assignments",
    response_model=TariffAssignedPublic,
    status_code=201,
    responses={
        **_OPERATOR_ERRORS,
        404: {"model": ErrorPublic, "description": "`unknown_tariff`"},
        409: {"model": ErrorPublic, "description": "refused by the BillRegistry's state"},
    },
    openapi_extra=roles("operator"),
)
def assign_tariff(
    address: AddressPath, body: TariffAssignmentIn, node: NodeDep, _: OperatorDep
) -> dict[str, Any]:
    """Operator: bills the customer with a published tariff from `valid_from` on."""
    return node.billing.assign_tariff(
        _account(address), bytes.fromhex(body.tariff_hash[2:]), body.valid_from
    )


# --- runs and bills -----------------------------------------------------------------------------


@router.post(
    "/v1/bills/runs",
    response_model=BillRunPublic,
    responses={
        **_OPERATOR_ERRORS,
        409: {"model": ErrorPublic, "description": "`bill_period_not_over`, ..."},
        422: {"model": ErrorPublic, "description": "`invalid_period`"},
    },
    openapi_extra=roles("operator"),
)
def issue_bills(body: BillRunIn, node: NodeDep, _: OperatorDep, response: Response) -> Any:
    """Operator: issues every customer's bill for the period and anchors their root (idempotent:
    a second run over the same data issues nothing). 201 when bills were issued, 200 when
    nothing was new."""
    label = body.period
    if label is not None and (body.period_start is not None or body.period_end is not None):
        raise ApiError(422, code="invalid_period", message="give period, or period_start+end")
    if label is not None:
        start, end = month_period(label, node.settings.billing_time_zone)
    elif body.period_start is not None and body.period_end is not None:
        start, end = body.period_start, body.period_end
    else:
        raise ApiError(422, code="invalid_period", message="give period, or period_start+end")
    result = node.billing.issue(start, end, label=label)
    response.status_code = 201 if result.run_id is not None else 200
    return result.as_dict()


@router.get(
    "/v1/customers/{address}/bills",
    response_model=BillListPublic,
    responses=_PRIVATE_ERRORS,
    openapi_extra=private(),
)
def list_bills(address: AddressPath, node: NodeDep, caller: CallerDep) -> BillListPublic:
    """The customer's bills, newest period first (corrected ones too, marked): the customer, the
    auditors and the operator."""
    customer = _account(address)
    require_customer_data(caller, customer)
    bills = node.billing.bills
    return BillListPublic(
        customer=customer,
        bills=[BillPublic.model_validate(bill_view(bills, b)) for b in bills.bills_of(customer)],
    )


@router.get(
    "/v1/bills/{bill_hash}",
    response_model=BillPublic,
    responses={
        **_PRIVATE_ERRORS,
        404: {"model": ErrorPublic, "description": "`bill_not_found` (or another's bill)"},
    },
    openapi_extra=private(),
)
def get_bill(bill_hash: HashPath, node: NodeDep, caller: CallerDep) -> BillPublic:
    """One bill with its document, anchor and proof: its customer, the auditors and the
    operator."""
    bills = node.billing.bills
    found = _readable_bill(node, caller, bill_hash)
    return BillPublic.model_validate(bill_view(bills, found))


@router.get(
    "/v1/bills/{bill_hash}/evidence",
    response_model=BillEvidencePublic,
    responses={
        **_PRIVATE_ERRORS,
        404: {"model": ErrorPublic, "description": "`bill_not_found` (or another's bill)"},
        409: {"model": ErrorPublic, "description": "`bill_anchor_pending`"},
    },
    openapi_extra=private(),
)
def get_bill_evidence(bill_hash: HashPath, node: NodeDep, caller: CallerDep) -> dict[str, Any]:
    """The bill's verification package, the input of `ledger verify-bill`: its customer, the
    auditors and the operator."""
    _readable_bill(node, caller, bill_hash)
    return bill_evidence(node.store, node.deployment, bytes.fromhex(bill_hash[2:]))
