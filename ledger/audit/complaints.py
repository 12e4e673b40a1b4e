"""Complaints in the audit: the monthly statistics recomputed from ComplaintRegistry's events alone
and compared with what the gateway reports (issue 14, item 5; docs/audit.md "Complaints").

The events come from `eth_getLogs` (`ledger.complaints.model.read_chain_events`), never from the
gateway's database; `ledger.complaints.stats.monthly_statistics` turns them into the statistics
the auditors' route serves. The targets are the auditor's own (`LEDGER_COMPLAINT_*` settings, the
30 min / 2 h / 8 h practice by default): a gateway that measured against laxer targets than the
auditor's disagrees, and that is reported. With `--gateway`, each month is compared with the
gateway's `GET /v1/complaints/statistics` at the gateway's own `as_of` (a block time), so both
sides look at the same events; without it, the statistics are only reported.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from dataclasses import asdict
from typing import Any

from web3 import Web3
from web3.contract import Contract

from ledger.audit.bills import get_json
from ledger.audit.chain import AuditInputError
from ledger.audit.report import AuditReport
from ledger.complaints.model import ComplaintEvent, read_chain_events
from ledger.complaints.sla import ServiceLevels
from ledger.complaints.stats import monthly_statistics

STATISTICS_MISMATCH = "complaint_statistics_mismatch"
STATISTICS_UNAVAILABLE = "complaint_statistics_unavailable"


def month_of(timestamp: int) -> str:
    """The calendar month (UTC) of a block time, `YYYY-MM`."""
    moment = time.gmtime(timestamp)
    return f"{moment.tm_year:04d}-{moment.tm_mon:02d}"


def audited_months(
    events: list[ComplaintEvent], from_ts: int | None, to_ts: int | None
) -> list[str]:
    """The months in which a round started (an opening or a reopening), within the audit's
    time range when one is given."""
    months = {
        month_of(event.at)
        for event in events
        if event.step in ("opened", "reopened")
        and (from_ts is None or event.at >= from_ts)
        and (to_ts is None or event.at < to_ts)
    }
    return sorted(months)


def _plain(value: Any) -> Any:
    """JSON's view of a value: tuples as lists, as the gateway's answer has them."""
    result: Any = json.loads(json.dumps(value))
    return result


def gateway_statistics(gateway: str, token: str | None, month: str) -> dict[str, Any]:
    """The gateway's `GET /v1/complaints/statistics?month=` answer (auditor or operator token).

    Raises:
        AuditInputError: the gateway does not answer, or refuses.
    """
    query = urllib.parse.urlencode({"month": month})
    answer: dict[str, Any] = get_json(
        gateway.rstrip("/") + "/v1/complaints/statistics?" + query, token
    )
    return answer


def audit_complaints(
    w3: Web3,
    registry: Contract,
    report: AuditReport,
    *,
    levels: ServiceLevels,
    head_block: int,
    from_ts: int | None = None,
    to_ts: int | None = None,
    gateway: str | None = None,
    token: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Each audited month's statistics from the chain's events (also returned, for the report),
    each compared with the gateway's when `gateway` is given; a difference is one
    `complaint_statistics_mismatch` per month and field. Without the gateway's `as_of` the
    statistics are taken at the time of `head_block`, the block the rest of the audit reads."""
    events = read_chain_events(w3, registry)
    report.counts["complaint events"] += len(events)
    recomputed: dict[str, dict[str, Any]] = {}
    head_time: int | None = None
    for month in audited_months(events, from_ts, to_ts):
        claimed: dict[str, Any] | None = None
        if gateway is not None:
            try:
                claimed = gateway_statistics(gateway, token, month)
                as_of = int(claimed["as_of"])
            except (AuditInputError, KeyError, TypeError, ValueError) as error:
                report.add(
                    STATISTICS_UNAVAILABLE,
                    f"the gateway's statistics of {month} could not be read: {error}",
                    month=month,
                )
                claimed = None
        if claimed is None:
            if head_time is None:
                head_time = int(w3.eth.get_block(head_block)["timestamp"])
            as_of = head_time
        ours = _plain(asdict(monthly_statistics(events, month=month, as_of=as_of, levels=levels)))
        recomputed[month] = ours
        report.counts["complaint months"] += 1
        if claimed is None:
            continue
        for name in sorted(set(ours) | set(claimed)):
            if ours.get(name) != claimed.get(name):
                report.add(
                    STATISTICS_MISMATCH,
                    f"the gateway reports {name} of {month} as {_short(claimed.get(name))}; "
                    f"the chain's events give {_short(ours.get(name))}",
                    month=month,
                    field=name,
                )
    return recomputed


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "..."
