"""The `ledger` console command.

    ledger serve              start (or reach) the chain, deploy if needed, serve the gateway
    ledger deploy [--force]   deploy the contracts (or check the recorded ones), print them
    ledger meter keygen       make a meter key pair (simulated meters, tests)
    ledger meter register|rotate|revoke|show|suspect-readings ...
    ledger simulate           register a simulated meter fleet and post its readings
    ledger market ...         P2P trades through the gateway: info, offers, offer, take, trade,
                              settle, refund, trades; mint (operator: settlement units)
    ledger market-day         a simulated market day on its own Ganache and gateway: offers,
                              takes, settlement from anchored readings; prints a JSON summary
    ledger sim month          a simulated month on its own Anvil and gateway: readings, trading
                              days, then every household's bill issued; prints a JSON summary
    ledger tariff ...         tariffs on record: publish, show, assign, assignments
    ledger bills ...          issue a period's bills and anchor their root; list, show
    ledger export-bundle      the raw signed readings of anchored batches with their proofs
                              (docs/bundle.md), for a time range or a batch range

Settings come from `LEDGER_*` environment variables (see ledger/settings.py and the README).
Errors print one line with their code and exit non-zero; no stack traces for expected failures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from api.schemas.meters import KeyEpochPublic, MeterPublic
from api.schemas.readings import StoredReadingPublic
from ledger import billing_cli, complaints_cli
from ledger.audit import cli as audit_cli
from ledger.errors import LedgerError, MeterError, ToolchainError
from ledger.meters.keys import (
    KeyAlgorithm,
    MeterPublicKey,
    encode_public_key,
    generate_key,
    parse_public_key,
    private_key_pem,
)
from ledger.meters.registry import suspect_readings
from ledger.node import LedgerNode
from ledger.settings import Settings


def parse_time(text: str) -> int:
    """Unix seconds from an integer or an ISO 8601 time with a zone (e.g. 2026-01-01T00:00:00Z)."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise MeterError(f"time {text!r} is neither Unix seconds nor ISO 8601") from error
    if moment.tzinfo is None:
        raise MeterError(f"time {text!r} needs a zone, e.g. a trailing Z for UTC")
    return int(moment.timestamp())


def _read_key(args: argparse.Namespace) -> MeterPublicKey:
    """The key of --public-key-file (PEM, or DER/raw bytes; a private key file is read for its
    public half) or --public-key (any text form `parse_public_key` reads)."""
    if args.public_key_file:
        data = Path(args.public_key_file).read_bytes()
        return parse_public_key(data, args.algorithm, allow_private=True)
    if args.public_key:
        return parse_public_key(args.public_key, args.algorithm)
    raise MeterError("give --public-key-file, or --public-key (with --algorithm if raw x||y)")


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _json(shown: BaseModel, exclude: set[str] | None = None) -> dict[str, Any]:
    """A resource as the API shows it (its schema in api/schemas/), for the same JSON here."""
    return shown.model_dump(mode="json", exclude=exclude)


