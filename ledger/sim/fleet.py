"""A meter fleet simulator: signed readings from households and PV prosumers, with faults.

`ledger simulate` builds N simulated meters, registers their keys in the MeterRegistry, generates
readings on an interval grid in simulated time and posts them to the gateway's `POST /v1/readings`
in batches. It knows which readings it deliberately broke, so it can tell what the gateway MUST
answer for each one, and it counts expected against actual outcomes.

The parts, each usable on its own (the tests use them without a chain or HTTP):

    FleetMeter / make_fleet     a meter: id, key, kind (household or PV), profile scale, state
    interval_energy_j           the integer energy (joules = W*s) a meter imports/exports over
                                one interval, from integer per-slot profile tables
    generate                    meters + grid + fault plan -> per tick, a list of `Planned`
                                submissions (reading, canonical bytes, signature, expectation)
    Tally                       expected vs actual outcomes, by status, code and fault kind
    run                         paces ticks by `speed`, sends batches through an injectable
                                `send(batch) -> results`, shows progress, returns the summary
    HttpSender                  `send` over one keep-alive `http.client` connection
    simulate                    what the CLI calls: register the fleet on the chain, then `run`

Energy is integer throughout: profiles are tables of whole watts per 15-minute slot of the day,
an interval's energy is the exact sum of watts * seconds (joules), and a meter's registers advance
by whole Wh with the remainder carried in joules, so nothing is lost or rounded twice. Simulated
time is UTC and the profiles read it as local solar time (PV peaks at 12:00 UTC).

Faults (probabilities per reading, deterministic under the seed):

    bad_signature   one signature byte flipped               -> rejected bad_signature
    gap             the meter skips a seq number             -> the next reading is accepted
    replay          an earlier stored reading re-sent as is  -> duplicate
    conflict        an earlier stored seq re-sent with other content (status flag 1, re-signed)
                                                             -> rejected conflicting_reading

A reading with a bad signature is lost, as if a meter's message had been corrupted: its seq is
never stored and the meter carries on with the next seq (which the gateway accepts as a seq jump).
"""

from __future__ import annotations

import http.client
import json
import random
import re
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ledger.errors import ContractRevert, LedgerError
from ledger.meters.keys import KeyAlgorithm, MeterPrivateKey, generate_key, private_key_pem
from ledger.meters.registry import meter_id_bytes
from ledger.readings.native import Reading, sign_reading
from ledger.settings import Settings

SLOT_S = 900
"""Profile resolution: one value per 15-minute slot of the day."""
SLOTS_PER_DAY = 86400 // SLOT_S
J_PER_WH = 3600

# Household load, whole watts per hour of the day (00:00 .. 23:00): a night base load, a morning
# peak, a lower day, the evening peak. About 3,300 kWh a year at 100 % scale.
_HOUSEHOLD_HOURLY_W = (
    220, 190, 180, 175, 180, 220, 340, 520, 560, 420, 360, 350,
    380, 360, 330, 340, 400, 560, 720, 760, 650, 520, 400, 290,
)  # fmt: skip

# PV output, per mille of the panel's peak watts per hour of the day: a bell around 12:00 (a
# Gaussian with a 2.4 h standard deviation, rounded to integers), zero from 19:00 to 05:00.
_PV_HOURLY_PER_MILLE = (
    0, 0, 0, 0, 0, 0, 44, 115, 249, 457, 667, 868,
    1000, 868, 667, 457, 249, 115, 44, 0, 0, 0, 0, 0,
)  # fmt: skip


