"""`ledger audit`: the command around `ledger.audit.auditor.run_audit` (docs/audit.md).

Exit status: 0 when no discrepancy is an error, 1 when one is, 2 for a usage or input error (an
unreadable deployment record, bundle or bills file, a bundle not of the format, a chain that does
not answer or holds other contracts than the record names).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ledger.anchoring.bundle import BundleSelection
from ledger.audit.auditor import AuditOptions, Progress, run_audit
from ledger.audit.chain import AuditInputError
from ledger.complaints.sla import ServiceLevels, levels_from_settings
from ledger.errors import LedgerError
from ledger.progress import progress_bar
from ledger.settings import Settings

EXIT_CLEAN = 0
EXIT_DISCREPANCIES = 1
EXIT_INPUT_ERROR = 2


def _progress_bar(total: int) -> Progress:
    # On stderr, and only on a terminal: stdout carries the summary, the JSON goes to --json.
    bar = progress_bar("audit", total=total, unit="readings")

    def update(done: int) -> None:
        bar.advance(done)
        if bar.completed >= total:
            bar.close()

    return update


def options_from(args: argparse.Namespace, settings: Settings | None = None) -> AuditOptions:
    """The audit's options from the command line.

    Raises:
        LedgerError: a time or batch range that cannot be read.
    """
    from ledger.cli import parse_time  # the one time parser of the command line

    batches = None
    if args.batches is not None:
        selection = BundleSelection.parse_batches(args.batches)
        assert selection.first_batch is not None and selection.last_batch is not None
        batches = (selection.first_batch, selection.last_batch)
    return AuditOptions(
        rpc_url=args.rpc,
        deployment=Path(args.deployment),
        bundle=None if args.bundle is None else Path(args.bundle),
        gateway=args.gateway,
        token=args.token,
        bills=None if args.bills is None else Path(args.bills),
        from_ts=None if args.start is None else parse_time(args.start),
        to_ts=None if args.end is None else parse_time(args.end),
        batches=batches,
        jobs=args.jobs,
        complaint_levels=ServiceLevels() if settings is None else levels_from_settings(settings),
    )


def _prover_key(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text().strip()
    except OSError as error:
        raise AuditInputError(f"--prove-key-file {path}: {error}") from None


def cmd_watch(args: argparse.Namespace) -> int:
    """`--watch`: a pass every --poll seconds, its summary and proofs printed, until Ctrl-C."""
    from ledger.audit.watch import Watcher, WatchPass, describe

    def emit(done: WatchPass) -> None:
        if done.report is None:
            return
        print(f"batches {done.first_batch}-{done.last_batch}: " + done.report.summary())
        for attempt in done.proofs:
            print(describe(attempt))
        sys.stdout.flush()

    try:
        options = options_from(args)
        first = options.batches[0] if options.batches is not None else 1
        watcher = Watcher(options, prover_key=_prover_key(args.prove_key_file), first_batch=first)
        watcher.follow(args.poll, emit)
    except LedgerError as error:
        print(f"error [{error.code}]: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        return EXIT_CLEAN
    return EXIT_CLEAN


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    if args.watch:
        return cmd_watch(args)
    try:
        options = options_from(args, settings)
        report = run_audit(options, progress=_progress_bar)
    except LedgerError as error:
        print(f"error [{error.code}]: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    if args.json is not None:
        text = json.dumps(report.as_dict(), indent=1) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            Path(args.json).write_text(text)
    print(report.summary())
    return EXIT_CLEAN if report.ok else EXIT_DISCREPANCIES


def add_parser(commands: Any) -> None:
    """Adds `audit` to the `ledger` command's subcommands."""
    audit = commands.add_parser(
        "audit",
        help="check the published readings, settlements and bills against the chain alone "
        "(exit 1 on a discrepancy, 2 on an input error)",
    )
    audit.add_argument("--rpc", required=True, help="a JSON-RPC endpoint of the ledger's chain")
    audit.add_argument(
        "--deployment",
        required=True,
        help="the ledger's deployment record (deployments/<chain id>.json): its contract "
        "addresses, checked against the chain's code",
    )
    source = audit.add_mutually_exclusive_group(required=True)
    source.add_argument("--bundle", help="a reading bundle file (ledger export-bundle; .gz too)")
    source.add_argument("--gateway", help="a gateway's base URL: its GET /v1/bundle and bills")
    audit.add_argument("--token", help="bearer token at --gateway (an auditor's session token)")
    audit.add_argument(
        "--bills",
        help="verification packages of the bills: JSON Lines, a JSON array, or a directory "
        "of .json files (with --gateway: default, read from the gateway)",
    )
    audit.add_argument("--from", dest="start", help="audit batches with readings from T on")
    audit.add_argument("--to", dest="end", help="... and before U (Unix time or ISO 8601)")
    audit.add_argument("--batches", help="audit the batches A-B (inclusive)")
    audit.add_argument("--json", help="write the JSON report here ('-': stdout)")
    audit.add_argument(
        "--jobs", type=int, default=0, help="processes checking signatures (default: all cores)"
    )
    audit.add_argument(
        "--watch",
        action="store_true",
        help="follow new batches (from --batches A on), audit each, prove bad readings on chain",
    )
    audit.add_argument(
        "--prove-key-file",
        help="with --watch: a file holding the hex private key of a funded account that sends "
        "the fraud proofs (without it, --watch only reports)",
    )
    audit.add_argument(
        "--poll", type=float, default=5.0, help="with --watch: seconds between passes (5)"
    )
    # Reads nothing of this machine's ledger: no LEDGER_* setting is needed.
    audit.set_defaults(handler=cmd_audit, needs_settings=False)
