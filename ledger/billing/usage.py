"""Consumption per interval: a meter's cumulative registers turned into Wh per hour, day, week or
month of a time zone, by the same rules a bill applies (docs/usage.md).

Pure functions over one meter's readings (`MeterReadings` columns, sorted by seq), like the bill
computation in `compute.py`, so the intervals of a bill's period add up to the Wh its grid lines
were computed from (before P2P netting):

- Between consecutive readings r0, r1 the registers grow linearly: the energy of any piece
  [a, b) of time is C(b) - C(a) with C(x) = r0.register + floor(E * (x - t0) / T), the bill's
  split rule. An interval across a seq jump (readings missing) is estimated
  (`gap_pro_rata_by_seconds`).
- Seconds of the period before the first reading or after the last one are estimated at the
  meter's average rate over the covered part of the period (`average_rate`), split over time
  the same way; a meter without an interval of positive length in the period has zero Wh,
  flagged `no_readings`.

Each interval carries its total Wh and the estimated part of them, with the rules used, so a
chart can show estimated Wh apart and a client can tell a measured hour from a guessed one.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledger.billing.compute import BillInputError, MeterReadings
from ledger.billing.timeline import PeriodError

GroupBy = Literal["hour", "day", "week", "month"]
GROUPS: tuple[GroupBy, ...] = get_args(GroupBy)
STEP_S = 900
"""Every real UTC offset is a multiple of 15 minutes: local hours start on multiples of this."""


DAY_S = 24 * 3600
MAX_CONSUMPTION_PERIOD_S = 367 * DAY_S
"""Longest period of a consumption query: a year (and a day for a DST change)."""
MAX_EXPORT_PERIOD_S = 93 * DAY_S
"""Longest period of an export: a quarter (a month of 15-minute readings with their proofs is
about 3 MB of JSON)."""


class PeriodTooLong(PeriodError):
    """A consumption query or export over more time than it may cover in one request."""

    code = "period_too_long"
    http_status = 422


def check_period(period_start: int, period_end: int, longest_s: int) -> None:
    """Refuses an empty period (PeriodError) and one longer than `longest_s` (PeriodTooLong)."""
    if period_start >= period_end:
        raise PeriodError(f"period [{period_start}, {period_end}) is empty")
    if period_end - period_start > longest_s:
        raise PeriodTooLong(
            f"period [{period_start}, {period_end}) is longer than {longest_s // DAY_S} days"
        )


@dataclass(frozen=True, slots=True)
class Interval:
    """Consumption of one interval `[start, end)` (Unix seconds), in Wh.

    `import_wh`/`export_wh` are the totals; `estimated_import_wh`/`estimated_export_wh` the part
    of them estimated by `estimate_rules` (empty when every second was measured)."""

    start: int
    end: int
    import_wh: int
    export_wh: int
    estimated_import_wh: int
    estimated_export_wh: int
    estimate_rules: tuple[str, ...]

    @property
    def estimated(self) -> bool:
        return bool(self.estimate_rules)


def zone_of(time_zone: str) -> ZoneInfo:
    """The IANA zone named `time_zone`; PeriodError when there is none."""
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise PeriodError(f"time zone {time_zone!r} is not a known IANA zone") from None


def interval_bounds(
    period_start: int, period_end: int, group_by: GroupBy, time_zone: str
) -> list[int]:
    """`[period_start, b1, ..., period_end]`: the period cut at every local hour, day, week
    (Monday) or month start of `time_zone`; the first and last intervals may be partial.

    A DST change gives a local day of 23 or 25 hours, and the repeated local hour of an autumn
    night two hour intervals (one per UTC offset).
    """
    if group_by not in GROUPS:
        raise PeriodError(f"group_by {group_by!r} is not one of {', '.join(GROUPS)}")
    if period_start >= period_end:
        raise PeriodError(f"period [{period_start}, {period_end}) is empty")
    zone = zone_of(time_zone)
    bounds = [period_start]
    if group_by == "hour":
        # Walk 15-minute UTC steps (aligned to the epoch) and cut where the local hour changes.
        def hour_of(t: int) -> tuple[int, int, int]:
            local = dt.datetime.fromtimestamp(t, zone)
            offset = local.utcoffset()
            return local.toordinal(), local.hour, int(offset.total_seconds()) if offset else 0

        current = hour_of(period_start)
        t = period_start - period_start % STEP_S + STEP_S
        while t < period_end:
            key = hour_of(t)
            if key != current:
                bounds.append(t)
                current = key
            t += STEP_S
    else:
        next_start = _NEXT_START[group_by]
        day = dt.datetime.fromtimestamp(period_start, zone).date()
        while True:
            day = next_start(day)
            t = _first_instant(day, zone)
            if t >= period_end:
                break
            if t > bounds[-1]:
                bounds.append(t)
    bounds.append(period_end)
    return bounds


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + 1, 1, 1) if day.month == 12 else dt.date(day.year, day.month + 1, 1)


_NEXT_START: dict[str, Callable[[dt.date], dt.date]] = {
    "day": lambda day: day + dt.timedelta(days=1),
    "week": lambda day: day + dt.timedelta(days=7 - day.weekday()),
    "month": _next_month,
}


def _first_instant(day: dt.date, zone: ZoneInfo) -> int:
    """The first instant of local date `day` (midnight, or the end of a DST gap at midnight)."""
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())


def local_time(t: int, time_zone: str) -> str:
    """Instant `t` as local ISO 8601 time with its UTC offset, e.g. `2026-11-01T01:00:00+01:00`."""
    return dt.datetime.fromtimestamp(t, zone_of(time_zone)).isoformat()


def consumption(readings: MeterReadings, bounds: Sequence[int]) -> list[Interval]:
    """The meter's consumption in each interval `[bounds[i], bounds[i + 1])`.

    `readings`: the meter's readings sorted by seq, from the last one at or before `bounds[0]`
    to the first one at or after `bounds[-1]` (all of them where those do not exist). The
    intervals' Wh add up to the Wh the bill of period `[bounds[0], bounds[-1])` is computed
    from. Raises BillInputError for readings out of order, PeriodError for bounds that do
    not rise.
    """
    if len(bounds) < 2 or any(b <= a for a, b in zip(bounds, bounds[1:], strict=False)):
        raise PeriodError("interval bounds must rise and cut a non-empty period")
    ts, seqs = readings.timestamps, readings.seqs
    _check_order(readings)
    start, end = bounds[0], bounds[-1]
    n = len(ts)
    first_interval = last_interval = 0
    if n >= 2:
        at = bisect_left(ts, start)
        first_interval = at if at < n and ts[at] == start else max(at - 1, 0)
        last_interval = min(n - 2, bisect_left(ts, end) - 1)
    if n < 2 or first_interval > last_interval:
        return _without_readings(bounds)
    u0, u1 = first_interval, last_interval + 1
    first_t, last_t = ts[u0], ts[u1]
    # Only same-instant readings in the period: no rate to estimate the rest with. Their
    # energy still counts; every interval is flagged `no_readings`, as the bill's zero line.
    covered = min(last_t, end) - max(first_t, start)
    without_rate = covered <= 0
    imports, exports = readings.imports, readings.exports

    def interpolated(x: int) -> tuple[int, int]:
        """The registers' split-rule value at instant x in [first_t, last_t]; the first of
        same-instant readings at x (their energy lies after x), as the bill reads them."""
        at = bisect_left(ts, x, u0, u1 + 1)
        if ts[at] == x:
            return imports[at], exports[at]
        elapsed, span = x - ts[at - 1], ts[at] - ts[at - 1]
        return (
            imports[at - 1] + (imports[at] - imports[at - 1]) * elapsed // span,
            exports[at - 1] + (exports[at] - exports[at - 1]) * elapsed // span,
        )

    low = (imports[u0], exports[u0]) if first_t >= start else interpolated(start)
    high = (imports[u1], exports[u1]) if last_t < end else interpolated(end)
    measured = (high[0] - low[0], high[1] - low[1])
    before = (0, 0)
    if first_t > start and not without_rate:
        before = (
            measured[0] * (first_t - start) // covered,
            measured[1] * (first_t - start) // covered,
        )
    after = (0, 0)
    if last_t < end and not without_rate:
        after = (measured[0] * (end - last_t) // covered, measured[1] * (end - last_t) // covered)

    def cumulative(x: int) -> tuple[int, int]:
        """Wh from `start` to instant x (start <= x <= end), estimates included."""
        if x <= start:
            return 0, 0
        if x <= first_t:  # estimated at the average rate, by the split rule from `start`
            span = first_t - start
            return before[0] * (x - start) // span, before[1] * (x - start) // span
        if x <= last_t and x < end:
            value = interpolated(x)
            return before[0] + value[0] - low[0], before[1] + value[1] - low[1]
        if x >= end and last_t >= end:
            return before[0] + measured[0], before[1] + measured[1]
        span = end - last_t
        return (
            before[0] + measured[0] + after[0] * (x - last_t) // span,
            before[1] + measured[1] + after[1] * (x - last_t) // span,
        )

    # Estimated stretches of time (from, to, rule, import Wh, export Wh), and the energy of
    # same-instant readings across a seq jump (instant, import Wh, export Wh): all estimated, in
    # the interval holding that instant (the bill's split rule gives a zero-length interval to
    # t0's segment).
    stretches: list[tuple[int, int, str, int, int]] = []
    instants: list[tuple[int, int, int]] = []
    if first_t > start and not without_rate:
        stretches.append((start, first_t, "average_rate", *before))
    for i in range(u0, u1):
        if seqs[i + 1] != seqs[i] + 1:
            if ts[i + 1] > ts[i]:
                stretches.append(
                    (
                        ts[i],
                        ts[i + 1],
                        "gap_pro_rata_by_seconds",
                        imports[i + 1] - imports[i],
                        exports[i + 1] - exports[i],
                    )
                )
            elif start <= ts[i] < end:
                instants.append((ts[i], imports[i + 1] - imports[i], exports[i + 1] - exports[i]))
    if last_t < end and not without_rate:
        stretches.append((last_t, end, "average_rate", *after))

    intervals = []
    total = cumulative(start)
    for a, b in zip(bounds, bounds[1:], strict=False):
        upto = cumulative(b)
        estimated_import = estimated_export = 0
        rules = {"no_readings"} if without_rate else set()
        for lo, hi, rule, stretch_import, stretch_export in stretches:
            x, y = max(lo, a), min(hi, b)
            if x < y:
                # The stretch's own split rule (from its start), as the bill splits it.
                span = hi - lo
                estimated_import += (
                    stretch_import * (y - lo) // span - stretch_import * (x - lo) // span
                )
                estimated_export += (
                    stretch_export * (y - lo) // span - stretch_export * (x - lo) // span
                )
                rules.add(rule)
        for instant, jump_import, jump_export in instants:
            if a <= instant < b:
                estimated_import += jump_import
                estimated_export += jump_export
                rules.add("gap_pro_rata_by_seconds")
        intervals.append(
            Interval(
                a,
                b,
                upto[0] - total[0],
                upto[1] - total[1],
                estimated_import,
                estimated_export,
                tuple(sorted(rules)),
            )
        )
        total = upto
    return intervals


def _without_readings(bounds: Sequence[int]) -> list[Interval]:
    return [
        Interval(a, b, 0, 0, 0, 0, ("no_readings",))
        for a, b in zip(bounds, bounds[1:], strict=False)
    ]


def _check_order(readings: MeterReadings) -> None:
    seqs, ts = readings.seqs, readings.timestamps
    if not len(seqs) == len(ts) == len(readings.imports) == len(readings.exports):
        raise BillInputError("readings: columns of unequal length")
    if list(seqs) != sorted(seqs) or len(set(seqs)) != len(seqs):
        raise BillInputError("readings are not in ascending seq order")
    if list(ts) != sorted(ts):
        raise BillInputError("readings go back in time")
