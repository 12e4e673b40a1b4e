"""The bills part of the audit: each bill recomputed and found in its anchored root (the checks of
`ledger verify-bill`, `ledger.billing.verify`), one current bill per customer and period, and
every anchored run's bills all there.

Bills come as verification packages (`energy-ledger/bill-evidence/v1`, docs/bills.md): from a
file (JSON Lines, one package a line, or a JSON array of them, or a directory of `*.json`
files), or from a gateway (`GET /v1/customers/{address}/bills` for every customer the chain's
`TariffAssigned` events name, then `GET /v1/bills/{hash}/evidence`, as an auditor).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from web3 import Web3

from ledger.audit.chain import AuditInputError, ChainFacts
from ledger.audit.report import AuditReport
from ledger.billing.verify import verify_bill_package
from ledger.chain.compiler import compile_contracts


def packages_from_file(path: Path) -> Iterator[dict[str, Any]]:
    """The verification packages of a bills file or directory (see the module docstring).

    Raises:
        AuditInputError: unreadable, or not JSON packages.
    """
    paths = sorted(path.glob("*.json")) if path.is_dir() else [path]
    for source in paths:
        try:
            text = source.read_text()
        except OSError as error:
            raise AuditInputError(f"bills file {source}: {error}") from None
        try:
            whole = json.loads(text)
            items = whole if isinstance(whole, list) else [whole]
        except ValueError:
            try:  # not one JSON value: JSON Lines, one package a line
                items = [json.loads(line) for line in text.splitlines() if line.strip()]
            except ValueError as error:
                raise AuditInputError(f"bills file {source}: not JSON: {error}") from None
        for item in items:
            if not isinstance(item, dict):
                raise AuditInputError(f"bills file {source}: an item is not a JSON object")
            yield item


MAX_ANSWER_BYTES = 256 << 20
"""The longest JSON answer the audit reads from a gateway. The largest are bills' evidence
packages, about 2 KB a reading with its proof (a few MB a meter-month); the gateway is not
trusted, so an endless answer is refused once this much is read, not read into memory whole."""


def get_json(url: str, token: str | None, *, limit: int = MAX_ANSWER_BYTES) -> Any:
    """A gateway's JSON answer to `GET url`, with the auditor's bearer token when given.

    Raises:
        AuditInputError: the gateway refuses, does not answer, answers more than `limit` bytes,
            or answers other than JSON.
    """
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - the user's URL
            body = answer.read(limit + 1)
            if len(body) > limit:
                raise AuditInputError(f"GET {url}: the answer is longer than {limit} bytes")
            return json.loads(body)
    except urllib.error.HTTPError as error:
        raise AuditInputError(f"GET {url}: HTTP {error.code} {error.read()[:300]!r}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise AuditInputError(f"GET {url}: {error}") from None


def packages_from_gateway(
    gateway: str, token: str | None, customers: Iterable[str]
) -> Iterator[dict[str, Any]]:
    """Every bill of every customer, as its verification package, from a gateway.

    Raises:
        AuditInputError: the gateway refuses or does not answer.
    """
    base = gateway.rstrip("/")
    for customer in customers:
        listing = get_json(f"{base}/v1/customers/{customer}/bills", token)
        for bill in listing.get("bills", []):
            yield get_json(f"{base}/v1/bills/{bill['bill_hash']}/evidence", token)


def audit_bills(
    packages: Iterable[dict[str, Any]],
    facts: ChainFacts,
    report: AuditReport,
    runs: Iterable[int],
    sound_leaf: Callable[[bytes, int], bytes | None] | None = None,
) -> None:
    """Verifies every package against the chain and adds what fails to `report`; each run of
    `runs` (the anchored bill runs in the audit's scope) must have all its bills given.
    `sound_leaf` gives the leaves of the readings the audit has already found soundly signed
    (`verify_bill_package`'s `verified_leaves`)."""
    assert isinstance(facts.w3, Web3)
    registry = facts.addresses["BillRegistry"]
    artifacts = compile_contracts()  # once, not once a package
    by_period: dict[tuple[str, int, int], list[tuple[str, str | None]]] = defaultdict(list)
    per_run: dict[int, set[str]] = defaultdict(set)
    for package in packages:
        report.counts["bills"] += 1
        verification = verify_bill_package(
            package,
            facts.w3,
            bill_registry=registry,
            artifacts=artifacts,
            verified_leaves=sound_leaf,
        )
        bill = package.get("bill") if isinstance(package.get("bill"), dict) else {}
        assert isinstance(bill, dict)
        bill_hash = str(package.get("bill_hash"))
        customer = str(bill.get("customer"))
        for check, finding in verification.failures:
            code = finding.code if finding.code.startswith("bill_") else f"bill_{finding.code}"
            # The bill is named by the hash it was given under; a hash the check recomputed
            # (of the bill as it is) is kept beside it.
            record = {
                ("recomputed_bill_hash" if name == "bill_hash" else name): value
                for name, value in finding.record.items()
            }
            report.add(
                code,
                f"{check}: {finding.message}",
                bill_hash=bill_hash,
                customer=customer,
                **record,
            )
        period = bill.get("period")
        if isinstance(period, dict):
            key = (customer, int(period.get("start", 0)), int(period.get("end", 0)))
            replaces = bill.get("replaces")
            by_period[key].append((bill_hash, replaces if isinstance(replaces, str) else None))
        anchor = package.get("anchor")
        if isinstance(anchor, dict) and isinstance(anchor.get("run_id"), int):
            per_run[anchor["run_id"]].add(bill_hash)
    for (customer, start, end), bills in sorted(by_period.items()):
        replaced = {replaces for _, replaces in bills if replaces is not None}
        current = sorted(bill_hash for bill_hash, _ in bills if bill_hash not in replaced)
        if len(current) > 1:
            report.add(
                "bill_duplicate",
                f"{len(current)} bills for one customer and period, none replacing the other",
                customer=customer,
                period_start=start,
                period_end=end,
                bill_hashes=current,
            )
    for run_id in sorted(runs):
        run = facts.bill_runs[run_id]
        found = len(per_run.get(run_id, ()))
        report.counts["bill_runs"] += 1
        if found < run.bill_count:
            report.add(
                "bills_missing_from_run",
                f"the run anchors {run.bill_count} bills; {found} of them were given",
                run_id=run_id,
            )
