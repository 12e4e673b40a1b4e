"""A simulated month of complaints (ledger/sim/complaints.py): the statistics the gateway gives
auditors are recomputed here from the chain's events alone.

The recomputation shares nothing with the ledger's code beyond web3's log decoding: its own
rounds, its own nearest-rank median and 90th percentile, its own targets (the defaults of
docs/complaints.md) and its own negative list, compared field by field with the auditors'
route. The month has complaints answered on time, late and never.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_utils.crypto import keccak
from web3.logs import DISCARD

from ledger.audit.complaints import audit_complaints
from ledger.audit.report import AuditReport
from ledger.cli import main
from ledger.complaints.model import read_chain_events
from ledger.complaints.sla import ServiceLevels
from ledger.complaints.stats import monthly_statistics
from ledger.node import LedgerNode
from ledger.settings import DEV_OPERATOR_KEY
from ledger.sim.complaints import simulated_complaints
from tests.fixtures.chain import dev_account
from tests.fixtures.sign_in import bearer, sign_in

MONTH = "2026-09"
SEPTEMBER = (1_788_220_800, 1_790_812_800)  # [2026-09-01, 2026-10-01) UTC
TARGETS = {"responded": 1800, "assigned": 7200, "planned": 28_800}
STEPS = ("responded", "assigned", "planned", "resolved")
EVENTS = {
    "ComplaintOpened": "opened",
    "ComplaintResponded": "responded",
    "ComplaintAssigned": "assigned",
    "ComplaintPlanned": "planned",
    "ComplaintResolved": "resolved",
    "ComplaintRated": "rated",
    "ComplaintReopened": "reopened",
}


class Month:
    def __init__(self, summary: dict[str, Any], url: str, node: LedgerNode) -> None:
        self.summary = summary
        self.url = url
        self.node = node


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Month]:
    data_dir = tmp_path_factory.mktemp("complaints-month") / "data"
    with simulated_complaints(data_dir, month=MONTH, complaints=15, customers=4, seed=3) as (
        summary,
        url,
        node,
    ):
        yield Month(summary, url, node)


@pytest.fixture(scope="module")
def audited(month: Month) -> dict[str, Any]:
    """The auditors' route, called by an auditor signed in."""
    registry = month.node.deployment.meter_registry
    month.node.chain.transact(
        registry.functions.grantRole(keccak(text="AUDITOR_ROLE"), dev_account(3).address)
    )
    with httpx.Client(base_url=month.url, timeout=60) as http:
        headers = bearer(sign_in(http, dev_account(3)))
        response = http.get(f"/v1/complaints/statistics?month={MONTH}", headers=headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def chain_events(node: LedgerNode) -> list[tuple[str, dict[str, Any]]]:
    """Every ComplaintRegistry event on the chain, decoded from eth_getLogs, in chain order."""
    registry = node.deployment.complaint_registry
    logs = node.chain.w3.eth.get_logs(
        {"address": registry.address, "fromBlock": 0, "toBlock": "latest"}
    )
    decoded = []
    for log in sorted(logs, key=lambda entry: (entry["blockNumber"], entry["logIndex"])):
        for name, step in EVENTS.items():
            found = registry.events[name]().process_receipt({"logs": [log]}, errors=DISCARD)
            if found:
                decoded.append((step, dict(found[0]["args"])))
    return decoded


def rank(values: list[int], percent: int) -> int | None:
    """Nearest rank: the smallest value with at least `percent`% of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * percent / 100)) - 1]


def recompute(events: list[tuple[str, dict[str, Any]]], as_of: int) -> dict[str, Any]:
    starts: dict[tuple[int, int], int] = {}
    kinds: dict[int, int] = {}
    taken: dict[tuple[int, int, str], int] = {}
    for step, args in events:
        if args["at"] > as_of:
            continue
        complaint = int(args["complaintId"])
        if step == "opened":
            starts[(complaint, 1)] = args["at"]
            kinds[complaint] = args["kind"]
        elif step == "reopened":
            starts[(complaint, args["round"])] = args["at"]
        elif step in STEPS:
            taken[(complaint, args["round"], step)] = args["at"]
    in_month = {key: start for key, start in starts.items() if SEPTEMBER[0] <= start < SEPTEMBER[1]}
    durations: dict[str, list[int]] = {step: [] for step in STEPS}
    due = dict.fromkeys(STEPS, 0)
    met = dict.fromkeys(STEPS, 0)
    breaches = []
    for (complaint, round_), start in sorted(in_month.items()):
        for step in STEPS:
            at = taken.get((complaint, round_, step))
            if at is not None:
                durations[step].append(at - start)
            target = TARGETS.get(step)
            if target is None:
                continue
            if at is not None and at - start <= target:
                due[step] += 1
                met[step] += 1
            elif at is not None or as_of > start + target:
                due[step] += 1
                late = (at - start - target) if at is not None else as_of - (start + target)
                breaches.append(
                    {
                        "complaint_id": complaint,
                        "round": round_,
                        "step": step,
                        "subject_kind": ("bill_line", "reading", "trade", "outage", "other")[
                            kinds[complaint]
                        ],
                        "target_s": target,
                        "due_at": start + target,
                        "answered": at is not None,
                        "delay_s": late,
                    }
                )
    return {
        "count": sum(1 for (_, round_) in in_month if round_ == 1),
        "reopened": sum(1 for (_, round_) in in_month if round_ > 1),
        "steps": [
            {
                "step": step,
                "taken": len(durations[step]),
                "median_s": rank(durations[step], 50),
                "p90_s": rank(durations[step], 90),
                "target_s": TARGETS.get(step),
                "due": due[step] if step in TARGETS else None,
                "met": met[step] if step in TARGETS else None,
                "share_met_bp": (
                    met[step] * 10_000 // due[step] if step in TARGETS and due[step] else None
                ),
            }
            for step in STEPS
        ],
        "breaches": breaches,
    }


def test_the_auditors_statistics_match_a_recomputation_from_the_chains_events(
    month: Month, audited: dict[str, Any]
) -> None:
    recomputed = recompute(chain_events(month.node), audited["as_of"])

    assert {k: audited[k] for k in ("count", "reopened", "steps")} == {
        k: recomputed[k] for k in ("count", "reopened", "steps")
    }
    assert audited["breaches"] == recomputed["breaches"]


def test_the_statistics_are_taken_as_of_the_latest_block(
    month: Month, audited: dict[str, Any]
) -> None:
    latest = month.node.chain.w3.eth.get_block("latest")
    assert audited["as_of"] == int(latest["timestamp"])


def test_the_month_has_complaints_answered_on_time_late_and_never(
    audited: dict[str, Any],
) -> None:
    answered_late = [b for b in audited["breaches"] if b["answered"]]
    never_answered = [b for b in audited["breaches"] if not b["answered"]]
    responded = audited["steps"][0]

    assert answered_late and never_answered
    assert 0 < responded["met"] < responded["due"]
    assert audited["count"] == 15


def test_the_stats_function_on_events_read_from_the_chain_gives_the_auditors_statistics(
    month: Month, audited: dict[str, Any]
) -> None:
    registry = month.node.deployment.complaint_registry
    events = read_chain_events(month.node.chain.w3, registry, range_blocks=50)

    found = monthly_statistics(events, month=MONTH, as_of=audited["as_of"], levels=ServiceLevels())

    assert json.loads(json.dumps(asdict(found))) == audited


def test_ledger_complaints_stats_prints_what_the_auditors_route_answers(
    month: Month,
    audited: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LEDGER_RPC_URL", month.node.chain.rpc_url)
    monkeypatch.setenv("LEDGER_DATA_DIR", str(Path(month.node.settings.data_dir)))
    monkeypatch.setenv("LEDGER_OPERATOR_KEY", DEV_OPERATOR_KEY)

    assert main(["complaints", "stats", "--month", MONTH]) == 0

    assert json.loads(capsys.readouterr().out) == audited


def _audit(month: Month, session: dict[str, Any]) -> AuditReport:
    """The audit's complaint check of the month: the chain's events against the gateway."""
    report = AuditReport(month.node.chain.chain_id, {})
    w3 = month.node.chain.w3
    report.complaint_statistics = audit_complaints(
        w3,
        month.node.deployment.complaint_registry,
        report,
        levels=ServiceLevels(),
        head_block=int(w3.eth.block_number),
        gateway=month.url,
        token=session["token"],
    )
    return report


@pytest.fixture(scope="module")
def auditor_session(month: Month, audited: dict[str, Any]) -> dict[str, Any]:
    """An auditor's session (the `audited` fixture granted the role)."""
    with httpx.Client(base_url=month.url, timeout=60) as http:
        return sign_in(http, dev_account(3))


def test_the_audit_recomputes_the_months_statistics_from_the_chain_and_agrees_with_the_gateway(
    month: Month, audited: dict[str, Any], auditor_session: dict[str, Any]
) -> None:
    report = _audit(month, auditor_session)

    assert report.discrepancies == []
    assert report.complaint_statistics == {MONTH: audited}
    assert report.counts["complaint months"] == 1


def test_a_late_response_backdated_in_the_gateways_database_is_named_by_the_audit(
    month: Month, audited: dict[str, Any], auditor_session: dict[str, Any]
) -> None:
    late = next(b for b in audited["breaches"] if b["answered"] and b["step"] == "responded")
    key = (late["complaint_id"], late["round"])
    with month.node.store.read() as db:
        (at,) = db.execute(
            "SELECT at FROM chain_complaint_steps WHERE complaint_id = ? AND round = ? "
            "AND step = 'responded'",
            key,
        ).fetchone()
    backdated = late["due_at"] - 60  # the operator's record says: answered within the target
    try:
        with month.node.store.write() as db:
            db.execute(
                "UPDATE chain_complaint_steps SET at = ? WHERE complaint_id = ? AND round = ? "
                "AND step = 'responded'",
                (backdated, *key),
            )
        report = _audit(month, auditor_session)
    finally:
        with month.node.store.write() as db:
            db.execute(
                "UPDATE chain_complaint_steps SET at = ? WHERE complaint_id = ? AND round = ? "
                "AND step = 'responded'",
                (at, *key),
            )

    named = {(d.code, d.record["month"], d.record["field"]) for d in report.discrepancies}
    assert ("complaint_statistics_mismatch", MONTH, "breaches") in named
    assert ("complaint_statistics_mismatch", MONTH, "steps") in named
    assert not report.ok
    # The chain's own statistics still hold the late answer.
    assert late in report.complaint_statistics[MONTH]["breaches"]
