"""What the readings property draws, and how a drawn plan becomes signed readings.

A `Plan` holds where each meter's timeline starts and one to four requests of operations
(valid, forged, replayed, mutated, echoed: see test_readings_property.py). `Scenario` turns a
request's operations into the `Sent` readings of readings_model.py, signed by the meters'
keys or by forgers' keys, and carries each meter's timeline of valid readings from one
request to the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from cryptography.hazmat.primitives.asymmetric import utils
from hypothesis import strategies as st

from ledger.meters.keys import MeterPrivateKey
from ledger.readings.native import Reading, sign_reading
from tests.integration.readings_model import FIRST_SEQ_LIMIT, WORD, ModelRow, Sent, serial_id

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
UINT256_MAX = 2**256 - 1
DAY = 86_400

MAX_REQUESTS = 4
MAX_BATCH = 10
# Every valid reading and every forged or mutated "next" reading is at most one step past the
# previous valid one, so a meter's timeline never takes more steps than this in one example.
MAX_STEPS = MAX_REQUESTS * MAX_BATCH + 1
MAX_DT_S = 3_600
MAX_STEP_WH = 1_000_000
# Keys are valid from this long before the test starts. A timeline starts up to START_SPREAD_S
# after that, and even its longest run of steps ends before the test started, so valid readings
# are never in the future, whatever the chain's clock says.
START_SPREAD_S = 2 * DAY
HISTORY_S = START_SPREAD_S + MAX_STEPS * MAX_DT_S
FUTURE_MARGIN_S = 60

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


# --- plans: what Hypothesis draws --------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Where a meter's timeline starts: the (virtual) reading before its first valid one."""

    seq: int
    offset_s: int
    import_wh: int
    export_wh: int


@dataclass(frozen=True)
class Step:
    """From one reading of a timeline to the next."""

    dt_s: int
    d_import_wh: int
    d_export_wh: int
    status: int


@dataclass(frozen=True)
class FlipByte:
    """One byte XORed with `mask`, at `offset` modulo the length of the target."""

    target: Literal["canonical", "signature"]
    offset: int
    mask: int


@dataclass(frozen=True)
class ChangeField:
    """One field changed by `delta`, wrapping around in its range; always a different value.

    `meter_id` names another registered meter instead, in the bytes and in the body alike.
    """

    field: Literal["chain_id", "meter_id", "seq", "import_wh", "export_wh", "status"]
    delta: int


@dataclass(frozen=True)
class Retimed:
    """The timestamp moved `seconds` before the key's valid_from, into its past validity, or on
    past now + clock skew.

    The future case keeps FUTURE_MARGIN_S in hand, so a shrunk failing example still fails the
    same way when Hypothesis replays it minutes later.
    """

    when: Literal["before_key", "key_valid", "future"]
    seconds: int


@dataclass(frozen=True)
class Valid:
    meter: int
    step: Step
    hex_id: bool  # the body names the meter as 0x + its id in hex rather than by serial


@dataclass(frozen=True)
class Forged:
    meter: int
    step: Step
    forger: int
    of_stored: int | None  # None: a new reading; else which stored reading's bytes


@dataclass(frozen=True)
class Replayed:
    pick: int
    encoding: Literal["same", "der", "high_s"]


@dataclass(frozen=True)
class Mutated:
    meter: int
    step: Step
    of_stored: int | None
    mutation: FlipByte | ChangeField | Retimed


@dataclass(frozen=True)
class Echoed:
    pick: int


Op = Valid | Forged | Replayed | Mutated | Echoed


@dataclass(frozen=True)
class RequestPlan:
    ops: tuple[Op, ...]
    order: tuple[int, ...]  # the position of each op's reading in the request
    single: bool  # a one-reading request is sent as a bare object, not as {"readings": [...]}


@dataclass(frozen=True)
class Plan:
    starts: tuple[Start, ...]
    requests: tuple[RequestPlan, ...]


