"""Running a simulated fleet against a gateway: pacing, sending, tallying, and `ledger simulate`.

`run` paces the ticks `ledger.sim.fleet.generate` plans, sends each batch through an injectable
`send(batch) -> results` (`ledger.sim.harness.HttpSender` over HTTP) and counts expected against
actual outcomes (`Tally`); `simulate` is what the CLI calls: register the fleet's keys on the
chain (or re-use a fleet saved with `save_fleet`), then `run`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from rich.console import Console

from ledger.errors import ContractRevert
from ledger.meters.keys import KeyAlgorithm, MeterPrivateKey, private_key_pem
from ledger.progress import progress_bar
from ledger.settings import Settings
from ledger.sim.fleet import (
    Expectation,
    FaultRates,
    FleetMeter,
    MeterKind,
    MeterState,
    Planned,
    Send,
    SimulationError,
    default_start,
    generate,
    make_fleet,
)
from ledger.sim.harness import HttpSender


@dataclass
class Tally:
    """Counts of actual outcomes, and expected vs actual per fault kind."""

    sent: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_code: Counter[str] = field(default_factory=Counter)
    expected: dict[str, Counter[str]] = field(default_factory=dict)
    actual: dict[str, Counter[str]] = field(default_factory=dict)
    mismatches: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, planned: Planned, result: dict[str, Any]) -> None:
        status = str(result.get("status"))
        code = result.get("code")
        actual = Expectation(status, None if code is None else str(code))
        self.sent += 1
        self.by_status[status] += 1
        if code is not None:
            self.by_code[str(code)] += 1
        self.expected.setdefault(planned.fault, Counter())[planned.expected.key] += 1
        self.actual.setdefault(planned.fault, Counter())[actual.key] += 1
        if actual != planned.expected:
            self.mismatches += 1
            if len(self.examples) < 20:
                self.examples.append(
                    {
                        "meter_id": planned.meter_id,
                        "seq": planned.reading.seq,
                        "fault": planned.fault,
                        "expected": planned.expected.key,
                        "actual": actual.key,
                        "message": result.get("message"),
                    }
                )

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "by_status": dict(sorted(self.by_status.items())),
            "by_code": dict(sorted(self.by_code.items())),
            "faults": {
                kind: {
                    "count": sum(self.expected[kind].values()),
                    "expected": dict(sorted(self.expected[kind].items())),
                    "actual": dict(sorted(self.actual.get(kind, Counter()).items())),
                }
                for kind in sorted(self.expected)
            },
            "mismatches": self.mismatches,
            "mismatch_examples": self.examples,
        }


class Progress:
    """A rich progress bar on a terminal (ledger/progress.py), else a plain line every few
    seconds (a run's output kept in a log file shows how it went)."""

    def __init__(self, stream: TextIO | None = None, *, every_s: float = 5.0) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._bar = (
            progress_bar(
                "simulate", total=None, unit="readings", console=Console(file=self._stream)
            )
            if self._stream.isatty()
            else None
        )
        self._every_s = 0.1 if self._bar is not None else every_s
        self._last = 0.0
        self._began = time.monotonic()

    def show(self, tally: Tally, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < self._every_s:
            return
        self._last = now
        elapsed = max(now - self._began, 1e-9)
        counts = (
            f"accepted {tally.by_status['accepted']}  duplicate {tally.by_status['duplicate']}  "
            f"rejected {tally.by_status['rejected']}  mismatches {tally.mismatches}"
        )
        if self._bar is not None:
            self._bar.advance(tally.sent - self._bar.completed)
            self._bar.describe(counts)
            if final:
                self._bar.close()
            return
        self._stream.write(f"sent {tally.sent}  {counts}  {tally.sent / elapsed:.0f} readings/s\n")
        self._stream.flush()


@dataclass(frozen=True)
class Outage:
    """The fleet offline for ticks `first_tick` .. `first_tick + ticks - 1` (0-based).

    Their readings are taken as usual but kept by the meters; when the fleet is back (at the
    next tick after the outage, or at the end of the run) they are sent all at once, as a
    backlog, over `senders` (one connection each, side by side), each meter's readings in seq
    order over one of them. A gateway that refuses part of the burst (429 or 503 with
    `Retry-After`) is waited for and sent the same batch again by the sender itself
    (`HttpSender`).
    """

    first_tick: int
    ticks: int
    senders: Sequence[Send]

    def holds(self, tick: int) -> bool:
        return self.first_tick <= tick < self.first_tick + self.ticks


def replay_backlog(
    backlog: Sequence[Planned], senders: Sequence[Send], batch_size: int
) -> list[tuple[list[Planned], list[dict[str, Any]]]]:
    """Sends a backlog over every sender at once (meters dealt out among them, each meter's
    readings in order on one); returns each batch with its results, in sending order per
    sender."""
    meters = list(dict.fromkeys(p.meter_id for p in backlog))
    sender_of = {meter: i % len(senders) for i, meter in enumerate(meters)}
    shares: list[list[Planned]] = [[] for _ in senders]
    for planned in backlog:
        shares[sender_of[planned.meter_id]].append(planned)
    answered: list[list[tuple[list[Planned], list[dict[str, Any]]]]] = [[] for _ in senders]
    failures: list[BaseException] = []

    def send_share(index: int) -> None:
        share = shares[index]
        try:
            for at in range(0, len(share), batch_size):
                batch = share[at : at + batch_size]
                answered[index].append((batch, senders[index](batch)))
        except BaseException as error:  # noqa: BLE001 - raised again in the caller's thread
            failures.append(error)

    threads = [
        threading.Thread(target=send_share, args=(i,), name=f"backlog-{i}")
        for i, share in enumerate(shares)
        if share
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return [pair for pairs in answered for pair in pairs]


def run(
    ticks: Iterator[list[Planned]],
    send: Send,
    *,
    batch_size: int = 500,
    interval_s: int = 900,
    speed: float = 0.0,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    outage: Outage | None = None,
) -> dict[str, Any]:
    """Sends every tick's submissions in batches and tallies the answers.

    With `speed` > 0, tick k is sent no earlier than k * interval / speed real seconds after the
    first; with 0, as fast as the gateway answers (batches then span ticks). A tick is never sent
    before its readings' timestamp has come on the wall clock, so a simulation that runs into the
    present continues in real time instead of running ahead of the gateway's clock.

    With an `outage`, its ticks' readings are kept and sent as one backlog when it ends (see
    `Outage`); the summary's `backlog` says how many and how long until all were answered.
    """
    if batch_size < 1:
        raise SimulationError("the batch size must be at least 1")
    if speed < 0:
        raise SimulationError("the speed cannot be negative")
    tally = Tally()
    pending: list[Planned] = []
    backlog: list[Planned] = []
    backlog_report: dict[str, Any] | None = None
    began = clock()

    def replay() -> None:
        nonlocal backlog_report
        assert outage is not None
        flush()
        replay_began = clock()
        for batch, results in replay_backlog(backlog, outage.senders, batch_size):
            if len(results) != len(batch):
                raise SimulationError(
                    f"the gateway answered {len(results)} results for {len(batch)} readings"
                )
            for planned, result in zip(batch, results, strict=True):
                tally.add(planned, result)
        backlog_report = {
            "readings": len(backlog),
            "senders": len(outage.senders),
            "answered_in_s": round(clock() - replay_began, 3),
        }
        backlog.clear()
        if progress is not None:
            progress.show(tally)

    def flush(*, whole_batches_only: bool = False) -> None:
        while len(pending) >= (batch_size if whole_batches_only else 1):
            batch = pending[:batch_size]
            del pending[:batch_size]
            results = send(batch)
            if len(results) != len(batch):
                raise SimulationError(
                    f"the gateway answered {len(results)} results for {len(batch)} readings"
                )
            for planned, result in zip(batch, results, strict=True):
                tally.add(planned, result)
            if progress is not None:
                progress.show(tally)

    for index, planned_tick in enumerate(ticks):
        latest = max((p.reading.timestamp for p in planned_tick), default=0)
        wait = latest - wall_clock()
        if speed > 0:
            wait = max(wait, began + index * interval_s / speed - clock())
        if wait > 0:
            flush()
            sleep(wait)
        if outage is not None and outage.holds(index):
            backlog.extend(planned_tick)  # offline: the meters keep their readings
            continue
        if backlog:
            replay()  # back online: the backlog first, then this tick
        pending.extend(planned_tick)
        # Paced: each tick goes out on time. Flat out: only full batches, the rest waits.
        flush(whole_batches_only=speed == 0)
    if backlog:
        replay()
    flush()
    elapsed = clock() - began
    if progress is not None:
        progress.show(tally, final=True)
    summary = tally.summary()
    if backlog_report is not None:
        summary["backlog"] = backlog_report
    summary["elapsed_s"] = round(elapsed, 3)
    summary["readings_per_s"] = round(tally.sent / elapsed, 1) if elapsed > 0 else None
    return summary


def _load_pem(data: bytes) -> MeterPrivateKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise SimulationError(f"unsupported key type {type(key).__name__}")
    return key


STATE_FILE = "fleet.json"


def load_fleet(keys_dir: Path) -> tuple[list[FleetMeter], dict[str, Any]] | None:
    """A fleet saved by `save_fleet` (keys in PEM, counters in fleet.json), or None."""
    state_path = keys_dir / STATE_FILE
    if not state_path.exists():
        return None
    saved = json.loads(state_path.read_text())
    fleet = [
        FleetMeter(
            meter_id=m["meter_id"],
            key=_load_pem((keys_dir / f"{m['meter_id']}.pem").read_bytes()),
            kind=MeterKind(m["kind"]),
            load_pct=int(m["load_pct"]),
            pv_peak_w=int(m["pv_peak_w"]),
            state=MeterState(**{k: int(v) for k, v in m["state"].items()}),
        )
        for m in saved["meters"]
    ]
    return fleet, saved


def save_fleet(keys_dir: Path, fleet: Sequence[FleetMeter], **extra: Any) -> None:
    """Writes each meter's key (PEM, mode 600) and the fleet's counters to `keys_dir`."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    for meter in fleet:
        path = keys_dir / f"{meter.meter_id}.pem"
        if not path.exists():
            path.write_bytes(private_key_pem(meter.key))
            path.chmod(0o600)
    state = {
        **extra,
        "meters": [
            {
                "meter_id": m.meter_id,
                "kind": m.kind.value,
                "load_pct": m.load_pct,
                "pv_peak_w": m.pv_peak_w,
                "state": m.state.as_dict(),
            }
            for m in fleet
        ],
    }
    temporary = keys_dir / (STATE_FILE + ".tmp")
    temporary.write_text(json.dumps(state, indent=1))
    temporary.replace(keys_dir / STATE_FILE)


@dataclass(frozen=True)
class SimulationConfig:
    """What `ledger simulate` was asked to do."""

    meters: int = 10
    interval_s: int = 900
    duration_s: int = 3600
    speed: float = 900.0
    batch_size: int = 500
    pv_share: float = 0.3
    faults: FaultRates = field(default_factory=FaultRates)
    gateway: str = "http://127.0.0.1:8000"
    seed: int = 1
    algorithm: KeyAlgorithm = KeyAlgorithm.P256
    start: int | None = None
    keys_dir: Path | None = None
    owner: str | None = None
    prefix: str = "SIM-"
    # A backlog after an outage (issue 15, item 2): the fleet offline for `outage_s` from
    # `outage_at_s` after the start, then sending what it kept over `backlog_senders` connections.
    outage_s: int = 0
    outage_at_s: int = 0
    backlog_senders: int = 8


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def simulate(
    settings: Settings, config: SimulationConfig, *, send: Send | None = None
) -> dict[str, Any]:
    """Registers the fleet on the chain (`settings`), then runs it against the gateway.

    With `keys_dir`, a fleet saved there by an earlier run continues (same keys, next seq, its
    registers, from its last timestamp) and is saved again at the end.
    """
    from ledger.node import LedgerNode  # the chain stack is only needed here

    if config.interval_s < 1 or config.duration_s < config.interval_s:
        raise SimulationError("the duration must be at least one interval")
    ticks = config.duration_s // config.interval_s
    outage_ticks = range(
        config.outage_at_s // config.interval_s,
        (config.outage_at_s + config.outage_s) // config.interval_s,
    )
    if config.outage_s and not (outage_ticks and outage_ticks.stop <= ticks):
        raise SimulationError(
            "the outage must cover at least one interval and end within the duration"
        )
    if config.backlog_senders < 1:
        raise SimulationError("the backlog needs at least one sender")
    saved = load_fleet(config.keys_dir) if config.keys_dir is not None else None
    if saved is not None:
        fleet, _ = saved
        last = max(m.state.last_timestamp for m in fleet)
        start = config.start if config.start is not None else last
        if start < last:
            raise SimulationError(f"the saved fleet's last reading is at {last}; start after it")
        _say(f"continuing {len(fleet)} meters from {config.keys_dir} at {start}")
    else:
        fleet = make_fleet(
            config.meters,
            seed=config.seed,
            pv_share=config.pv_share,
            algorithm=config.algorithm,
            prefix=config.prefix,
        )
        start = (
            config.start
            if config.start is not None
            else default_start(int(time.time()), config.duration_s, config.interval_s)
        )

    node = LedgerNode.start(settings)
    try:
        chain_id = node.chain.chain_id
        if saved is None:
            owner = config.owner or node.chain.operator.address
            admin = node.meters
            began = time.monotonic()
            for done, meter in enumerate(fleet, 1):
                # Valid from the simulation's start, so the backfilled readings verify.
                try:
                    admin.register(meter.meter_id, owner, meter.key.public_key(), valid_from=start)
                except ContractRevert as error:
                    if error.error_name != "MeterRegistryMeterAlreadyRegistered":
                        raise
                    raise SimulationError(
                        f"meter {meter.meter_id} is already registered on this chain (an earlier "
                        "run?): continue a saved fleet with --keys-dir, or name new meters with "
                        "--id-prefix"
                    ) from error
                if done % 25 == 0 or done == len(fleet):
                    _say(f"registered {done}/{len(fleet)} meters")
            registration_s = time.monotonic() - began
            if config.keys_dir is not None:
                save_fleet(config.keys_dir, fleet, chain_id=chain_id, seed=config.seed)
        else:
            registration_s = 0.0
    finally:
        node.stop()

    senders: list[HttpSender] = []
    if send is None:
        senders.append(HttpSender(config.gateway))
        send = senders[0]
    outage = None
    if config.outage_s:
        if not senders:  # the caller's own `send`: the backlog goes through it alone
            backlog_senders: list[Send] = [send]
        else:
            senders.extend(HttpSender(config.gateway) for _ in range(config.backlog_senders))
            backlog_senders = list(senders[1:])
        outage = Outage(outage_ticks.start, len(outage_ticks), backlog_senders)
    try:
        summary = run(
            generate(
                fleet,
                chain_id=chain_id,
                start=start,
                interval_s=config.interval_s,
                ticks=ticks,
                faults=config.faults,
                seed=config.seed,
            ),
            send,
            batch_size=config.batch_size,
            interval_s=config.interval_s,
            speed=config.speed,
            progress=Progress(),
            outage=outage,
        )
    finally:
        for sender in senders:
            sender.close()
        if config.keys_dir is not None:
            save_fleet(config.keys_dir, fleet, chain_id=chain_id, seed=config.seed)
    summary.update(
        meters=len(fleet),
        pv_meters=sum(m.kind is MeterKind.PV for m in fleet),
        ticks=ticks,
        start=start,
        end=start + ticks * config.interval_s,
        registration_s=round(registration_s, 3),
    )
    # Batches the gateway refused for now (429/503 with Retry-After) and the senders sent again.
    refused = Counter(r.code for sender in senders for r in sender.refusals)
    summary["refusals"] = dict(sorted(refused.items()))
    return summary
