"""A customer's consumption per interval and downloads of its meter's data (docs/usage.md).

All of it is the meter owner's, the auditors' and the operator's (api/access.py): any other
caller gets the 404 of an unknown meter, and an anonymous one 401 `sign_in_required`.
"""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api.access import Caller, private, require_customer_data, require_meter_reader
from api.deps import CallerDep, NodeDep
from api.errors import ApiError
from api.routes.meters import MeterIdPath
from api.schemas.errors import ErrorPublic
from api.schemas.readings import StoredReadingPublic
from api.schemas.usage import ConsumptionPagePublic, IntervalPublic, ReadingsExportPublic
from ledger.billing.compute import MeterReadings
from ledger.billing.evidence import BillNotFound
from ledger.billing.greenbutton import usage_feed
from ledger.billing.timeline import PeriodError
from ledger.billing.usage import (
    MAX_CONSUMPTION_PERIOD_S,
    MAX_EXPORT_PERIOD_S,
    GroupBy,
    Interval,
    check_period,
    consumption,
    interval_bounds,
    local_time,
)
from ledger.meters.registry import meter_id_bytes, meter_id_text
from ledger.node import LedgerNode
from ledger.store.usage import UsageStore

router = APIRouter(prefix="/v1/meters", tags=["usage"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "`sign_in_required`, `invalid_session`"},
    404: {
        "model": ErrorPublic,
        "description": "unknown meter, or another customer's (`meter_registry_unknown_meter`)",
    },
    422: {
        "model": ErrorPublic,
        "description": "`invalid_period` (empty, or an unknown group), `period_too_long`, "
        "`invalid_request`",
    },
}
_UNIX = {"ge": 0, "lt": 2**63}
PeriodFrom = Annotated[int, Query(description="first second of the period (Unix seconds)", **_UNIX)]
PeriodTo = Annotated[int, Query(description="the second after the period (Unix seconds)", **_UNIX)]
GroupByQuery = Annotated[
    GroupBy, Query(description="interval length: local hours, days, weeks (from Monday), months")
]


def _readable_meter(node: LedgerNode, caller: Caller, meter_id: str) -> bytes:
    raw = meter_id_bytes(meter_id)
    require_meter_reader(node, caller, raw)
    return raw


def _intervals(
    node: LedgerNode, meter: bytes, period_from: int, period_to: int, group_by: GroupBy
) -> list[Interval]:
    bounds = interval_bounds(period_from, period_to, group_by, node.settings.billing_time_zone)
    found = UsageStore(node.store).readings(meter, period_from, period_to)
    columns = MeterReadings(meter, found.seqs, found.timestamps, found.imports, found.exports, ())
    return consumption(columns, bounds)


def _public(interval: Interval, time_zone: str) -> IntervalPublic:
    return IntervalPublic(
        start=interval.start,
        end=interval.end,
        start_local=local_time(interval.start, time_zone),
        import_wh=interval.import_wh,
        export_wh=interval.export_wh,
        estimated=interval.estimated,
        estimated_import_wh=interval.estimated_import_wh,
        estimated_export_wh=interval.estimated_export_wh,
        estimate_rules=list(interval.estimate_rules),
    )