METERS = st.integers(0, 2)
PICKS = st.integers(0, 63)
STEPS = st.builds(
    Step,
    dt_s=st.integers(1, MAX_DT_S),
    d_import_wh=st.integers(0, MAX_STEP_WH),
    d_export_wh=st.integers(0, MAX_STEP_WH),
    status=st.integers(0, UINT32_MAX),
)
STARTS = st.builds(
    Start,
    seq=st.integers(0, FIRST_SEQ_LIMIT - 1 - MAX_STEPS),
    offset_s=st.integers(0, START_SPREAD_S),
    import_wh=st.integers(0, UINT64_MAX - MAX_STEPS * MAX_STEP_WH),
    export_wh=st.integers(0, UINT64_MAX - MAX_STEPS * MAX_STEP_WH),
)
DELTAS: dict[str, st.SearchStrategy[int]] = {
    "chain_id": st.integers(1, UINT256_MAX - 1),
    "meter_id": st.integers(1, 2),
    "seq": st.integers(1, UINT64_MAX),
    "import_wh": st.integers(1, UINT64_MAX),
    "export_wh": st.integers(1, UINT64_MAX),
    "status": st.integers(1, UINT32_MAX),
}
MUTATIONS = st.one_of(
    st.builds(
        FlipByte,
        target=st.sampled_from(["canonical", "signature"]),
        offset=st.integers(0, 8 * WORD - 1),
        mask=st.integers(1, 255),
    ),
    st.sampled_from(sorted(DELTAS)).flatmap(
        lambda field: st.builds(ChangeField, field=st.just(field), delta=DELTAS[field])
    ),
    st.builds(
        Retimed,
        when=st.sampled_from(["before_key", "key_valid", "future"]),
        seconds=st.integers(0, START_SPREAD_S),
    ),
)
OPS: st.SearchStrategy[Op] = st.one_of(
    st.builds(Valid, meter=METERS, step=STEPS, hex_id=st.booleans()),
    st.builds(
        Forged, meter=METERS, step=STEPS, forger=st.integers(0, 2), of_stored=st.none() | PICKS
    ),
    st.builds(Replayed, pick=PICKS, encoding=st.sampled_from(["same", "der", "high_s"])),
    st.builds(Mutated, meter=METERS, step=STEPS, of_stored=st.none() | PICKS, mutation=MUTATIONS),
    st.builds(Echoed, pick=PICKS),
)


@st.composite
def request_plans(draw: st.DrawFn) -> RequestPlan:
    ops = draw(st.lists(OPS, min_size=1, max_size=MAX_BATCH))
    order = draw(st.permutations(range(len(ops))))
    return RequestPlan(tuple(ops), tuple(order), draw(st.booleans()))


PLANS = st.builds(
    Plan,
    starts=st.tuples(STARTS, STARTS, STARTS),
    requests=st.lists(request_plans(), min_size=1, max_size=MAX_REQUESTS).map(tuple),
)


# --- turning plans into signed readings ---------------------------------------------------------


@dataclass(frozen=True)
class Meter:
    """A registered meter and the keys that may try to sign for it."""

    serial: str
    key: MeterPrivateKey = field(repr=False)
    order: int | None = field(repr=False)  # ECDSA group order, for (r, n - s); None: Ed25519
    valid_from: int
    forgers: tuple[MeterPrivateKey, ...] = field(default=(), repr=False)

    @property
    def meter_id(self) -> bytes:
        return serial_id(self.serial)


class Timeline:
    """A meter's valid readings: consecutive seqs, later times, registers that never decrease."""

    def __init__(self, meter: Meter, start: Start, chain_id: int) -> None:
        self._last = Reading(
            chain_id=chain_id,
            meter_id=meter.meter_id,
            seq=start.seq,
            timestamp=meter.valid_from + start.offset_s - 1,
            import_wh=start.import_wh,
            export_wh=start.export_wh,
        )

    def peek(self, step: Step) -> Reading:
        """The next valid reading, without moving on."""
        return replace(
            self._last,
            seq=self._last.seq + 1,
            timestamp=self._last.timestamp + step.dt_s,
            import_wh=self._last.import_wh + step.d_import_wh,
            export_wh=self._last.export_wh + step.d_export_wh,
            status=step.status,
        )

    def advance(self, step: Step) -> Reading:
        self._last = self.peek(step)
        return self._last


def flip(data: bytes, offset: int, mask: int) -> bytes:
    position = offset % len(data)
    return data[:position] + bytes([data[position] ^ mask]) + data[position + 1 :]


def changed(reading: Reading, change: ChangeField, meters: Sequence[Meter]) -> Reading:
    """The reading with one field changed; always a different reading."""
    if change.field == "chain_id":
        return replace(reading, chain_id=(reading.chain_id - 1 + change.delta) % UINT256_MAX + 1)
    if change.field == "meter_id":
        (index,) = (i for i, m in enumerate(meters) if m.meter_id == reading.meter_id)
        return replace(reading, meter_id=meters[(index + change.delta) % len(meters)].meter_id)
    if change.field == "status":
        return replace(reading, status=(reading.status + change.delta) % (UINT32_MAX + 1))
    wrapped = (getattr(reading, change.field) + change.delta) % (UINT64_MAX + 1)
    if change.field == "seq":
        return replace(reading, seq=wrapped)
    if change.field == "import_wh":
        return replace(reading, import_wh=wrapped)
    return replace(reading, export_wh=wrapped)


