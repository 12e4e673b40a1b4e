"""The audit's readable summary: what was checked, and each discrepancy with its record."""

from __future__ import annotations

from ledger.audit.report import WARNING, AuditReport


def test_the_summary_counts_what_was_checked_and_names_each_record() -> None:
    report = AuditReport(1337, {})
    report.counts.update({"readings": 12_345, "batches": 1})
    report.add("reading_withheld", "leaf 3 is not in the bundle", batch_id=2, leaf_index=3)
    report.add("bills_not_checked", "no bills were given", severity=WARNING)

    assert report.summary().splitlines() == [
        "audit of chain 1337: DISCREPANCIES FOUND",
        "checked: batches 1, readings 12,345",
        "warning bills_not_checked: 1",
        "  no bills were given",
        "error reading_withheld: 1",
        "  [batch_id=2 leaf_index=3] leaf 3 is not in the bundle",
    ]


def test_a_report_with_warnings_only_is_clean() -> None:
    report = AuditReport(1337, {})
    report.add("sequence_gap", "no reading with seq 4..4", severity=WARNING, seq=4)

    assert report.ok
    assert report.summary().splitlines()[0] == "audit of chain 1337: CLEAN"
