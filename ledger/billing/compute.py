"""The bill computation: pure functions from anchored readings, tariffs and settled trades.

`compute_bill(BillInputs) -> dict` gives the bill document (docs/bills.md, "Bill document v1").
Anyone holding the same inputs (the readings and trades are on record and anchored, the
tariffs' texts are public) computes the same document, byte for byte. docs/bills.md states every
rule; in short:

- Energy: consecutive anchored readings r0, r1 of a meter make an interval [t0, t1) with energy
  E = r1.register - r0.register (import and export apart). Cut at the segment boundaries and the
  period's ends inside it, part k gets floor(E * S_k / T) - floor(E * S_(k-1) / T) (S_k: seconds
  from t0 to the end of part k, T = t1 - t0); parts outside the period are dropped. Because the
  parts are differences of one cumulative function, the energy of any piece [a, b) of time is
  C(b) - C(a) with C(x) = r0.register + floor(E * (x - t0) / T) on the interval holding x: one
  bisection per segment boundary instead of a loop over readings (a month of 15-minute readings
  has ~3,000 intervals but only ~120 band segments).
- A seq jump (readings not anchored) makes the interval's parts estimated
  (`gap_pro_rata_by_seconds`); seconds before the first or after the last reading are estimated
  at the meter's average rate in the period (`average_rate`); a meter with no interval in the
  period gets one zero line (`no_readings`).
- P2P: trades net their delivered Wh out of grid import (buyer) / export (seller) in the bands
  of their slot, shortfalls taken from the tariff's other bands in the order peak, flat, valley.
- Amounts: quantity * unit price / 1000 rounded by the tariff's rule, in exact integers.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, NamedTuple

from ledger.anchoring.merkle import keccak256
from ledger.billing.document import BILL_FORMAT
from ledger.billing.tariff import BANDS, Tariff
from ledger.billing.timeline import Assignment, Timeline, timeline
from ledger.errors import LedgerError

WH_PER_KWH = 1000
KINDS = ("grid_import", "feed_in", "p2p_purchase", "p2p_sale", "fixed_daily")
"""Line kinds, in line order."""
ESTIMATE_RULES = ("gap_pro_rata_by_seconds", "average_rate", "no_readings")

# Where a band's energy came from; also the order netting takes it in (measured first).
MEASURED, GAP, AVERAGE = 0, 1, 2
_SOURCES = (MEASURED, GAP, AVERAGE)
_RULE_OF_SOURCE: tuple[str | None, ...] = (None, "gap_pro_rata_by_seconds", "average_rate")
_KIND_ORDER = {kind: index for index, kind in enumerate(KINDS)}
_BAND_ORDER: dict[str | None, int] = {band: index for index, band in enumerate(BANDS)}
_BAND_ORDER[None] = len(BANDS)


class BillInputError(LedgerError):
    """Inputs a bill cannot be computed from (readings out of order, a trade of another
    customer's meters, an address that is not one ...)."""

    code = "invalid_bill_inputs"
    http_status = 422


class TariffCurrencyMismatch(BillInputError):
    """A tariff priced in another currency or with other decimals than the settlement token."""

    code = "tariff_currency_mismatch"
    http_status = 409


class BillReading(NamedTuple):
    """One anchored reading of a meter: cumulative import/export registers in Wh.

    A named tuple rather than a frozen dataclass: a month's bill is built from about 3,000 of
    them per meter, and a tuple is made three times faster."""

    meter_id: bytes
    seq: int
    timestamp: int
    import_wh: int
    export_wh: int
    batch_id: int


class MeterReadings:
    """One meter's anchored readings as columns, by seq: what the store hands over for a
    meter-month (about 3,000 readings) without making an object per reading. Indexing gives a
    `BillReading`; the computation reads the columns and only a few dozen rows."""

    __slots__ = ("batch_ids", "exports", "imports", "meter_id", "seqs", "timestamps")

    def __init__(
        self,
        meter_id: bytes,
        seqs: Sequence[int],
        timestamps: Sequence[int],
        imports: Sequence[int],
        exports: Sequence[int],
        batch_ids: Sequence[int],
    ) -> None:
        self.meter_id = meter_id
        self.seqs = seqs
        self.timestamps = timestamps
        self.imports = imports
        self.exports = exports
        self.batch_ids = batch_ids

    @classmethod
    def of(cls, meter_id: bytes, readings: Sequence[BillReading]) -> MeterReadings:
        """The columns of `readings`, which must all be `meter_id`'s."""
        # list.count compares the same bytes object by identity first: one C-level pass.
        if [r.meter_id for r in readings].count(meter_id) != len(readings):
            raise BillInputError(f"readings of meter {_hex(meter_id)} include another meter's")
        return cls(
            meter_id,
            [r.seq for r in readings],
            [r.timestamp for r in readings],
            [r.import_wh for r in readings],
            [r.export_wh for r in readings],
            [r.batch_id for r in readings],
        )

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, index: int) -> BillReading:
        return BillReading(
            self.meter_id,
            self.seqs[index],
            self.timestamps[index],
            self.imports[index],
            self.exports[index],
            self.batch_ids[index],
        )