def _cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    """Serves until SIGINT (Ctrl-C) or SIGTERM; either stops the workers, then the chain this
    command started, and exits 0.

    While it serves, uvicorn catches both signals, shuts down, and raises the signal again with
    the handler that was installed before it ran. For SIGTERM that was the default handler, which
    killed this process before `finally` could stop the managed chain (Ganache runs in a session
    of its own, so it lived on). Our handler turns SIGTERM into an exception, as Python does with
    SIGINT, so both signals unwind through the same `finally`.
    """
    import uvicorn

    from ledger.chain.client import port_is_free
    from ledger.logs import VERBOSE_ENV, configure_logging, redactor_for
    from ledger.node import PARENT_CHAIN_ENV
    from ledger.serving import Terminated, exec_supervisor, raise_terminated

    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    if not port_is_free(host, port):
        raise ToolchainError(
            f"port {port} on {host} is already in use: stop what listens there "
            "or set LEDGER_PORT to another port"
        )
    # Log lines (stderr) in LEDGER_LOG_FORMAT, secrets masked; the two lines printed below
    # (stdout) are for the person who started the gateway.
    configure_logging(settings.log_format, verbose=args.verbose, redactor=redactor_for(settings))
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        node = LedgerNode.start(settings)
    except (KeyboardInterrupt, Terminated):
        return 0  # stopped while starting; LedgerNode.start stopped the chain it had started
    stopped = False
    try:
        health = node.health()
        print(
            f"chain {health['chain']['chain_id']} at {health['chain']['rpc_url']}"
            f" ({'started here' if node.local_chain else 'external'}); contracts "
            + ", ".join(f"{k}={v}" for k, v in node.deployment.addresses.items()),
            flush=True,
        )
        workers = settings.worker_count
        print(
            f"gateway on http://{host}:{port}  (docs: /docs, health: /healthz), "
            f"{workers} worker{'s' if workers > 1 else ''}",
            flush=True,
        )
        if workers == 1:
            # Imported here only: with workers, each worker builds the app and this process
            # would import the whole API (a second or more at every start) for nothing.
            from api.main import create_app, settle_garbage_collector

            node.start_background_work()
            app = create_app(node)
            settle_garbage_collector()
            # log_config=None: uvicorn's own lines go through the handler configured above.
            uvicorn.run(app, host=host, port=port, log_level="warning", log_config=None)
        else:
            # Each worker process builds its own node (store, anchorer) attached to the chain
            # this process started or reached. The key is passed on because, for a worker, the
            # chain is an external one (LEDGER_RPC_URL), which needs an explicit key. This
            # process then becomes the lean supervisor of ledger/serving.py (exec), which stops
            # the chain after the workers: the node lets go of everything but the chain first.
            os.environ["LEDGER_RPC_URL"] = node.chain.rpc_url
            os.environ["LEDGER_OPERATOR_KEY"] = settings.signing_key
            os.environ[PARENT_CHAIN_ENV] = node.local_chain.kind if node.local_chain else ""
            if args.verbose:
                os.environ[VERBOSE_ENV] = "1"
            process = node.local_chain.process if node.local_chain else None
            node.local_chain = None  # handed over: the supervisor stops it by its process id
            node.stop()
            stopped = True
            exec_supervisor(
                host=host,
                port=port,
                workers=workers,
                chain_pid=process.pid if process is not None else None,
            )
    except (KeyboardInterrupt, Terminated):
        pass  # uvicorn has stopped serving (and its workers); what this command started is next
    finally:
        # A second Ctrl-C or SIGTERM must not cut the shutdown short and orphan the chain;
        # LocalChain.stop kills the chain if it does not stop in time.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if not stopped:
            node.stop()
    return 0


def _cmd_deploy(settings: Settings, args: argparse.Namespace) -> int:
    node = LedgerNode.start(settings, force_deploy=args.force)
    try:
        _print(
            {
                "chain_id": node.chain.chain_id,
                "deployed_now": node.deployment.deployed_now,
                "contracts": node.deployment.addresses,
            }
        )
    finally:
        node.stop()
    return 0


def _cmd_keygen(_: Settings, args: argparse.Namespace) -> int:
    algorithm = KeyAlgorithm.from_label(args.algorithm)
    key = generate_key(algorithm)
    out = Path(args.out)
    if out.exists():
        raise MeterError(f"{out} exists; refusing to overwrite a key")
    out.write_bytes(private_key_pem(key))
    out.chmod(0o600)
    public = encode_public_key(key.public_key())
    _print(
        {
            "algorithm": algorithm.label,
            "private_key_file": str(out),
            "public_key": "0x" + public.hex(),
        }
    )
    return 0


def _cmd_meter(settings: Settings, args: argparse.Namespace) -> int:
    node = LedgerNode.start(settings)
    try:
        meters = node.meters
        if args.meter_command == "register":
            valid_from = parse_time(args.valid_from) if args.valid_from else None
            meters.register(args.meter_id, args.owner, _read_key(args), valid_from)
        elif args.meter_command == "rotate":
            valid_from = parse_time(args.valid_from) if args.valid_from else None
            meters.rotate(args.meter_id, _read_key(args), valid_from)
        if args.meter_command == "revoke":
            since = parse_time(args.compromised_since) if args.compromised_since else None
            meters.revoke(args.meter_id, since)
            meter = node.meter_history.show(args.meter_id)
            suspects = suspect_readings(node.store, meter, limit=0)
            _print({**_json(MeterPublic.model_validate(meter)), "suspect_readings": suspects.count})
        elif args.meter_command == "suspect-readings":
            history = node.meter_history.show(args.meter_id)
            found = suspect_readings(node.store, history, limit=args.limit)
            _print(
                {
                    "meter_id": found.meter_id,
                    "suspect_count": found.count,
                    # Without `anchor`: the CLI lists readings as stored, proofs are the API's.
                    "readings": [
                        _json(StoredReadingPublic.of(r, None), exclude={"anchor"})
                        for r in found.readings
                    ],
                }
            )
        elif args.meter_command == "show" and args.at:
            key = meters.key_at(args.meter_id, parse_time(args.at))
            _print(_json(KeyEpochPublic.model_validate(key)))
        else:
            # From the read model a gateway on this database keeps, when it is current for the
            # meter (ledger/meters/history.py); from the registry otherwise.
            _print(_json(MeterPublic.model_validate(node.meter_history.show(args.meter_id))))
    finally:
        node.stop()
    return 0