def _slot_table(hourly: Sequence[int]) -> tuple[int, ...]:
    """96 slot values from 24 hourly ones, linearly interpolated in integers (slot = its start)."""
    table = []
    for slot in range(SLOTS_PER_DAY):
        hour, quarter = divmod(slot, 4)
        here, following = hourly[hour], hourly[(hour + 1) % 24]
        table.append((here * (4 - quarter) + following * quarter) // 4)
    return tuple(table)


HOUSEHOLD_W = _slot_table(_HOUSEHOLD_HOURLY_W)
"""Household load per 15-minute slot of the day, W, at 100 % scale."""
PV_PER_MILLE = _slot_table(_PV_HOURLY_PER_MILLE)
"""PV output per 15-minute slot of the day, per mille of peak power."""


class SimulationError(LedgerError):
    """The simulation cannot run or the gateway did not answer as the contract says."""

    code = "simulation_failed"


class MeterKind(StrEnum):
    HOUSEHOLD = "household"
    PV = "pv"


class FaultKind(StrEnum):
    BAD_SIGNATURE = "bad_signature"
    REPLAY = "replay"
    GAP = "gap"
    CONFLICT = "conflict"


NO_FAULT = "none"


@dataclass(frozen=True)
class FaultRates:
    """Probability of each fault per generated reading (0 .. 1)."""

    bad_signature: float = 0.0
    replay: float = 0.0
    gap: float = 0.0
    conflict: float = 0.0

    def __post_init__(self) -> None:
        for kind in FaultKind:
            rate = getattr(self, kind.value)
            if not 0.0 <= rate <= 1.0:
                raise SimulationError(f"fault rate {kind.value}={rate} is outside 0..1")
        if self.bad_signature + self.gap > 1.0:
            raise SimulationError("bad_signature + gap rates exceed 1 (they exclude each other)")

    @classmethod
    def parse(cls, text: str) -> FaultRates:
        """`bad_signature=0.01,replay=0.01,gap=0.01,conflict=0.005`; empty means no faults."""
        rates: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep or name not in {k.value for k in FaultKind}:
                raise SimulationError(
                    f"bad fault {part!r}: use kind=probability with kind one of "
                    + ", ".join(k.value for k in FaultKind)
                )
            try:
                rates[name] = float(value)
            except ValueError as error:
                raise SimulationError(f"fault rate {value!r} is not a number") from error
        return cls(**rates)


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Whole seconds from `900`, `30s`, `15m`, `1h` or `2d`."""
    match = _DURATION.match(text.lower())
    if match is None:
        raise SimulationError(f"duration {text!r} is not like 900, 30s, 15m, 1h or 2d")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def default_start(now: int, duration_s: int, interval_s: int) -> int:
    """`now - duration`, rounded down to the interval grid: a backfill that ends by now.

    Readings are timestamped at the END of each interval, start + k * interval for k = 1 ..
    duration // interval, so the last one is at or before `now` and never ahead of the gateway
    clock (which refuses readings more than its skew tolerance in the future).
    """
    return (now - duration_s) // interval_s * interval_s


@dataclass
class MeterState:
    """A meter's counters: the next seq, its registers (Wh) and the joules not yet a whole Wh."""

    next_seq: int = 1
    import_wh: int = 0
    export_wh: int = 0
    import_j: int = 0
    export_j: int = 0
    last_timestamp: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class FleetMeter:
    """A simulated meter. `load_pct` scales the household profile; `pv_peak_w` is 0 without PV."""

    meter_id: str
    key: MeterPrivateKey
    kind: MeterKind
    load_pct: int
    pv_peak_w: int
    state: MeterState = field(default_factory=MeterState)

    @property
    def raw_id(self) -> bytes:
        return meter_id_bytes(self.meter_id)


def meter_name(index: int, prefix: str = "SIM-") -> str:
    """The id of the meter at `index` (0-based): SIM-000001, SIM-000002, ..."""
    return f"{prefix}{index + 1:06d}"


def make_fleet(
    count: int,
    *,
    seed: int,
    pv_share: float = 0.3,
    algorithm: KeyAlgorithm = KeyAlgorithm.P256,
    keys: Sequence[MeterPrivateKey] | None = None,
    prefix: str = "SIM-",
) -> list[FleetMeter]:
    """`count` meters; which are PV prosumers and their sizes follow from `seed` alone.

    `round(count * pv_share)` meters, chosen by the seed, have PV. Keys are new (`generate_key`)
    unless given.
    """
    if count < 1:
        raise SimulationError("the fleet needs at least one meter")
    if not 0.0 <= pv_share <= 1.0:
        raise SimulationError(f"pv share {pv_share} is outside 0..1")
    if keys is not None and len(keys) != count:
        raise SimulationError(f"{len(keys)} keys given for {count} meters")
    rng = random.Random(f"{seed}:fleet")
    pv = set(rng.sample(range(count), round(count * pv_share)))
    fleet = []
    for i in range(count):
        has_pv = i in pv
        fleet.append(
            FleetMeter(
                meter_id=meter_name(i, prefix),
                key=keys[i] if keys is not None else generate_key(algorithm),
                kind=MeterKind.PV if has_pv else MeterKind.HOUSEHOLD,
                load_pct=rng.randint(60, 160),
                pv_peak_w=rng.randint(30, 90) * 100 if has_pv else 0,
                state=MeterState(
                    import_wh=rng.randint(0, 5_000_000),
                    export_wh=rng.randint(0, 2_000_000) if has_pv else 0,
                ),
            )
        )
    return fleet


def _profile_j(table: Sequence[int], begin: int, end: int) -> int:
    """Sum of table[slot] * seconds over [begin, end): joules at 1 W per table unit."""
    total = 0
    moment = begin
    while moment < end:
        slot_end = min(end, (moment // SLOT_S + 1) * SLOT_S)
        total += table[(moment % 86400) // SLOT_S] * (slot_end - moment)
        moment = slot_end
    return total


def interval_energy_j(
    meter: FleetMeter, begin: int, end: int, load_pct: int, sun_pct: int
) -> tuple[int, int]:
    """(imported, exported) joules over [begin, end).

    Load is the household profile scaled by the meter's and this interval's percentages; PV
    output is the bell table times the panel's peak and this interval's sunshine percentage.
    The meter measures the net flow of the interval: import when load exceeds PV, else export.
    """
    load = _profile_j(HOUSEHOLD_W, begin, end) * meter.load_pct * load_pct // 10_000
    pv = _profile_j(PV_PER_MILLE, begin, end) * meter.pv_peak_w * sun_pct // 100_000
    return (load - pv, 0) if load >= pv else (0, pv - load)


@dataclass(frozen=True)
class Expectation:
    """What the gateway must answer: a status and, for a rejection, its code."""

    status: str
    code: str | None = None

    @property
    def key(self) -> str:
        return self.status if self.code is None else f"{self.status}:{self.code}"


ACCEPTED = Expectation("accepted")
DUPLICATE = Expectation("duplicate")


@dataclass(frozen=True)
class Planned:
    """One submission: what is sent, and what the gateway must answer for it."""

    meter_id: str
    reading: Reading
    canonical: bytes
    signature: bytes
    fault: str
    expected: Expectation

    def body(self) -> dict[str, str]:
        """The JSON object `POST /v1/readings` takes for this reading."""
        return {
            "meter_id": self.meter_id,
            "canonical": "0x" + self.canonical.hex(),
            "signature": "0x" + self.signature.hex(),
        }


@dataclass
class _Stored:
    reading: Reading
    canonical: bytes
    signature: bytes


HISTORY = 8
"""How many of its latest stored readings a meter remembers for replays and conflicts."""


def generate(
    fleet: Sequence[FleetMeter],
    *,
    chain_id: int,
    start: int,
    interval_s: int,
    ticks: int,
    faults: FaultRates,
    seed: int,
) -> Iterator[list[Planned]]:
    """Per tick, the submissions of every meter in fleet order (the meters' states advance).

    Tick k (1-based) covers [start + (k-1) * interval, start + k * interval) and its readings are
    timestamped at the interval's end. Energy draws and fault draws use separate random streams
    per meter, so changing the fault rates never changes the energy a meter measures.
    """
    if interval_s < 1:
        raise SimulationError("the interval must be at least one second")
    streams = {
        m.meter_id: (
            random.Random(f"{seed}:{m.meter_id}:{start}:energy"),
            random.Random(f"{seed}:{m.meter_id}:{start}:faults"),
        )
        for m in fleet
    }
    stored: dict[str, deque[_Stored]] = {m.meter_id: deque(maxlen=HISTORY) for m in fleet}
    for tick in range(1, ticks + 1):
        begin = start + (tick - 1) * interval_s
        end = begin + interval_s
        planned: list[Planned] = []
        for meter in fleet:
            energy, chance = streams[meter.meter_id]
            history = stored[meter.meter_id]
            state = meter.state
            imported, exported = interval_energy_j(
                meter, begin, end, energy.randint(85, 115), energy.randint(40, 100)
            )
            state.import_j += imported
            state.export_j += exported
            state.import_wh += state.import_j // J_PER_WH
            state.import_j %= J_PER_WH
            state.export_wh += state.export_j // J_PER_WH
            state.export_j %= J_PER_WH
            state.last_timestamp = end

            # One draw picks at most one of the faults that change the new reading itself.
            draw = chance.random()
            fault = NO_FAULT
            if draw < faults.bad_signature:
                fault = FaultKind.BAD_SIGNATURE.value
            elif draw < faults.bad_signature + faults.gap:
                fault = FaultKind.GAP.value
                state.next_seq += 1  # the skipped seq is never sent
            reading = Reading(
                chain_id=chain_id,
                meter_id=meter.raw_id,
                seq=state.next_seq,
                timestamp=end,
                import_wh=state.import_wh,
                export_wh=state.export_wh,
            )
            state.next_seq += 1
            canonical = reading.encode()
            signature = sign_reading(meter.key, reading)
            if fault == FaultKind.BAD_SIGNATURE:
                flipped = chance.randrange(len(signature))
                signature = (
                    signature[:flipped]
                    + bytes([signature[flipped] ^ 0xFF])
                    + signature[flipped + 1 :]
                )
                expected = Expectation("rejected", "bad_signature")
            else:
                expected = ACCEPTED
            planned.append(Planned(meter.meter_id, reading, canonical, signature, fault, expected))

            # Re-sends of earlier stored readings, drawn independently, sent after the new one.
            if chance.random() < faults.replay and history:
                old = history[chance.randrange(len(history))]
                planned.append(
                    Planned(
                        meter.meter_id,
                        old.reading,
                        old.canonical,
                        old.signature,
                        FaultKind.REPLAY.value,
                        DUPLICATE,
                    )
                )
            if chance.random() < faults.conflict and history:
                old = history[chance.randrange(len(history))]
                other = Reading(
                    chain_id=old.reading.chain_id,
                    meter_id=old.reading.meter_id,
                    seq=old.reading.seq,
                    timestamp=old.reading.timestamp,
                    import_wh=old.reading.import_wh,
                    export_wh=old.reading.export_wh,
                    status=old.reading.status ^ 1,
                )
                planned.append(
                    Planned(
                        meter.meter_id,
                        other,
                        other.encode(),
                        sign_reading(meter.key, other),
                        FaultKind.CONFLICT.value,
                        Expectation("rejected", "conflicting_reading"),
                    )
                )
            if expected is ACCEPTED:
                history.append(_Stored(reading, canonical, signature))
        yield planned


Send = Callable[[Sequence[Planned]], list[dict[str, Any]]]
"""Posts a batch and returns the gateway's results, one per submission, in order."""


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
    """One line on stderr, updated in place on a terminal, else a plain line every few seconds."""

    def __init__(self, stream: TextIO | None = None, *, every_s: float = 5.0) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._every_s = 0.1 if self._tty else every_s
        self._last = 0.0
        self._began = time.monotonic()

    def show(self, tally: Tally, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < self._every_s:
            return
        self._last = now
        elapsed = max(now - self._began, 1e-9)
        line = (
            f"sent {tally.sent}  accepted {tally.by_status['accepted']}  "
            f"duplicate {tally.by_status['duplicate']}  rejected {tally.by_status['rejected']}  "
            f"mismatches {tally.mismatches}  {tally.sent / elapsed:.0f} readings/s"
        )
        if self._tty:
            self._stream.write("\r\x1b[K" + line + ("\n" if final else ""))
        else:
            self._stream.write(line + "\n")
        self._stream.flush()


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
) -> dict[str, Any]:
    """Sends every tick's submissions in batches and tallies the answers.

    With `speed` > 0, tick k is sent no earlier than k * interval / speed real seconds after the
    first; with 0, as fast as the gateway answers (batches then span ticks). A tick is never sent
    before its readings' timestamp has come on the wall clock, so a simulation that runs into the
    present continues in real time instead of running ahead of the gateway's clock.
    """
    if batch_size < 1:
        raise SimulationError("the batch size must be at least 1")
    if speed < 0:
        raise SimulationError("the speed cannot be negative")
    tally = Tally()
    pending: list[Planned] = []
    began = clock()

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
        pending.extend(planned_tick)
        # Paced: each tick goes out on time. Flat out: only full batches, the rest waits.
        flush(whole_batches_only=speed == 0)
    flush()
    elapsed = clock() - began
    if progress is not None:
        progress.show(tally, final=True)
    summary = tally.summary()
    summary["elapsed_s"] = round(elapsed, 3)
    summary["readings_per_s"] = round(tally.sent / elapsed, 1) if elapsed > 0 else None
    return summary


class HttpSender:
    """`send` over one persistent HTTP/1.1 connection (standard library, keep-alive)."""

    def __init__(self, base_url: str, *, timeout_s: float = 120.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise SimulationError(f"gateway URL {base_url!r} is not http(s)://host[:port]")
        self._base = base_url
        self._path = parts.path.rstrip("/") + "/v1/readings"
        self._host = parts.hostname
        self._port = parts.port
        self._https = parts.scheme == "https"
        self._timeout_s = timeout_s
        self._connection: http.client.HTTPConnection | None = None

    def __call__(self, batch: Sequence[Planned]) -> list[dict[str, Any]]:
        body = json.dumps({"readings": [p.body() for p in batch]}).encode()
        headers = {"content-type": "application/json", "accept": "application/json"}
        for attempt in (1, 2):
            if self._connection is None:
                connection_type = (
                    http.client.HTTPSConnection if self._https else http.client.HTTPConnection
                )
                self._connection = connection_type(self._host, self._port, timeout=self._timeout_s)
            try:
                self._connection.request("POST", self._path, body, headers)
                response = self._connection.getresponse()
                data = response.read()
                break
            except (ConnectionError, http.client.HTTPException, OSError) as error:
                # A kept-alive connection the server closed: reconnect once. Re-sending is safe,
                # readings are idempotent by (meter, seq) -- but then they come back `duplicate`
                # and count as mismatches, which is what a lost answer deserves to show.
                self.close()
                if attempt == 2:
                    raise SimulationError(f"gateway {self._base} unreachable: {error}") from error
        if response.status != 202:
            raise SimulationError(
                f"gateway answered {response.status} to POST {self._path} with "
                f"{len(batch)} readings: {data[:500].decode(errors='replace')}"
            )
        try:
            results = json.loads(data)["results"]
        except (ValueError, KeyError, TypeError) as error:
            raise SimulationError(
                f"gateway answer is not a results object: {data[:200]!r}"
            ) from error
        if not isinstance(results, list):
            raise SimulationError("gateway answer's results is not a list")
        return results

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


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

    sender: HttpSender | None = None
    if send is None:
        sender = send = HttpSender(config.gateway)
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
        )
    finally:
        if sender is not None:
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
    return summary