@dataclass(frozen=True, slots=True)
class SettledTrade:
    """A P2P trade settled on chain: `delivered_wh` and `paid` (minor units) from settlement."""

    trade_id: int
    seller_meter: bytes
    buyer_meter: bytes
    slot_start: int
    slot_end: int
    delivered_wh: int
    paid: int


@dataclass(frozen=True)
class BillInputs:
    """Everything one bill is computed from.

    `readings[meter]`: that meter's anchored readings sorted by seq (a list of `BillReading`, or
    the same as `MeterReadings` columns), from the last one at or before `period_start` to the
    first one at or after `period_end` (all of them where those do not exist). `assignments`:
    the customer's, sorted by valid_from. `currency`: the settlement token's (symbol, decimals).
    """

    chain_id: int
    bill_registry: str
    customer: str
    period_start: int
    period_end: int
    period_label: str | None
    meters: tuple[bytes, ...]
    readings: Mapping[bytes, Sequence[BillReading] | MeterReadings]
    tariffs: Mapping[bytes, Tariff]
    assignments: Sequence[Assignment]
    trades: Sequence[SettledTrade]
    pending_trades: Sequence[int]
    replaces: bytes | None
    currency: tuple[str, int]


def compute_bill(inputs: BillInputs) -> dict[str, Any]:
    """The bill document (JSON-ready, canonical_json gives its bytes) for `inputs`.

    Raises `NoTariffError` (a second of the period without a tariff), `TariffCurrencyMismatch`
    (a tariff in force not priced in the settlement token) or `BillInputError` (inputs out of
    order or naming another customer's meters).
    """
    start, end = inputs.period_start, inputs.period_end
    line_up = timeline(start, end, inputs.assignments, inputs.tariffs)
    tariffs = {h: inputs.tariffs[h] for h in line_up.tariff_hashes}
    _check_currency(tariffs, inputs.currency)
    meters = _checked_meters(inputs.meters)
    trades = _checked_trades(inputs.trades, meters, start, end)

    energies = {
        meter: _meter_energy(meter, inputs.readings.get(meter, ()), line_up) for meter in meters
    }
    for trade in trades:
        if trade.buyer_meter in energies:
            _net(energies[trade.buyer_meter].imports, trade, line_up)
        if trade.seller_meter in energies:
            _net(energies[trade.seller_meter].exports, trade, line_up)

    lines: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    without_p2p = 0
    for meter, energy in energies.items():
        without_p2p += _energy_lines(meter, energy, line_up, tariffs, lines)
    for tariff_hash in line_up.tariff_hashes:
        days = len(line_up.day_starts[tariff_hash])
        if days:
            fixed = _fixed_daily_line(tariffs[tariff_hash], days)
            lines.append((_order(fixed, 0, b""), fixed))
            without_p2p += fixed["amount_minor"]
    for trade in trades:
        if trade.buyer_meter in energies:
            line = _p2p_line("p2p_purchase", trade, trade.paid)
            lines.append((_order(line, trade.trade_id, trade.buyer_meter), line))
        if trade.seller_meter in energies:
            line = _p2p_line("p2p_sale", trade, -trade.paid)
            lines.append((_order(line, trade.trade_id, trade.seller_meter), line))
    lines.sort(key=lambda keyed: keyed[0])
    ordered = [line for _, line in lines]

    total = sum(line["amount_minor"] for line in ordered)
    p2p_settled = sum(
        line["amount_minor"] for line in ordered if line["kind"] in ("p2p_purchase", "p2p_sale")
    )
    return {
        "format": BILL_FORMAT,
        "chain_id": _plain_int(inputs.chain_id, "chain_id"),
        "bill_registry": _address(inputs.bill_registry, "bill_registry"),
        "customer": _address(inputs.customer, "customer"),
        "period": {"start": start, "end": end, "label": inputs.period_label},
        "currency": {"code": inputs.currency[0], "decimals": inputs.currency[1]},
        "tariffs": sorted(_hex(h) for h in line_up.tariff_hashes),
        "meters": sorted(_hex(m) for m in meters),
        "reading_batches": sorted(
            [_hex(meter), first, last, batch]
            for meter, energy in energies.items()
            for first, last, batch in energy.batches
        ),
        "lines": ordered,
        "total_minor": total,
        "p2p_settled_minor": p2p_settled,
        "amount_due_minor": total - p2p_settled,
        "without_p2p_total_minor": without_p2p,
        "pending_trades": sorted({_plain_int(t, "pending_trades") for t in inputs.pending_trades}),
        "replaces": None if inputs.replaces is None else _bytes32(inputs.replaces, "replaces"),
    }