def _cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.sim import fleet, runner

    config = runner.SimulationConfig(
        meters=args.meters,
        interval_s=fleet.parse_duration(args.interval),
        duration_s=fleet.parse_duration(args.duration),
        speed=args.speed,
        batch_size=args.batch_size,
        pv_share=args.pv_share,
        faults=fleet.FaultRates.parse(args.faults),
        gateway=args.gateway,
        seed=args.seed,
        algorithm=KeyAlgorithm.from_label(args.algorithm),
        start=parse_time(args.start) if args.start else None,
        keys_dir=Path(args.keys_dir) if args.keys_dir else None,
        owner=args.owner,
        prefix=args.id_prefix,
        outage_s=fleet.parse_duration(args.outage) if args.outage else 0,
        outage_at_s=fleet.parse_duration(args.outage_at) if args.outage_at else 0,
        backlog_senders=args.backlog_senders,
    )
    summary = runner.simulate(settings, config)
    _print(summary)
    return 1 if summary["mismatches"] else 0


def _cmd_market(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.market.client import MarketClient, load_account

    if args.market_command == "mint":
        return _mint(settings, args.address, args.amount)
    client = MarketClient(args.gateway)
    command = args.market_command
    if command == "info":
        _print(client.info())
    elif command == "offers":
        _print(client.offers(include_closed=args.all))
    elif command == "offer":
        seller = load_account(Path(args.key_file).read_text())
        start = parse_time(args.start)
        expiry = parse_time(args.expiry) if args.expiry else start
        _print(client.offer(seller, args.meter, args.quantity_wh, args.price, start, expiry))
    elif command == "take":
        buyer = load_account(Path(args.key_file).read_text())
        _print(
            client.take(
                buyer, args.offer_id, args.meter, args.quantity_wh, permit_value=args.permit
            )
        )
    elif command == "trade":
        _print(client.trade(args.trade_id))
    elif command == "settle":
        _print(client.settle(args.trade_id))
    elif command == "refund":
        _print(client.refund(args.trade_id))
    elif command == "trades":
        _print(client.trades_of(args.address))
    return 0


def _mint(settings: Settings, address: str, amount: int) -> int:
    from eth_utils.address import is_address, to_checksum_address

    if not is_address(address):
        raise MeterError(f"{address!r} is not an account address (0x + 40 hex digits)")
    node = LedgerNode.start(settings)
    try:
        token = node.deployment.settlement_token
        account = to_checksum_address(address)
        node.chain.transact(token.functions.mint(account, amount))
        _print({"address": account, "balance": node.chain.call(token.functions.balanceOf(account))})
    finally:
        node.stop()
    return 0


def _market_parser(commands: Any) -> None:
    market = commands.add_parser(
        "market",
        help="P2P energy trades through the gateway (orders are signed here, relayed there)",
    )
    market_commands = market.add_subparsers(dest="market_command", required=True)

    def sub(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = market_commands.add_parser(name, help=help_text)
        parser.add_argument("--gateway", default="http://127.0.0.1:8000", help="gateway URL")
        parser.set_defaults(handler=_cmd_market)
        return parser

    sub("info", "market and token addresses, slot length, EIP-712 domains")
    sub("offers", "open offers").add_argument("--all", action="store_true", help="also closed")
    offer = sub("offer", "sign and post an offer of a meter's energy for one slot")
    offer.add_argument("--key-file", required=True, help="file with the seller's hex private key")
    offer.add_argument("--meter", required=True, help="the seller's meter id")
    offer.add_argument("--quantity-wh", type=int, required=True)
    offer.add_argument(
        "--price", type=int, required=True,
        help="minor units (millionths of the currency) per kWh, e.g. 250000 = 0.25",
    )  # fmt: skip
    offer.add_argument("--start", required=True, help="slot start (Unix s or ISO 8601)")
    offer.add_argument("--expiry", help="takeable until (default: the slot start)")
    take = sub("take", "sign and post a take of (part of) an offer, escrowing its price")
    take.add_argument("offer_id", type=int)
    take.add_argument("--key-file", required=True, help="file with the buyer's hex private key")
    take.add_argument("--meter", required=True, help="the buyer's meter id")
    take.add_argument("--quantity-wh", type=int, required=True)
    take.add_argument(
        "--permit", type=int, metavar="UNITS",
        help="also sign a token permit for UNITS minor units, used only if the take goes "
        "through (no ether needed for an approve)",
    )  # fmt: skip
    for name, help_text in (
        ("trade", "a trade's state"),
        ("settle", "settle a trade from anchored readings (after its slot)"),
        ("refund", "refund a trade not settled in its settlement window"),
    ):
        sub(name, help_text).add_argument("trade_id", type=int)
    sub("trades", "the trades an account buys or sells in").add_argument("address")
    mint = market_commands.add_parser(
        "mint", help="operator: mint settlement units (minor units) to an account"
    )
    mint.add_argument("address")
    mint.add_argument("amount", type=int, help="minor units (millionths), e.g. 100000000 = 100.00")
    mint.set_defaults(handler=_cmd_market)


def _key_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--public-key-file", help="PEM or DER public (or private) key file")
    parser.add_argument(
        "--public-key",
        help="hex (0x optional) or base64 of a SEC1 point, DER SubjectPublicKeyInfo, raw x||y "
        "(needs --algorithm) or a raw Ed25519 key",
    )
    parser.add_argument(
        "--algorithm",
        help="p256, ed25519 or secp256k1; checked against a key that names it, required for "
        "raw x||y; default: from the key (a bare SEC1 point is p256)",
    )
    parser.add_argument(
        "--valid-from",
        help="Unix seconds or ISO 8601; may be far back (old records), at most ~10 years ahead; "
        "default: now",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledger", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway (and a local chain if needed)")
    serve.add_argument("--host", help="default LEDGER_HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, help="default LEDGER_PORT or 8000")
    serve.set_defaults(handler=_cmd_serve)

    deploy = commands.add_parser("deploy", help="deploy the contracts or check the recorded ones")
    deploy.add_argument("--force", action="store_true", help="deploy anew even if recorded")
    deploy.set_defaults(handler=_cmd_deploy)

    meter = commands.add_parser("meter", help="meter identities in the MeterRegistry")
    meter_commands = meter.add_subparsers(dest="meter_command", required=True)
    keygen = meter_commands.add_parser("keygen", help="write a new meter private key (PEM)")
    keygen.add_argument("--algorithm", default="p256", help="p256 (default), ed25519, secp256k1")
    keygen.add_argument("--out", required=True, help="file for the private key (PEM, mode 600)")
    keygen.set_defaults(handler=_cmd_keygen)
    register = meter_commands.add_parser("register", help="register a meter with its first key")
    register.add_argument("meter_id")
    register.add_argument("--owner", required=True, help="owner account address")
    _key_arguments(register)
    rotate = meter_commands.add_parser("rotate", help="append a new key epoch")
    rotate.add_argument("meter_id")
    _key_arguments(rotate)
    revoke = meter_commands.add_parser(
        "revoke", help="revoke the current key from now on, or since its compromise"
    )
    revoke.add_argument("meter_id")
    revoke.add_argument(
        "--compromised-since",
        help="Unix seconds or ISO 8601: refuse the key's readings dated from then on, not only "
        "from now (between the key's start and now); prints how many accepted ones are suspect",
    )
    suspects = meter_commands.add_parser(
        "suspect-readings",
        help="stored readings signed under a revoked key at or after its revocation",
    )
    suspects.add_argument("meter_id")
    suspects.add_argument("--limit", type=int, default=1000, help="most listed (default 1000)")
    show = meter_commands.add_parser("show", help="owner and full key history")
    show.add_argument("meter_id")
    show.add_argument("--at", help="instead: the key valid at this time (Unix s or ISO 8601)")
    for sub in (register, rotate, revoke, show, suspects):
        sub.set_defaults(handler=_cmd_meter)

    sim = commands.add_parser(
        "simulate",
        help="register a simulated meter fleet and post its signed readings to the gateway",
        description="Households and PV prosumers on an interval grid in simulated time, with "
        "injected faults; prints a JSON summary and exits 1 if any answer differs from the "
        "expected one. Default start: now - duration, rounded down to the interval (backfill).",
    )
    sim.add_argument("--meters", type=int, default=10, help="fleet size (default 10)")
    sim.add_argument("--interval", default="15m", help="reading interval (default 15m)")
    sim.add_argument("--duration", default="1h", help="simulated time span (default 1h)")
    sim.add_argument(
        "--speed", type=float, default=900.0,
        help="simulated seconds per real second (default 900); 0 = as fast as possible",
    )  # fmt: skip
    sim.add_argument("--batch-size", type=int, default=500, help="readings per POST (500)")
    sim.add_argument("--pv-share", type=float, default=0.3, help="share of PV prosumers (0.3)")
    sim.add_argument(
        "--faults", default="",
        help="probabilities per reading, e.g. bad_signature=0.01,replay=0.01,gap=0.01,"
        "conflict=0.005 (default none)",
    )  # fmt: skip
    sim.add_argument("--gateway", default="http://127.0.0.1:8000", help="gateway base URL")
    sim.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    sim.add_argument("--algorithm", default="p256", help="p256 (default), ed25519, secp256k1")
    sim.add_argument("--start", help="first interval's start (Unix s or ISO 8601)")
    sim.add_argument("--keys-dir", help="save keys and counters here; a rerun continues them")
    sim.add_argument("--owner", help="owner account of the meters (default: the operator)")
    sim.add_argument("--id-prefix", default="SIM-", help="meter ids are PREFIX000001, ...")
    sim.add_argument(
        "--outage",
        help="the fleet is offline this long (e.g. 6h): its readings are kept and sent all at "
        "once when it is back, honouring 429/503 Retry-After",
    )
    sim.add_argument("--outage-at", help="when the outage starts, after --start (default 0)")
    sim.add_argument(
        "--backlog-senders", type=int, default=8,
        help="connections the backlog is sent over side by side (default 8)",
    )  # fmt: skip
    sim.set_defaults(handler=_cmd_simulate)
    _market_parser(commands)
    _market_day_parser(commands)
    _sim_parser(commands)
    billing_cli.add_parsers(commands)
    _export_bundle_parser(commands)
    _prove_bad_reading_parser(commands)
    audit_cli.add_parser(commands)
    complaints_cli.add_parser(commands)
    return parser


def _cmd_export_bundle(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.anchoring.bundle import (
        BundleSelection,
        InvalidBundleRange,
        export_bundle,
        write_bundle,
    )
    from ledger.progress import progress_bar
    from ledger.store.database import Store

    if args.batches is not None:
        if args.to is not None:
            raise InvalidBundleRange("--to goes with --from, not with --batches")
        selection = BundleSelection.parse_batches(args.batches)
    elif args.to is None:
        raise InvalidBundleRange("--from needs --to (the end of the time range)")
    else:
        try:
            start, end = parse_time(args.from_), parse_time(args.to)
        except MeterError as error:  # the time parser's error, named for what it is here
            raise InvalidBundleRange(str(error)) from None
        selection = BundleSelection.time_range(start, end)
    store = Store.open(settings)
    try:
        if args.out is None:
            write_bundle(store, selection, sys.stdout.buffer)
            return 0
        # Readings written so far on stderr, on a terminal only (the total is known at the end).
        bar = progress_bar("export", total=None, unit="readings")
        try:
            batches, readings = export_bundle(store, selection, Path(args.out), bar.advance)
        finally:
            bar.close()
    finally:
        store.close()
    print(json.dumps({"out": args.out, "batches": batches, "readings": readings}))
    return 0


def _export_bundle_parser(commands: Any) -> None:
    bundle = commands.add_parser(
        "export-bundle",
        help="write the raw signed readings of anchored batches with their proofs",
        description="A reading bundle (docs/bundle.md): every stored reading of the anchored "
        "batches selected, as signed, with its Merkle proof, for `ledger audit`. Reads the "
        "database only; the gateway may be stopped.",
    )
    which = bundle.add_mutually_exclusive_group(required=True)
    which.add_argument("--batches", help="batch ids A-B (inclusive) or A; all must be anchored")
    which.add_argument(
        "--from", dest="from_",
        help="with --to: the batches with readings in [from, to) (Unix s or ISO 8601)",
    )  # fmt: skip
    bundle.add_argument("--to", help="end of the time range (exclusive)")
    bundle.add_argument("--out", help="file to write (gzip if it ends in .gz); default stdout")
    bundle.set_defaults(handler=_cmd_export_bundle)


def _cmd_prove_bad_reading(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.anchoring.bundle import bounded_lines, open_bundle, read_bundle
    from ledger.chain.client import connect
    from ledger.chain.compiler import compile_contracts
    from ledger.chain.deployment import record_path
    from ledger.errors import DeploymentError
    from ledger.meters.registry import meter_id_bytes
    from ledger.readings.fraud_proof import (
        claim_from_bundle,
        claim_from_store,
        prove_bad_reading,
    )
    from ledger.store.database import Store

    # Anyone may prove: the key is the prover's own (a file holding its 0x-hex private key), the
    # operator's only when none is given.
    key = Path(args.key_file).read_text().strip() if args.key_file else settings.signing_key
    rpc_url = args.rpc or settings.rpc_url
    if rpc_url is None:
        raise DeploymentError("give --rpc URL (or LEDGER_RPC_URL): the chain to send the proof to")
    chain = connect(rpc_url, key)
    address = args.reading_ledger
    if address is None:
        record = json.loads(record_path(settings.data_dir, chain.chain_id).read_text())
        address = record["contracts"]["ReadingLedger"]
    artifacts = compile_contracts()
    for artifact in artifacts.values():
        chain.learn_errors(artifact.abi)
    ledger = chain.w3.eth.contract(
        address=chain.w3.to_checksum_address(address), abi=artifacts["ReadingLedger"].abi
    )
    root = bytes(chain.call(ledger.functions.batchRoot(args.batch)))
    wanted = {"batch_id": args.batch, "meter_id": meter_id_bytes(args.meter), "seq": args.seq}
    if args.bundle:
        with open_bundle(Path(args.bundle)) as lines:
            claim = claim_from_bundle(read_bundle(bounded_lines(lines)), root=root, **wanted)
    else:
        store = Store.open(settings)
        try:
            claim = claim_from_store(store, root=root, **wanted)
        finally:
            store.close()
    outcome = prove_bad_reading(chain, ledger, claim)
    _print(
        {
            "batch_id": outcome.batch_id,
            "reason": outcome.reason.name.lower(),
            "transaction_hash": outcome.transaction_hash,
            "gas_used": outcome.gas_used,
        }
    )
    return 0


def _prove_bad_reading_parser(commands: Any) -> None:
    prove = commands.add_parser(
        "prove-bad-reading",
        help="prove an anchored reading's signature bad on chain (anyone may)",
        description="Sends ReadingLedger.proveBadReading for one anchored reading, read from a "
        "reading bundle (--bundle) or the gateway's database: the chain checks its signature "
        "under the key its meter had at its time and, if it fails, marks its batch proven bad "
        "(no settlement uses it again). A valid signature is refused "
        "(reading_ledger_reading_valid) and nothing is mined. docs/reading-format.md.",
    )
    prove.add_argument("--batch", type=int, required=True, help="the reading's batch id")
    prove.add_argument("--meter", required=True, help="meter id (serial or 0x + 64 hex digits)")
    prove.add_argument("--seq", type=int, required=True, help="the reading's sequence number")
    prove.add_argument("--rpc", help="chain RPC URL (default LEDGER_RPC_URL)")
    prove.add_argument(
        "--bundle", help="reading bundle to read the reading from (default: the database)"
    )
    prove.add_argument(
        "--key-file", help="file with the prover's private key (default: the operator's)"
    )
    prove.add_argument(
        "--reading-ledger", help="ReadingLedger address (default: the deployment record)"
    )
    prove.set_defaults(handler=_cmd_prove_bad_reading)


def _cmd_market_day(_: Settings, args: argparse.Namespace) -> int:
    from ledger.sim import day_plan, market_day

    summary = market_day.run_local_day(
        day=args.day or day_plan.yesterday(),
        households=args.households,
        pv=args.pv,
        seed=args.seed,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        progress=market_day.say_on_stderr,
    )
    _print(summary)
    return 0


def _market_day_parser(commands: Any) -> None:
    day = commands.add_parser(
        "market-day",
        help="simulate a market day of households on a new Ganache and gateway",
        description="Starts a Ganache whose clock begins before the day and a gateway in this "
        "process, registers the households' meters, trades the day ahead, then walks through the "
        "day posting signed readings and settling each slot's trades from the anchored readings. "
        "Prints a JSON summary; stops the chain and gateway at the end.",
    )
    day.add_argument("--households", type=int, default=20, help="households in all (20)")
    day.add_argument("--pv", type=int, default=5, help="of which with PV, the sellers (5)")
    day.add_argument("--day", help="the UTC day, YYYY-MM-DD, already over (default: yesterday)")
    day.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    day.add_argument("--data-dir", help="keep chain and database here (new or empty directory)")
    day.set_defaults(handler=_cmd_market_day)


def _cmd_sim_month(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.sim import market_day, month

    summary = month.run_local_month(
        month=args.month,
        time_zone=settings.billing_time_zone,
        households=args.households,
        pv=args.pv,
        trading_days=args.trading_days,
        seed=args.seed,
        tariff=Path(args.tariff).read_bytes() if args.tariff else None,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        progress=market_day.say_on_stderr,
    )
    _print(summary)
    return 0


def _cmd_sim_complaints(_: Settings, args: argparse.Namespace) -> int:
    from ledger.sim import complaints, market_day

    _print(
        complaints.run_local_complaints(
            month=args.month,
            complaints=args.complaints,
            customers=args.customers,
            seed=args.seed,
            progress=market_day.say_on_stderr,
        )
    )
    return 0


def _sim_parser(commands: Any) -> None:
    sim = commands.add_parser("sim", help="simulations on their own chain and gateway")
    sim_commands = sim.add_subparsers(dest="sim_command", required=True)
    month = sim_commands.add_parser(
        "month",
        help="simulate a billed month of households on a new chain and gateway",
        description="Starts an Anvil whose clock begins before the month and a gateway in this "
        "process, registers the households' meters, publishes the tariff and assigns it to every "
        "household, posts the month's signed 15-minute readings (the P2P market trading on "
        "--trading-days days, as `ledger market-day` does), then issues every household's bill "
        "and anchors their root. Prints a JSON summary; stops the chain and gateway at the end.",
    )
    month.add_argument(
        "--month", help="YYYY-MM in LEDGER_BILLING_TIME_ZONE, over (default: the last full month)"
    )
    month.add_argument("--households", type=int, default=20, help="households in all (20)")
    month.add_argument("--pv", type=int, default=5, help="of which with PV, the sellers (5)")
    month.add_argument(
        "--trading-days", type=int, default=2, help="days of the month the market runs (2)"
    )
    month.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    month.add_argument("--tariff", help="tariff file (default: tariffs/household-tou.toml)")
    month.add_argument("--data-dir", help="keep chain and database here (new or empty directory)")
    month.set_defaults(handler=_cmd_sim_month)
    complaints = sim_commands.add_parser(
        "complaints",
        help="simulate a month of complaints answered on time, late and never",
        description="Starts an Anvil whose clock begins before the month and a gateway in this "
        "process; customers sign in and open complaints through it (EIP-712, relayed), the "
        "operator answers them on time, late or never, some are rated or reopened; the "
        "chain's clock is moved to each action's time. Prints the complaints and the month's "
        "statistics with the negative list (docs/complaints.md).",
    )
    complaints.add_argument("--month", help="YYYY-MM (UTC), over (default: the last full month)")
    complaints.add_argument("--complaints", type=int, default=15, help="complaints (15)")
    complaints.add_argument("--customers", type=int, default=6, help="customers (6)")
    complaints.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    complaints.set_defaults(handler=_cmd_sim_complaints)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ledger` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        # A command that reads nothing of the local ledger (verify-bill) works whatever the
        # LEDGER_* environment holds; the others refuse settings that cannot work.
        needs_settings = getattr(args, "needs_settings", True)
        settings = Settings.from_env() if needs_settings else Settings.model_construct()
        return int(args.handler(settings, args))
    except LedgerError as error:
        print(f"error [{error.code}]: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