@router.get(
    "/{meter_id}/consumption",
    response_model=ConsumptionPagePublic,
    responses={
        **_ERRORS,
        404: {
            "model": ErrorPublic,
            "description": "unknown or another customer's meter, or `page_not_found`",
        },
    },
    openapi_extra=private(),
)
def get_consumption(
    request: Request,
    meter_id: MeterIdPath,
    period_from: PeriodFrom,
    period_to: PeriodTo,
    node: NodeDep,
    caller: CallerDep,
    group_by: GroupByQuery = "day",
    page: Annotated[int, Query(ge=1, le=2**31, description="page number, from 1")] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000, description="intervals per page")] = 100,
) -> ConsumptionPagePublic:
    """The meter's consumption per interval of `[period_from, period_to)`, cut at local hour,
    day, week or month starts of `LEDGER_BILLING_TIME_ZONE` (the first and last intervals may
    be partial), oldest first, in pages (`count`, `next`, `previous`, `results`).

    Wh come from the meter's stored readings by the bills' rules (docs/bills.md): estimated Wh
    are shown apart with the rule used. At most 367 days per request."""
    check_period(period_from, period_to, MAX_CONSUMPTION_PERIOD_S)
    meter = _readable_meter(node, caller, meter_id)
    intervals = _intervals(node, meter, period_from, period_to, group_by)
    pages = max(1, -(-len(intervals) // page_size))
    if page > pages:
        raise ApiError(404, code="page_not_found", message=f"page {page} of {pages}")
    first = (page - 1) * page_size
    time_zone = node.settings.billing_time_zone

    def link(number: int) -> str | None:
        if not 1 <= number <= pages or number == page:
            return None
        return str(request.url.include_query_params(page=number, page_size=page_size))

    return ConsumptionPagePublic(
        meter_id=meter_id_text(meter),
        group_by=group_by,
        time_zone=time_zone,
        period_from=period_from,
        period_to=period_to,
        count=len(intervals),
        next=link(page + 1),
        previous=link(page - 1),
        results=[_public(i, time_zone) for i in intervals[first : first + page_size]],
    )


@router.get(
    "/{meter_id}/export.json",
    response_model=ReadingsExportPublic,
    responses=_ERRORS,
    openapi_extra=private(),
)
def export_json(
    meter_id: MeterIdPath,
    period_from: PeriodFrom,
    period_to: PeriodTo,
    node: NodeDep,
    caller: CallerDep,
) -> ReadingsExportPublic:
    """Every stored reading of the meter dated in `[period_from, period_to)`, by seq, each as
    `GET /v1/meters/{meter_id}/readings/{seq}` shows it: the exact bytes and signature, the
    receipt, and the batch, Merkle proof and root once anchored (null while pending). At most
    93 days per request."""
    check_period(period_from, period_to, MAX_EXPORT_PERIOD_S)
    meter = _readable_meter(node, caller, meter_id)
    stored = UsageStore(node.store).readings_in(meter, period_from, period_to)
    return ReadingsExportPublic(
        meter_id=meter_id_text(meter),
        period_from=period_from,
        period_to=period_to,
        count=len(stored),
        readings=[
            StoredReadingPublic.of(r, proof)
            for r, proof in zip(stored, node.proofs.anchorings(stored), strict=True)
        ],
    )


CSV_COLUMNS = (
    "start",
    "end",
    "start_local",
    "import_wh",
    "export_wh",
    "estimated",
    "estimated_import_wh",
    "estimated_export_wh",
    "estimate_rules",
)


@router.get(
    "/{meter_id}/export.csv",
    response_class=Response,
    responses={
        **_ERRORS,
        200: {"content": {"text/csv": {}}, "description": "CSV, one row an interval"},
    },
    openapi_extra=private(),
)
def export_csv(
    meter_id: MeterIdPath,
    period_from: PeriodFrom,
    period_to: PeriodTo,
    node: NodeDep,
    caller: CallerDep,
    group_by: GroupByQuery = "hour",
) -> Response:
    """The meter's consumption per interval as CSV (a header row, then one row an interval,
    columns as in `/consumption`; `estimate_rules` joined by `;`). At most 93 days."""
    check_period(period_from, period_to, MAX_EXPORT_PERIOD_S)
    meter = _readable_meter(node, caller, meter_id)
    time_zone = node.settings.billing_time_zone
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for interval in _intervals(node, meter, period_from, period_to, group_by):
        row = _public(interval, time_zone)
        writer.writerow(
            [
                row.start,
                row.end,
                row.start_local,
                row.import_wh,
                row.export_wh,
                "true" if row.estimated else "false",
                row.estimated_import_wh,
                row.estimated_export_wh,
                ";".join(row.estimate_rules),
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{_file_name(meter)}.csv"'},
    )


@router.get(
    "/{meter_id}/export.xml",
    response_class=Response,
    responses={
        **_ERRORS,
        200: {
            "content": {"application/atom+xml": {}},
            "description": "Green Button (ESPI 3.3) usage feed",
        },
        404: {
            "model": ErrorPublic,
            "description": "unknown or another customer's meter; `bill_not_found` (or a bill "
            "of other meters)",
        },
    },
    openapi_extra=private(),
)
def export_green_button(
    meter_id: MeterIdPath,
    node: NodeDep,
    caller: CallerDep,
    period_from: Annotated[int | None, Query(**_UNIX)] = None,
    period_to: Annotated[int | None, Query(**_UNIX)] = None,
    bill: Annotated[
        str | None,
        Query(
            pattern=r"^0x[0-9a-fA-F]{64}$",
            description="a bill of this meter: its period, and a UsageSummary of it",
        ),
    ] = None,
) -> Response:
    """Green Button usage data (NAESB REQ.21 ESPI 3.3 Atom feed): the meter's hourly import and
    export Wh with estimate qualities, over `[period_from, period_to)` or, with `bill`, over the
    bill's period with a UsageSummary of the bill. At most 93 days."""
    meter = _readable_meter(node, caller, meter_id)
    document: dict[str, Any] | None = None
    bill_hash: bytes | None = None
    if bill is not None:
        bill_hash = bytes.fromhex(bill[2:])
        document = _bill_of_meter(node, caller, meter, bill_hash)
        period_from, period_to = document["period"]["start"], document["period"]["end"]
    if period_from is None or period_to is None:
        raise PeriodError("give period_from and period_to, or a bill")
    check_period(period_from, period_to, MAX_EXPORT_PERIOD_S)
    time_zone = node.settings.billing_time_zone
    name = meter_id_text(meter)
    body = usage_feed(
        meter_id=meter,
        meter_name=name,
        intervals=_intervals(node, meter, period_from, period_to, "hour"),
        time_zone=time_zone,
        generated_at=int(time.time()),
        base_url=f"{node.settings.public_url.rstrip('/')}/v1/meters/{name}/export.xml",
        bill=document,
        bill_hash=bill_hash,
    )
    return Response(
        body,
        media_type="application/atom+xml",
        headers={"Content-Disposition": f'attachment; filename="{_file_name(meter)}.xml"'},
    )


def _bill_of_meter(
    node: LedgerNode, caller: Caller, meter: bytes, bill_hash: bytes
) -> dict[str, Any]:
    """The bill's document, if the caller may read the bill and it covers the meter; otherwise
    the 404 of an unknown bill."""
    not_found = BillNotFound(f"no bill 0x{bill_hash.hex()}")
    found = node.billing.bills.bill(bill_hash)
    if found is None:
        raise not_found
    require_customer_data(caller, found.customer, not_found=not_found)
    document: dict[str, Any] = json.loads(found.document)
    if "0x" + meter.hex() not in document["meters"]:
        raise not_found
    return document


def _file_name(meter: bytes) -> str:
    """A file name for the meter's download: its serial where it is plain, else its hex."""
    name = meter_id_text(meter)
    return name if name.replace("-", "").replace("_", "").isalnum() else meter.hex()