def round_minor(numerator: int, denominator: int, rule: str) -> int:
    """numerator / denominator (denominator > 0) rounded to an integer by `rule`, exactly.

    `half_even`: nearest, ties to the even neighbour; `half_up`: nearest, ties away from zero;
    `down`: toward zero. Each rule is symmetric around zero (round(-x) == -round(x)), so a
    credit rounds like the charge of the same size.
    """
    magnitude, remainder = divmod(abs(numerator), denominator)
    if rule == "half_even":
        if 2 * remainder > denominator or (2 * remainder == denominator and magnitude % 2):
            magnitude += 1
    elif rule == "half_up":
        if 2 * remainder >= denominator:
            magnitude += 1
    elif rule != "down":
        raise ValueError(f"unknown rounding rule {rule!r}")
    return -magnitude if numerator < 0 else magnitude


def line_amount(quantity_wh: int, unit_price_minor_per_kwh: int, rule: str) -> int:
    """A Wh line's amount: quantity * unit price / 1000, rounded by the tariff's rule."""
    return round_minor(quantity_wh * unit_price_minor_per_kwh, WH_PER_KWH, rule)


# --- one meter's energy per band ----------------------------------------------------------------

Key = tuple[int, int]
"""(group, source): a band of a tariff (`Timeline.group_keys`) and where its energy came from."""


@dataclass
class _Side:
    """One register (import or export) of one meter: Wh per (group, source), before netting
    (`measured`) and after (`billed`), with the Wh each trade netted out of it."""

    measured: dict[Key, int] = field(default_factory=dict)
    billed: dict[Key, int] = field(default_factory=dict)
    netted: dict[Key, dict[int, int]] = field(default_factory=dict)

    def add(self, key: Key, wh: int) -> None:
        self.measured[key] = self.measured.get(key, 0) + wh


@dataclass
class _MeterEnergy:
    imports: _Side
    exports: _Side
    evidence: dict[Key, list[list[int]]]
    """Seq runs [first, last] of the readings behind each (group, source); its keys are the
    lines the meter has (a line exists where time was assigned to it, even at 0 Wh)."""
    no_readings: list[list[int]] | None
    """Set when the meter has no interval of positive length in the period: its evidence."""
    batches: list[tuple[int, int, int]]
    """Every reading used, as (first_seq, last_seq, batch_id) runs."""


