"""A bundle file audited with worker processes is read by the workers a range of whole lines at
a time (`check_range`); the audit must answer exactly as when it reads the same file line by line
in one process: the same report, or the same error naming the same line."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ledger.audit.auditor as auditor_module
from ledger.anchoring.bundle import MAX_LINE_BYTES, BundleError
from ledger.audit.auditor import AuditOptions, Auditor, run_audit
from ledger.audit.chain import ChainFacts
from ledger.audit.signatures import check_range, init_worker
from tests.unit.audit.test_auditor import SELLER, Ledger, reading


def _outcome(path: Path, facts: ChainFacts, jobs: int) -> tuple[str, Any]:
    options = AuditOptions(rpc_url="", deployment=Path(), bundle=path, jobs=jobs)
    try:
        report = run_audit(options, facts=facts)
    except BundleError as error:
        return type(error).__name__, str(error)
    return "report", (report.as_dict()["discrepancies"], dict(report.counts))


@pytest.fixture
def ranges_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the file's reads a range at a time (the path under test), with ranges of a few
    lines each, so that lines fall on every side of a range's ends."""
    calls: list[int] = []
    original = Auditor._ranges

    def counted(self: Auditor, stream: Any) -> Any:
        calls.append(1)
        return original(self, stream)

    monkeypatch.setattr(Auditor, "_ranges", counted)
    monkeypatch.setattr(auditor_module, "RANGE_BYTES", 2_500)
    return calls


@pytest.fixture
def made() -> Ledger:
    made = Ledger()
    made.batch([reading(SELLER, s, 10 * s) for s in range(6)])
    made.batch([reading(SELLER, s, 10 * s) for s in range(6, 9)] + [reading(SELLER, 3, 999)])
    return made


EDITS: dict[str, Callable[[list[bytes]], bytes]] = {
    "as exported": lambda lines: b"".join(lines),
    "the last line without its newline": lambda lines: b"".join(lines)[:-1],
    "blank lines after the trailer": lambda lines: b"".join(lines) + b"\n  \n",
    "a line after the trailer": lambda lines: b"".join(lines) + b'{"type":"x"}\n',
    "a blank line among the readings": lambda lines: b"".join(lines[:4] + [b"\n"] + lines[4:]),
    "no trailer": lambda lines: b"".join(lines[:-1]),
    "no trailer, the last reading without its newline": lambda lines: b"".join(lines[:-1])[:-1],
    "lines ending in CR LF": lambda lines: b"".join(x[:-1] + b"\r\n" for x in lines),
    "a reading line of exactly the longest length with its newline": lambda lines: b"".join(
        lines[:3]
        + [lines[3][:-2] + b" " * (MAX_LINE_BYTES - len(lines[3]) + 1) + b"}\n"]
        + lines[4:]
    ),  # fmt: skip
    "a reading line one byte under the longest": lambda lines: b"".join(
        lines[:3] + [lines[3][:-2] + b" " * (MAX_LINE_BYTES - len(lines[3])) + b"}\n"] + lines[4:]
    ),
    "a reading line longer than the longest, its newline beyond it": lambda lines: b"".join(
        lines[:2] + [lines[2][:-2] + b" " * MAX_LINE_BYTES + b"}\n"] + lines[3:]
    ),
    "a batch line longer than the longest, its newline beyond it": lambda lines: b"".join(
        lines[:1] + [lines[1][:-2] + b" " * MAX_LINE_BYTES + b"}\n"] + lines[2:]
    ),
    "a stated register other than the signed one": lambda lines: b"".join(
        lines[:3] + [lines[3].replace(b'"import_wh":10,', b'"import_wh":11,')] + lines[4:]
    ),
}


@pytest.mark.parametrize("edit", EDITS)
def test_workers_reading_ranges_answer_as_one_process_reading_lines(
    made: Ledger, tmp_path: Path, ranges_read: list[int], edit: str
) -> None:
    path = tmp_path / "bundle.jsonl"
    path.write_bytes(EDITS[edit](made.lines()))

    one_process = _outcome(path, made.facts(), jobs=1)
    assert ranges_read == []
    workers = _outcome(path, made.facts(), jobs=2)

    assert ranges_read == [1]
    assert workers == one_process


def test_the_cases_above_reach_every_outcome(made: Ledger, tmp_path: Path) -> None:
    """The cases compared above are not all alike: sound, named discrepancies, and each kind of
    refusal."""
    outcomes: set[object] = set()
    for number, edit in enumerate(EDITS.values()):
        path = tmp_path / f"b{number}.jsonl"
        path.write_bytes(edit(made.lines()))
        kind, value = _outcome(path, made.facts(), jobs=1)
        outcomes.add(kind if kind != "report" else tuple(sorted(d["code"] for d in value[0])))
    assert outcomes == {
        ("bills_not_checked", "reading_conflict"),  # the second reading under seller seq 3
        ("bills_not_checked", "reading_conflict", "reading_fields_mismatch"),
        "BundleMalformed",
        "BundleTruncated",
    }


def test_a_compressed_bundle_file_is_read_line_by_line_with_workers_too(
    made: Ledger, tmp_path: Path, ranges_read: list[int]
) -> None:
    plain, packed = tmp_path / "bundle.jsonl", tmp_path / "bundle.jsonl.gz"
    plain.write_bytes(b"".join(made.lines()))
    packed.write_bytes(gzip.compress(plain.read_bytes()))

    assert _outcome(packed, made.facts(), jobs=2) == _outcome(plain, made.facts(), jobs=1)
    assert ranges_read == []


def test_a_range_gives_its_lines_numbered_and_its_reading_runs_checked(
    made: Ledger, tmp_path: Path
) -> None:
    lines = made.lines()
    init_worker(made.facts().chain_id, made.facts().meters)
    path = tmp_path / "bundle.jsonl"
    path.write_bytes(b"".join(lines) + b"tail without newline")

    # From the first batch line (line 2) to the end of the file.
    segments = check_range(str(path), len(lines[0]), path.stat().st_size, 2)

    others = [s for s in segments if isinstance(s, tuple)]
    runs = [s for s in segments if isinstance(s, list)]
    assert others == [(2, lines[1]), (9, lines[8]), (14, lines[13]), (15, b"tail without newline")]
    assert [[checked[0] for checked in run] for run in runs] == [
        list(range(3, 9)),
        list(range(10, 14)),
    ]
