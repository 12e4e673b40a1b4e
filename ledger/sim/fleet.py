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
    runner.Tally                expected vs actual outcomes, by status, code and fault kind
    runner.run                  paces ticks by `speed`, sends batches through an injectable
                                `send(batch) -> results`, shows progress, returns the summary
    harness.HttpSender          `send` over one keep-alive `http.client` connection
    runner.simulate             what the CLI calls: register the fleet on the chain, then `run`

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

import random
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ledger.errors import LedgerError
from ledger.meters.keys import KeyAlgorithm, MeterPrivateKey, generate_key
from ledger.meters.registry import meter_id_bytes
from ledger.readings.native import Reading, sign_canonical, sign_reading

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
            signature = sign_canonical(meter.key, canonical)  # encoded once, above
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