def _meter_energy(
    meter: bytes, given: Sequence[BillReading] | MeterReadings, line_up: Timeline
) -> _MeterEnergy:
    start, end = line_up.period_start, line_up.period_end
    readings = _checked_readings(meter, given)
    ts, seqs = readings.timestamps, readings.seqs
    energy = _MeterEnergy(_Side(), _Side(), {}, None, [])
    n = len(readings)
    first_interval = last_interval = 0
    if n >= 2:
        first_interval = _first_interval_at_or_after(ts, start, 0, n)
        last_interval = min(n - 2, bisect_left(ts, end) - 1)
    if n < 2 or first_interval > last_interval:
        # No interval touches the period: one zero line, citing the reading nearest to it.
        if n:
            nearest = n - 1 if ts[-1] < end else 0
            energy.no_readings = [[seqs[nearest], seqs[nearest]]]
            energy.batches = [(seqs[nearest], seqs[nearest], readings[nearest].batch_id)]
        else:
            energy.no_readings = []
        return energy

    u0, u1 = first_interval, last_interval + 1  # the readings used: u0..u1
    first_t, last_t = ts[u0], ts[u1]
    gaps: list[int] = []  # intervals i (readings i, i+1) across a seq jump
    if seqs[u1] - seqs[u0] != u1 - u0:
        gaps = [i for i in range(u0, u1) if seqs[i + 1] != seqs[i] + 1]
    used_runs = _runs_without_gaps(u0, u1, gaps, seqs)
    energy.batches = _batch_runs(readings, u0, u1, gaps)

    def interpolated(x: int, at: int) -> tuple[int, int]:
        """C(x) for first_t <= x <= last_t, the registers' split-rule value at instant x
        (`at` = bisect_left(ts, x))."""
        later = readings[at]
        if later.timestamp == x:  # the first reading at x: same-instant energy lies after x
            return later.import_wh, later.export_wh
        earlier = readings[at - 1]
        elapsed, span = x - earlier.timestamp, later.timestamp - earlier.timestamp
        return (
            earlier.import_wh + (later.import_wh - earlier.import_wh) * elapsed // span,
            earlier.export_wh + (later.export_wh - earlier.export_wh) * elapsed // span,
        )

    # The registers' values at the period's ends, clipped to the readings' span [first_t, last_t]
    # (same-instant readings at last_t < end count, those at end belong to the next period).
    first, last = readings[u0], readings[u1]
    low = (first.import_wh, first.export_wh)
    if first_t < start:
        low = interpolated(start, bisect_left(ts, start, u0, u1 + 1))
    high = (last.import_wh, last.export_wh)
    if last_t >= end:
        high = interpolated(end, bisect_left(ts, end, u0, u1 + 1))

    def value_at(x: int, at: int) -> tuple[int, int]:
        if x <= first_t:
            return low
        if x > last_t:
            return high
        return interpolated(x, at)

    # Each segment's energy from the readings (measured and gap parts together), per group.
    # One bisection per segment boundary serves the energy and the evidence on both sides.
    starts, ends, groups = line_up.starts, line_up.ends, line_up.groups
    group_count = len(line_up.group_keys)
    group_import = [0] * group_count
    group_export = [0] * group_count
    measured_runs: dict[int, list[list[int]]] = {}
    segment_count = len(starts)
    k_first = max(0, bisect_right(starts, max(first_t, start)) - 1)
    k_last = bisect_right(starts, last_t) - 1 if last_t < end else segment_count - 1
    before = low
    at = bisect_left(ts, starts[k_first], u0, u1 + 1)
    for k in range(k_first, k_last + 1):
        group = groups[k]
        # The intervals with a part in [a, b): from the one holding a (or a same-instant pair
        # at a) to the last one starting before b.
        i_lo = at if at <= u1 and ts[at] == starts[k] else max(at - 1, u0)
        b = ends[k]
        at = bisect_left(ts, b, u0, u1 + 1)
        after = value_at(b, at) if k + 1 < segment_count else high
        group_import[group] += after[0] - before[0]
        group_export[group] += after[1] - before[1]
        before = after
        i_hi = min(u1 - 1, at - 1)
        if i_lo > i_hi:
            continue
        runs = measured_runs.setdefault(group, [])
        if not gaps:
            _add_run(runs, seqs[i_lo], seqs[i_hi + 1])
        else:
            for x, y in _measured_interval_runs(i_lo, i_hi, gaps):
                _add_run(runs, seqs[x], seqs[y + 1])
    for group, runs in measured_runs.items():
        if runs:
            key = (group, MEASURED)
            energy.evidence[key] = runs
            energy.imports.measured[key] = group_import[group]
            energy.exports.measured[key] = group_export[group]

    # Gap intervals: their parts move from measured to estimated.
    for i in gaps:
        r0, r1 = readings[i], readings[i + 1]
        d_import, d_export = r1.import_wh - r0.import_wh, r1.export_wh - r0.export_wh
        for k, part_import, part_export in _split(
            r0.timestamp, r1.timestamp, d_import, d_export, line_up
        ):
            key = (groups[k], MEASURED)
            if key in energy.evidence:
                energy.imports.add(key, -part_import)
                energy.exports.add(key, -part_export)
            key = (groups[k], GAP)
            energy.imports.add(key, part_import)
            energy.exports.add(key, part_export)
            runs = energy.evidence.setdefault(key, [])
            _add_run(runs, seqs[i], seqs[i])
            _add_run(runs, seqs[i + 1], seqs[i + 1])

    covered = min(last_t, end) - max(first_t, start)
    if covered <= 0:
        # Only same-instant readings in the period: no rate to estimate the rest with.
        energy.no_readings = used_runs
    else:
        rate_import, rate_export = high[0] - low[0], high[1] - low[1]
        missing = []
        if first_t > start:
            missing.append((start, first_t))
        if last_t < end:
            missing.append((last_t, end))
        for t0, t1 in missing:
            estimate_import = rate_import * (t1 - t0) // covered
            estimate_export = rate_export * (t1 - t0) // covered
            for k, part_import, part_export in _split(
                t0, t1, estimate_import, estimate_export, line_up
            ):
                key = (groups[k], AVERAGE)
                energy.imports.add(key, part_import)
                energy.exports.add(key, part_export)
                runs = energy.evidence.setdefault(key, [])
                if not runs:
                    runs.extend(list(run) for run in used_runs)
    for side in (energy.imports, energy.exports):
        for key in energy.evidence:
            side.measured.setdefault(key, 0)
        side.billed = dict(side.measured)
    return energy


