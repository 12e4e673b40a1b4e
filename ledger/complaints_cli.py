"""The complaint commands of `ledger` (`ledger.cli` adds them to its parser):

    ledger complaints queue                            the operator's queue, soonest breach first
    ledger complaints show ID                          one complaint with its rounds and clocks
    ledger complaints step ID STEP --text TEXT [--handler H]
                                                       the operator records respond, assign (with
                                                       a handler), plan or resolve
    ledger complaints stats --month YYYY-MM            an auditor's monthly statistics

They run as the operator, on the local ledger (the chain the running gateway uses, or one they
start), index the chain's complaint events first, and print JSON (the gateway's answers); a
refusal exits 1 with one line `error [code]: ...`.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from ledger.market.indexer import index_until_current
from ledger.node import LedgerNode
from ledger.settings import Settings


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def cmd_complaints(settings: Settings, args: argparse.Namespace) -> int:
    node = LedgerNode.start(settings)
    try:
        index_until_current(node.indexer)
        complaints = node.complaints
        if args.complaints_command == "queue":
            _print({"complaints": complaints.queue()})
        elif args.complaints_command == "show":
            _print(complaints.detail(args.complaint_id))
        elif args.complaints_command == "step":
            complaints.detail(args.complaint_id)  # an unknown id: complaint_not_found
            _print(
                complaints.step(
                    args.complaint_id, step=args.step, text=args.text, handler=args.handler
                )
            )
        else:
            _print(asdict(complaints.statistics(args.month)))
    finally:
        node.stop()
    return 0


def add_parser(commands: Any) -> None:
    """Adds `complaints` to the `ledger` command's subcommands."""
    parser = commands.add_parser(
        "complaints", help="complaints: the operator's queue and steps, monthly statistics"
    )
    sub = parser.add_subparsers(dest="complaints_command", required=True)
    sub.add_parser("queue", help="complaints owing a step, soonest breach first")
    show = sub.add_parser("show", help="one complaint with its rounds, steps and clocks")
    show.add_argument("complaint_id", type=int)
    step = sub.add_parser(
        "step", help="record an operator step (its time is the block's, never given)"
    )
    step.add_argument("complaint_id", type=int)
    step.add_argument("step", choices=("respond", "assign", "plan", "resolve"))
    step.add_argument("--text", required=True, help="the answer (kept off chain, hash on chain)")
    step.add_argument("--handler", help="assign only: the handler's id (1-32 bytes or 0x+64 hex)")
    stats = sub.add_parser("stats", help="a month's statistics and negative list (auditors)")
    stats.add_argument("--month", required=True, help="YYYY-MM, a calendar month in UTC")
    parser.set_defaults(handler=cmd_complaints)