class Scenario:
    """Builds one example's requests from its plan; timelines carry over between requests."""

    def __init__(
        self, meters: Sequence[Meter], starts: Sequence[Start], *, chain_id: int, clock_skew_s: int
    ) -> None:
        self._meters = list(meters)
        self._by_id = {meter.meter_id: meter for meter in meters}
        self._timelines = [Timeline(m, s, chain_id) for m, s in zip(meters, starts, strict=True)]
        self._clock_skew_s = clock_skew_s
        self._now = 0

    def build(self, plan: RequestPlan, stored: Sequence[ModelRow], now: int) -> list[Sent]:
        """The request's readings, in the order they are sent.

        `stored` are the readings accepted by earlier requests: what replays, forgeries and
        mutations of stored readings pick from (an op with nothing to pick from is dropped).
        `now` is the wall clock, for readings meant to be too far in the future.
        """
        self._now = now
        built: list[tuple[int, Sent]] = []
        valid: list[Sent] = []
        for op, position in zip(plan.ops, plan.order, strict=True):
            sent = self._sent(op, stored, valid)
            if sent is not None:
                built.append((position, sent))
                if isinstance(op, Valid):
                    valid.append(sent)
        return [sent for _, sent in sorted(built, key=lambda item: item[0])]

    def _sent(self, op: Op, stored: Sequence[ModelRow], valid: Sequence[Sent]) -> Sent | None:
        if isinstance(op, Valid):
            meter = self._meters[op.meter]
            reading = self._timelines[op.meter].advance(op.step)
            claimed = "0x" + meter.meter_id.hex() if op.hex_id else meter.serial
            return Sent("valid", claimed, reading.encode(), sign_reading(meter.key, reading), True)
        if isinstance(op, Echoed):
            return replace(valid[op.pick % len(valid)], kind="echoed") if valid else None
        if isinstance(op, Replayed):
            if not stored:
                return None
            row = stored[op.pick % len(stored)]
            meter = self._by_id[row.fields.meter_id]
            signature = reencoded(row.signature, meter.order, op.encoding)
            return Sent("replayed", meter.serial, row.canonical, signature, genuine=True)
        base = self._base(op, stored)
        if base is None:
            return None
        meter = self._by_id[base.meter_id]
        if isinstance(op, Forged):
            forger = meter.forgers[op.forger]
            return Sent("forged", meter.serial, base.encode(), sign_reading(forger, base), False)
        signature = sign_reading(meter.key, base)
        if isinstance(op.mutation, FlipByte):
            canonical = base.encode()
            if op.mutation.target == "canonical":
                canonical = flip(canonical, op.mutation.offset, op.mutation.mask)
            else:
                signature = flip(signature, op.mutation.offset, op.mutation.mask)
            return Sent("mutated", meter.serial, canonical, signature, genuine=False)
        if isinstance(op.mutation, Retimed):
            other = replace(base, timestamp=self._retimed(meter, base, op.mutation))
        else:
            other = changed(base, op.mutation, self._meters)
        claimed = self._by_id[other.meter_id].serial
        return Sent("mutated", claimed, other.encode(), signature, genuine=False)

    def _retimed(self, meter: Meter, base: Reading, retimed: Retimed) -> int:
        if retimed.when == "before_key":
            return meter.valid_from - 1 - retimed.seconds
        if retimed.when == "future":
            return self._now + self._clock_skew_s + FUTURE_MARGIN_S + retimed.seconds
        timestamp = meter.valid_from + retimed.seconds
        return timestamp + 1 if timestamp == base.timestamp else timestamp

    def _base(self, op: Forged | Mutated, stored: Sequence[ModelRow]) -> Reading | None:
        """A forgery's or mutation's starting point: a new next reading, or a stored one."""
        if op.of_stored is None:
            return self._timelines[op.meter].peek(op.step)
        if not stored:
            return None
        fields = stored[op.of_stored % len(stored)].fields
        return Reading(
            chain_id=fields.chain_id,
            meter_id=fields.meter_id,
            seq=fields.seq,
            timestamp=fields.timestamp,
            import_wh=fields.import_wh,
            export_wh=fields.export_wh,
            status=fields.status,
        )


def reencoded(signature: bytes, order: int | None, encoding: str) -> bytes:
    """The same ECDSA signature in another accepted encoding (Ed25519: unchanged)."""
    if order is None or encoding == "same":
        return signature
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if encoding == "der":
        return utils.encode_dss_signature(r, s)
    return r.to_bytes(32, "big") + (order - s).to_bytes(32, "big")