def _first_interval_at_or_after(ts: Sequence[int], x: int, lo: int, hi: int) -> int:
    """The first interval i (readings i, i+1) with a part at or after instant x: the one
    holding x, or the first same-instant pair at x (its energy belongs to x's segment)."""
    at = bisect_left(ts, x, lo, hi)
    if at < hi and ts[at] == x:
        return at
    return max(at - 1, lo)


def _measured_interval_runs(i_lo: int, i_hi: int, gaps: list[int]) -> Iterable[tuple[int, int]]:
    """Maximal runs [x, y] of intervals in i_lo..i_hi that are not gaps."""
    if not gaps:
        yield i_lo, i_hi
        return
    x = i_lo
    for g in gaps[bisect_left(gaps, i_lo) : bisect_right(gaps, i_hi)]:
        if g > x:
            yield x, g - 1
        x = g + 1
    if x <= i_hi:
        yield x, i_hi


def _runs_without_gaps(u0: int, u1: int, gaps: list[int], seqs: Sequence[int]) -> list[list[int]]:
    """Seq runs of readings u0..u1, split where the seq jumps."""
    runs: list[list[int]] = []
    x = u0
    for g in gaps:
        runs.append([seqs[x], seqs[g]])
        x = g + 1
    runs.append([seqs[x], seqs[u1]])
    return runs


