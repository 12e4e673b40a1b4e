"""The audit's report: every discrepancy with a stable code and the record it concerns, counts of
what was checked, the JSON form (`energy-ledger/audit-report/v1`, docs/audit.md) and the
readable summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

REPORT_FORMAT = "energy-ledger/audit-report/v1"

ERROR = "error"
WARNING = "warning"
"""A finding that is listed but does not by itself fail the audit (a sequence gap: a meter may
have lost a reading before signing it; the operator cannot be blamed from the data alone)."""

MAX_PER_CODE_IN_SUMMARY = 5
"""The readable summary names this many discrepancies of each code; the JSON report all."""


@dataclass(frozen=True)
class Discrepancy:
    """One thing the published data and the chain disagree on.

    Attributes:
        code: Stable, machine-readable (docs/audit.md lists every one).
        message: What is wrong, for a person.
        record: The record concerned: some of `batch_id`, `leaf_index`, `meter_id` (0x-hex
            bytes32), `meter` (its text), `seq`, `trade_id`, `bill_hash`, `customer`, `run_id`.
        severity: `error` (fails the audit) or `warning` (listed only).
    """

    code: str
    message: str
    record: dict[str, Any] = field(default_factory=dict)
    severity: str = ERROR

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "record": self.record,
            "message": self.message,
        }


@dataclass
class AuditReport:
    """What one audit checked and found; `ok` when no discrepancy is an error."""

    chain_id: int
    scope: dict[str, Any]
    counts: Counter[str] = field(default_factory=Counter)
    discrepancies: list[Discrepancy] = field(default_factory=list)
    complaint_statistics: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each audited month's complaint statistics as the chain's events give them."""

    def add(self, code: str, message: str, *, severity: str = ERROR, **record: Any) -> None:
        self.discrepancies.append(Discrepancy(code, message, record, severity))

    @property
    def errors(self) -> list[Discrepancy]:
        return [d for d in self.discrepancies if d.severity == ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors

    def codes(self) -> set[str]:
        return {d.code for d in self.discrepancies}

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "ok": self.ok,
            "chain_id": self.chain_id,
            "scope": self.scope,
            "checked": dict(sorted(self.counts.items())),
            "errors": len(self.errors),
            "warnings": len(self.discrepancies) - len(self.errors),
            "discrepancies": [d.as_dict() for d in self.discrepancies],
            "complaint_statistics": self.complaint_statistics,
        }

    def summary(self) -> str:
        """The readable summary printed on stdout."""
        lines = [
            f"audit of chain {self.chain_id}: " + ("CLEAN" if self.ok else "DISCREPANCIES FOUND"),
            # "readings 954", not "954 readings": the counts' names are plural, and "1 batches"
            # read wrong.
            "checked: " + ", ".join(f"{what} {n:,}" for what, n in sorted(self.counts.items())),
        ]
        by_code: dict[str, list[Discrepancy]] = {}
        for discrepancy in self.discrepancies:
            by_code.setdefault(discrepancy.code, []).append(discrepancy)
        for code, found in sorted(by_code.items()):
            lines.append(f"{found[0].severity} {code}: {len(found)}")
            for item in found[:MAX_PER_CODE_IN_SUMMARY]:
                record = " ".join(f"{k}={v}" for k, v in item.record.items())
                lines.append(f"  [{record}] {item.message}" if record else f"  {item.message}")
            if len(found) > MAX_PER_CODE_IN_SUMMARY:
                lines.append(f"  ... and {len(found) - MAX_PER_CODE_IN_SUMMARY} more (JSON report)")
        return "\n".join(lines)
