"""The billing commands of `ledger` (`ledger.cli` adds them to its parser):

    ledger tariff publish FILE [--valid-from T]     check a tariff file, record its hash on chain
    ledger tariff show [HASH]                       the published tariffs, or one with its text
    ledger tariff assign CUSTOMER HASH [--valid-from T]
    ledger tariff assignments CUSTOMER
    ledger bills issue (--period YYYY-MM | --from T --to T)
    ledger bills list CUSTOMER
    ledger bills show HASH [--evidence] [--out FILE]
    ledger verify-bill BILL.json --rpc URL [--bill-registry ADDRESS]

Each prints JSON (the same as the gateway's routes answer) and exits non-zero with one line
`error [code]: ...` on a refusal.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from eth_utils.address import is_checksum_address, to_checksum_address

from ledger.billing.evidence import BillNotFound, bill_evidence, bill_view
from ledger.billing.timeline import month_period
from ledger.errors import LedgerError
from ledger.node import LedgerNode
from ledger.progress import track
from ledger.settings import Settings


class InvalidAddress(LedgerError):
    code = "invalid_address"
    http_status = 422


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _hash(text: str) -> bytes:
    body = text.removeprefix("0x")
    try:
        raw = bytes.fromhex(body)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise LedgerError(f"{text!r} is not 0x + 64 hex digits")
    return raw


def _account(text: str) -> str:
    body = text.removeprefix("0x")
    valid = len(body) == 40 and all(c in "0123456789abcdefABCDEF" for c in body)
    if not valid or (body not in (body.lower(), body.upper()) and not is_checksum_address(text)):
        raise InvalidAddress(f"{text!r} is not an account address (0x + 40 hex, EIP-55)")
    return to_checksum_address(text)


def _time(text: str | None) -> int | None:
    from ledger.cli import parse_time  # the one time parser of the command line

    return None if text is None else parse_time(text)


def _progress(customers: Iterable[str]) -> Iterable[str]:
    # On stderr, and only on a terminal: the JSON result on stdout stays clean for scripts.
    return track(list(customers), "bills", unit="customers")


def cmd_tariff(settings: Settings, args: argparse.Namespace) -> int:
    node = LedgerNode.start(settings)
    try:
        billing = node.billing
        if args.tariff_command == "publish":
            text = Path(args.file).read_bytes()
            _print(billing.publish_tariff(text, _time(args.valid_from)))
        elif args.tariff_command == "assign":
            _print(
                billing.assign_tariff(
                    _account(args.customer), _hash(args.tariff_hash), _time(args.valid_from)
                )
            )
        elif args.tariff_command == "assignments":
            customer = _account(args.customer)
            node.indexer.index_now()
            _print(
                {
                    "customer": customer,
                    "assignments": [
                        {"tariff_hash": "0x" + digest.hex(), "valid_from": valid_from}
                        for valid_from, digest in billing.bills.assignments(customer)
                    ],
                }
            )
        else:
            node.indexer.index_now()
            tariffs = billing.bills.published_tariffs()
            if args.tariff_hash:
                wanted = _hash(args.tariff_hash)
                tariffs = [t for t in tariffs if t.tariff_hash == wanted]
                if not tariffs:
                    raise LedgerError(f"no tariff {args.tariff_hash} is published on chain")
            _print(
                [
                    {
                        "tariff_hash": "0x" + t.tariff_hash.hex(),
                        "valid_from": t.valid_from,
                        "block_number": t.block_number,
                        "name": t.name,
                        **({"text": (t.text or b"").decode("utf-8")} if args.tariff_hash else {}),
                    }
                    for t in tariffs
                ]
            )
    finally:
        node.stop()
    return 0


def cmd_bills(settings: Settings, args: argparse.Namespace) -> int:
    node = LedgerNode.start(settings)
    try:
        billing = node.billing
        if args.bills_command == "issue":
            label = args.period
            if label is not None:
                start, end = month_period(label, settings.billing_time_zone)
            elif args.start is not None and args.end is not None:
                start, end = int(_time(args.start) or 0), int(_time(args.end) or 0)
            else:
                from ledger.billing.service import InvalidPeriod

                raise InvalidPeriod("give --period YYYY-MM, or --from and --to")
            result = billing.issue(start, end, label=label, progress=_progress)
            _print(result.as_dict())
        elif args.bills_command == "list":
            customer = _account(args.customer)
            _print(
                {
                    "customer": customer,
                    "bills": [
                        bill_view(billing.bills, b) for b in billing.bills.bills_of(customer)
                    ],
                }
            )
        else:
            digest = _hash(args.bill_hash)
            if args.evidence:
                shown = bill_evidence(node.store, node.deployment, digest)
            else:
                found = billing.bills.bill(digest)
                if found is None:
                    raise BillNotFound(f"no bill {args.bill_hash}")
                shown = bill_view(billing.bills, found)
            if args.out:
                Path(args.out).write_text(json.dumps(shown, indent=2) + "\n")
            else:
                _print(shown)
    finally:
        node.stop()
    return 0


def cmd_verify_bill(settings: Settings, args: argparse.Namespace) -> int:
    """Checks one bill with the chain and its package only: no node, database or deployment
    record (`settings` is unused). Prints the JSON report; one line per failure on stderr."""
    from ledger.billing.verify import load_package, verify_bill_package

    report = verify_bill_package(
        load_package(Path(args.package)), args.rpc, bill_registry=args.bill_registry
    )
    _print(report.as_dict())
    for check, finding in report.failures:
        record = " ".join(f"{k}={v}" for k, v in finding.record.items())
        print(f"FAILED {check} [{finding.code}] {record}: {finding.message}", file=sys.stderr)
    return 0 if report.ok else 1


def add_parsers(commands: Any) -> None:
    """Adds `tariff`, `bills` and `verify-bill` to the `ledger` command's subcommands."""
    tariff = commands.add_parser("tariff", help="tariffs on record: publish, show, assign")
    tariff_commands = tariff.add_subparsers(dest="tariff_command", required=True)
    publish = tariff_commands.add_parser("publish", help="check a tariff file, record its hash")
    publish.add_argument("file", help="the TOML tariff file (docs/bills.md)")
    publish.add_argument("--valid-from", help="Unix time or ISO 8601; default: in 60 s")
    show = tariff_commands.add_parser("show", help="published tariffs, or one with its text")
    show.add_argument("tariff_hash", nargs="?")
    assign = tariff_commands.add_parser("assign", help="bill a customer with a tariff from T on")
    assign.add_argument("customer", help="the customer's account (owner of their meters)")
    assign.add_argument("tariff_hash")
    assign.add_argument("--valid-from", help="Unix time or ISO 8601; default: in 60 s")
    listed = tariff_commands.add_parser("assignments", help="a customer's tariff assignments")
    listed.add_argument("customer")
    tariff.set_defaults(handler=cmd_tariff)

    bills = commands.add_parser("bills", help="issue bills, list and show them")
    bills_commands = bills.add_subparsers(dest="bills_command", required=True)
    issue = bills_commands.add_parser(
        "issue", help="issue every customer's bill for a period, anchor their root"
    )
    issue.add_argument("--period", help="YYYY-MM: that month in LEDGER_BILLING_TIME_ZONE")
    issue.add_argument("--from", dest="start", help="period start (Unix time or ISO 8601)")
    issue.add_argument("--to", dest="end", help="period end, excluded")
    bills_list = bills_commands.add_parser("list", help="a customer's bills")
    bills_list.add_argument("customer")
    bill_show = bills_commands.add_parser("show", help="one bill, or its verification package")
    bill_show.add_argument("bill_hash")
    bill_show.add_argument(
        "--evidence", action="store_true", help="the package `ledger verify-bill` checks"
    )
    bill_show.add_argument("--out", help="write it to this file instead of stdout")
    bills.set_defaults(handler=cmd_bills)

    verify = commands.add_parser(
        "verify-bill",
        help="check a bill's verification package against the chain alone (exit 1 on a failure)",
    )
    verify.add_argument("package", help="the package (`ledger bills show HASH --evidence`)")
    verify.add_argument("--rpc", required=True, help="a JSON-RPC endpoint of the bill's chain")
    verify.add_argument(
        "--bill-registry",
        help="the ledger's BillRegistry address as you know it; default: the package's",
    )
    # Needs nothing of this machine's ledger: no LEDGER_* setting is read.
    verify.set_defaults(handler=cmd_verify_bill, needs_settings=False)