def _batch_runs(
    readings: MeterReadings, u0: int, u1: int, gaps: list[int]
) -> list[tuple[int, int, int]]:
    """Readings u0..u1 as (first_seq, last_seq, batch_id) runs of consecutive seqs and one batch."""
    batches = list(readings.batch_ids[u0 : u1 + 1])
    seqs = readings.seqs
    ascending = batches == sorted(batches)  # the usual case: later seqs in later batches
    runs: list[tuple[int, int, int]] = []
    cuts = [0] + [g + 1 - u0 for g in gaps] + [len(batches)]
    for lo, hi in zip(cuts, cuts[1:], strict=False):
        index = lo
        while index < hi:
            batch = batches[index]
            if ascending:
                after = bisect_right(batches, batch, index, hi)
            else:
                after = index + 1
                while after < hi and batches[after] == batch:
                    after += 1
            runs.append((seqs[u0 + index], seqs[u0 + after - 1], batch))
            index = after
    return runs


def _add_run(runs: list[list[int]], first: int, last: int) -> None:
    """Append seqs first..last to ascending runs, merging with the last run where they touch."""
    if runs and first <= runs[-1][1] + 1:
        if last > runs[-1][1]:
            runs[-1][1] = last
    else:
        runs.append([first, last])


def _split(
    t0: int, t1: int, energy_a: int, energy_b: int, line_up: Timeline
) -> list[tuple[int, int, int]]:
    """The split rule: (segment, part of energy_a, part of energy_b) for [t0, t1) in the period.

    Part k = floor(E * S_k / T) - floor(E * S_(k-1) / T), S_k the seconds from t0 to the end of
    part k; parts outside the period are dropped. With t1 == t0 all goes to t0's segment.
    """
    start, end = line_up.period_start, line_up.period_end
    starts, ends = line_up.starts, line_up.ends
    if t1 <= t0:
        if start <= t0 < end:
            return [(bisect_right(starts, t0) - 1, energy_a, energy_b)]
        return []
    lo, hi = max(t0, start), min(t1, end)
    if lo >= hi:
        return []
    span = t1 - t0
    parts = []
    k = bisect_right(starts, lo) - 1
    done_a = energy_a * (lo - t0) // span
    done_b = energy_b * (lo - t0) // span
    while k < len(starts) and starts[k] < hi:
        elapsed = min(ends[k], hi) - t0
        upto_a, upto_b = energy_a * elapsed // span, energy_b * elapsed // span
        parts.append((k, upto_a - done_a, upto_b - done_b))
        done_a, done_b = upto_a, upto_b
        k += 1
    return parts


# --- P2P netting --------------------------------------------------------------------------------


def _net(side: _Side, trade: SettledTrade, line_up: Timeline) -> None:
    """Remove the trade's delivered Wh from the side's grid Wh in the bands of its slot.

    The Wh are split over the slot (cut at the period end) by the split rule; each band's share
    is taken from that band (measured, then gap-, then average-estimated Wh), and what the band
    does not have from the tariff's other bands in the order peak, flat, valley. Wh that no
    band of the tariff has left are not netted.
    """
    slot_end = min(trade.slot_end, line_up.period_end)
    shares = _split(trade.slot_start, slot_end, trade.delivered_wh, 0, line_up)
    for k, share, _ in shares:
        group = line_up.groups[k]
        rest = _take(side, group, share, trade.trade_id)
        if rest:
            tariff_hash = line_up.group_keys[group][0]
            for other in _groups_of_tariff(line_up, tariff_hash):
                if other != group:
                    rest = _take(side, other, rest, trade.trade_id)
                    if not rest:
                        break


def _take(side: _Side, group: int, wanted: int, trade_id: int) -> int:
    """Take up to `wanted` Wh from the group's billed Wh; returns what is still wanted."""
    for source in _SOURCES:
        key = (group, source)
        available = side.billed.get(key, 0)
        if available > 0 and wanted > 0:
            taken = min(available, wanted)
            side.billed[key] = available - taken
            by_trade = side.netted.setdefault(key, {})
            by_trade[trade_id] = by_trade.get(trade_id, 0) + taken
            wanted -= taken
    return wanted


def _groups_of_tariff(line_up: Timeline, tariff_hash: bytes) -> list[int]:
    """The tariff's groups (bands with time in the period) in the order peak, flat, valley."""
    found = [g for g, (h, _) in enumerate(line_up.group_keys) if h == tariff_hash]
    return sorted(found, key=lambda g: _BAND_ORDER[line_up.group_keys[g][1]])


# --- lines ---------------------------------------------------------------------------------------


def _energy_lines(
    meter: bytes,
    energy: _MeterEnergy,
    line_up: Timeline,
    tariffs: Mapping[bytes, Tariff],
    lines: list[tuple[tuple[Any, ...], dict[str, Any]]],
) -> int:
    """Append the meter's grid_import and feed_in lines; returns their total without P2P."""
    meter_hex = _hex(meter)
    without_p2p = 0
    line: dict[str, Any]
    if energy.no_readings is not None:
        line = {
            "kind": "grid_import",
            "band": None,
            "tariff": None,
            "quantity": 0,
            "unit": "Wh",
            "unit_price_minor": None,
            "price_per": None,
            "amount_minor": 0,
            "estimated": True,
            "estimate_rule": "no_readings",
            "evidence": {
                "readings": [[meter_hex, first, last] for first, last in energy.no_readings],
                "trades": [],
            },
        }
        lines.append((_order(line, 0, meter), line))
    for key, runs in energy.evidence.items():
        group, source = key
        tariff_hash, band = line_up.group_keys[group]
        tariff = tariffs[tariff_hash]
        readings: list[Any] = [[meter_hex, first, last] for first, last in runs]
        sides = [("grid_import", energy.imports, tariff.price(band))]
        if energy.exports.measured[key]:
            sides.append(("feed_in", energy.exports, -tariff.feed_in_minor_per_kwh))
        for kind, side, price in sides:
            trades: list[int] = sorted(side.netted.get(key, {}))
            line = {
                "kind": kind,
                "band": band,
                "tariff": _hex(tariff_hash),
                "quantity": side.billed[key],
                "unit": "Wh",
                "unit_price_minor": price,
                "price_per": "kWh",
                "amount_minor": line_amount(side.billed[key], price, tariff.rounding),
                "estimated": source != MEASURED,
                "estimate_rule": _RULE_OF_SOURCE[source],
                "evidence": {
                    "readings": readings,
                    "trades": trades,
                },
            }
            lines.append((_order(line, 0, meter), line))
            without_p2p += line_amount(side.measured[key], price, tariff.rounding)
    return without_p2p


def _fixed_daily_line(tariff: Tariff, days: int) -> dict[str, Any]:
    return {
        "kind": "fixed_daily",
        "band": None,
        "tariff": _hex(tariff.hash),
        "quantity": days,
        "unit": "day",
        "unit_price_minor": tariff.fixed_daily_minor,
        "price_per": "day",
        "amount_minor": days * tariff.fixed_daily_minor,
        "estimated": False,
        "estimate_rule": None,
        "evidence": {"readings": [], "trades": []},
    }


def _p2p_line(kind: str, trade: SettledTrade, amount: int) -> dict[str, Any]:
    return {
        "kind": kind,
        "band": None,
        "tariff": None,
        "quantity": trade.delivered_wh,
        "unit": "Wh",
        "unit_price_minor": None,
        "price_per": None,
        "amount_minor": amount,
        "estimated": False,
        "estimate_rule": None,
        "evidence": {"readings": [], "trades": [trade.trade_id]},
    }


def _order(line: Mapping[str, Any], trade_id: int, meter: bytes) -> tuple[Any, ...]:
    """Line order: kind, tariff hash, band (peak, flat, valley, none), estimated (false first),
    estimate rule (none first, then by name), trade id, meter."""
    return (
        _KIND_ORDER[line["kind"]],
        line["tariff"] or "",
        _BAND_ORDER[line["band"]],
        line["estimated"],
        line["estimate_rule"] or "",
        trade_id,
        meter,
    )


# --- input checks -------------------------------------------------------------------------------


def _check_currency(tariffs: Mapping[bytes, Tariff], currency: tuple[str, int]) -> None:
    for tariff in tariffs.values():
        if (tariff.currency, tariff.decimals) != tuple(currency):
            raise TariffCurrencyMismatch(
                f"tariff 0x{tariff.hash.hex()} is priced in {tariff.currency} with "
                f"{tariff.decimals} decimals; the settlement token is {currency[0]} with "
                f"{currency[1]} decimals"
            )


def _checked_meters(meters: Sequence[bytes]) -> list[bytes]:
    for meter in meters:
        _bytes32(meter, "meters")
    if len(set(meters)) != len(meters):
        raise BillInputError("a meter is listed twice in the bill's meters")
    return sorted(meters)


def _checked_trades(
    trades: Sequence[SettledTrade], meters: Sequence[bytes], start: int, end: int
) -> list[SettledTrade]:
    owned = set(meters)
    seen: set[int] = set()
    for trade in trades:
        what = f"trade {trade.trade_id}"
        if trade.trade_id in seen:
            raise BillInputError(f"{what} is listed twice")
        seen.add(trade.trade_id)
        if trade.buyer_meter not in owned and trade.seller_meter not in owned:
            raise BillInputError(f"{what} is between meters that are not the customer's")
        if not start <= trade.slot_start < end:
            raise BillInputError(f"{what}: slot start {trade.slot_start} is not in the period")
        if trade.delivered_wh < 0 or trade.paid < 0:
            raise BillInputError(f"{what}: delivered Wh and paid must not be negative")
    return sorted(trades, key=attrgetter("trade_id"))


def _checked_readings(
    meter: bytes, readings: Sequence[BillReading] | MeterReadings
) -> MeterReadings:
    """The readings as columns, after checking they are the meter's and in order."""
    if not isinstance(readings, MeterReadings):
        readings = MeterReadings.of(meter, readings)
    elif readings.meter_id != meter:
        raise BillInputError(f"readings of meter {_hex(meter)} include another meter's")
    seqs, ts = readings.seqs, readings.timestamps
    columns = (seqs, ts, readings.imports, readings.exports, readings.batch_ids)
    if len({len(column) for column in columns}) != 1:
        raise BillInputError(f"readings of meter {_hex(meter)}: columns of unequal length")
    # Linear C-level checks (sorted() of sorted input is one pass): ~0.1 ms for a month of
    # 15-minute readings.
    if list(seqs) != sorted(seqs) or len(set(seqs)) != len(seqs):
        raise BillInputError(f"readings of meter {_hex(meter)} are not in ascending seq order")
    if list(ts) != sorted(ts):
        raise BillInputError(f"readings of meter {_hex(meter)} go back in time")
    return readings


_HEX_ADDRESS = re.compile(r"(?:0[xX])?[0-9a-fA-F]{40}")


def _address(value: str, name: str) -> str:
    """`value` in its EIP-55 checksum form: 40 hex digits, `0x` optional, all lower or all upper
    case, or mixed case only as a valid checksum (a wrong one is a mistyped address). Done here
    rather than with eth_utils, whose import takes about a third of a second in every
    bill-computing worker."""
    if not isinstance(value, str) or not _HEX_ADDRESS.fullmatch(value):
        raise BillInputError(f"{name} is not an address: {value!r}")
    digits = value[-40:]
    lower = digits.lower()
    nibbles = keccak256(lower.encode("ascii")).hex()
    checksummed = "".join(
        c.upper() if n >= "8" else c for c, n in zip(lower, nibbles, strict=False)
    )
    if digits not in (lower, digits.upper(), checksummed):
        raise BillInputError(f"{name} is not an address (bad checksum): {value!r}")
    return "0x" + checksummed


def _bytes32(value: bytes, name: str) -> str:
    if not isinstance(value, bytes) or len(value) != 32:
        raise BillInputError(f"{name}: {value!r} is not 32 bytes")
    return _hex(value)


def _plain_int(value: int, name: str) -> int:
    if type(value) is not int:
        raise BillInputError(f"{name}: {value!r} is not an integer")
    return value


def _hex(value: bytes) -> str:
    return "0x" + value.hex()
