"""The time line of a bill: which tariff and band are in force at each second of a period.

A period is `[start, end)` in Unix seconds (UTC). The tariff in force at second t is the
customer's assignment with the greatest `valid_from <= t`; the band is that tariff's band for
t's local month (season), day type (weekday Mon-Fri; weekend Sat/Sun or a holiday) and local
hour, in the tariff's own time zone. `segments` cuts the period into maximal pieces of one
(tariff, band).

Every real UTC offset is a multiple of 15 minutes, so local hours, local dates and DST
transitions all change on instants that are multiples of 900 s since the epoch: walking the
period in 15-minute UTC steps (aligned to the epoch, not to the period start), plus the
period's ends and the assignments' valid-from instants, finds every change. A DST day in
Europe/Berlin thus has 23 or 25 hours of bands, each at its local hour.

The same period and assignments give the same time line for every customer, so it is computed
once and cached (`timeline`): an issuing run of thousands of customers on one tariff builds it
once.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledger.billing.tariff import Tariff
from ledger.errors import LedgerError

STEP_S = 900
"""15 minutes: every band change lies on a multiple of this many seconds since the epoch."""
_LABEL = re.compile(r"(\d{4})-(\d{2})")
_CACHE_SIZE = 64


class NoTariffError(LedgerError):
    """A second of the period has no tariff on record for the customer: nothing is billed."""

    code = "no_tariff"
    http_status = 409


class PeriodError(LedgerError):
    """A period that cannot be billed (bad label, empty range, unknown time zone)."""

    code = "invalid_period"
    http_status = 422


@dataclass(frozen=True)
class Assignment:
    """A customer's tariff from `valid_from` (Unix seconds) until the next assignment."""

    tariff_hash: bytes
    valid_from: int


@dataclass(frozen=True)
class Segment:
    """A maximal piece `[start, end)` of the period with one tariff and band."""

    start: int
    end: int
    tariff_hash: bytes
    band: str


@dataclass(frozen=True)
class Timeline:
    """Everything about a period that is the same for every customer with these assignments.

    `starts[k]`/`ends[k]` are segment k's bounds; `groups[k]` indexes `group_keys`, the distinct
    (tariff hash, band) pairs in order of first appearance; `day_starts` maps each tariff to the
    local day starts (first instant of a local date in the tariff's zone, normally midnight)
    that lie in the period while it is in force.
    """

    period_start: int
    period_end: int
    segments: tuple[Segment, ...]
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    groups: tuple[int, ...]
    group_keys: tuple[tuple[bytes, str], ...]
    tariff_hashes: tuple[bytes, ...]
    """The tariffs in force somewhere in the period, in order of first appearance."""
    day_starts: Mapping[bytes, tuple[int, ...]]


def month_period(label: str, time_zone: str) -> tuple[int, int]:
    """`"2026-11"` -> `[start, end)` of that calendar month in `time_zone` (Unix seconds)."""
    match = _LABEL.fullmatch(label)
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1970:
        raise PeriodError(f"period {label!r} is not a month YYYY-MM (1970 or later)")
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise PeriodError(f"billing time zone {time_zone!r} is not a known IANA zone") from None
    year, month = int(match.group(1)), int(match.group(2))
    following = (year + 1, 1) if month == 12 else (year, month + 1)
    return _first_instant(dt.date(year, month, 1), zone), _first_instant(
        dt.date(*following, 1), zone
    )


def segments(
    period_start: int,
    period_end: int,
    assignments: Sequence[Assignment],
    tariffs: Mapping[bytes, Tariff],
) -> list[Segment]:
    """The period cut into maximal `(start, end, tariff_hash, band)` pieces, in time order.

    Raises `NoTariffError` when a second of the period has no assignment in force, or an
    assignment names a tariff missing from `tariffs`; `PeriodError` when the period is empty.
    """
    return list(timeline(period_start, period_end, assignments, tariffs).segments)


_cache: OrderedDict[tuple[object, ...], Timeline] = OrderedDict()
_cache_lock = threading.Lock()


def timeline(
    period_start: int,
    period_end: int,
    assignments: Sequence[Assignment],
    tariffs: Mapping[bytes, Tariff],
) -> Timeline:
    """The period's `Timeline` (cached: the same for every customer with these assignments)."""
    if period_start >= period_end:
        raise PeriodError(f"period [{period_start}, {period_end}) is empty")
    relevant = _assignments_in_force(period_start, period_end, assignments)
    # Checked before the cache: a time line cached for a caller that had the tariff's text
    # must not stand in for one whose caller has not.
    _require_on_record(relevant, tariffs)
    # A tariff is identified by its hash (the hash of its exact text), so the hashes and
    # valid-from instants that matter, with the period, decide the time line entirely; the
    # one in force at the start counts from the start, whenever it was assigned.
    key = (
        period_start,
        period_end,
        relevant[0].tariff_hash,
        tuple((a.tariff_hash, a.valid_from) for a in relevant[1:]),
    )
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached
    built = _build(period_start, period_end, relevant, tariffs)
    with _cache_lock:
        _cache[key] = built
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return built


def _assignments_in_force(
    period_start: int, period_end: int, assignments: Sequence[Assignment]
) -> list[Assignment]:
    """The assignment in force at the period start and those starting inside the period."""
    ordered = sorted(assignments, key=lambda a: a.valid_from)
    if not ordered or ordered[0].valid_from > period_start:
        first = ordered[0].valid_from if ordered else None
        shown = "none on record" if first is None else f"the first starts at {first}"
        raise NoTariffError(
            f"no tariff in force at {period_start} (period start); {shown}: nothing is billed "
            "without a tariff on record"
        )
    valid_froms = [a.valid_from for a in ordered]
    # With two assignments from the same instant the later one in the list wins.
    current = bisect_right(valid_froms, period_start) - 1
    relevant = [ordered[current]]
    relevant.extend(a for a in ordered[current + 1 :] if a.valid_from < period_end)
    return relevant


def _require_on_record(relevant: list[Assignment], tariffs: Mapping[bytes, Tariff]) -> None:
    for assignment in relevant:
        if assignment.tariff_hash not in tariffs:
            raise NoTariffError(
                f"tariff 0x{assignment.tariff_hash.hex()} (assigned from "
                f"{assignment.valid_from}) is not on record"
            )


def _build(
    period_start: int, period_end: int, relevant: list[Assignment], tariffs: Mapping[bytes, Tariff]
) -> Timeline:
    # Instants where the tariff in force changes inside the period (the first one is in force
    # at the period start, so its valid_from is replaced by the start).
    changes = [period_start] + [a.valid_from for a in relevant[1:]]
    in_force = [tariffs[a.tariff_hash] for a in relevant]
    cuts = sorted(
        set(range(_next_step(period_start), period_end, STEP_S)) | set(changes) | {period_start}
    )
    seg_starts: list[int] = []
    seg_bands: list[tuple[bytes, str]] = []
    local_cache: dict[tuple[str, int], dt.datetime] = {}
    for cut in cuts:
        tariff = in_force[bisect_right(changes, cut) - 1]
        step = cut - cut % STEP_S
        local = local_cache.get((tariff.time_zone, step))
        if local is None:
            local = dt.datetime.fromtimestamp(step, tz=tariff.zone)
            local_cache[(tariff.time_zone, step)] = local
        key = (tariff.hash, tariff.band_at_local(local))
        if not seg_bands or seg_bands[-1] != key:
            seg_starts.append(cut)
            seg_bands.append(key)
    seg_ends = seg_starts[1:] + [period_end]
    group_index: dict[tuple[bytes, str], int] = {}
    for key in seg_bands:
        group_index.setdefault(key, len(group_index))
    tariff_hashes = tuple(dict.fromkeys(h for h, _ in seg_bands))
    return Timeline(
        period_start=period_start,
        period_end=period_end,
        segments=tuple(
            Segment(start=s, end=e, tariff_hash=h, band=b)
            for s, e, (h, b) in zip(seg_starts, seg_ends, seg_bands, strict=True)
        ),
        starts=tuple(seg_starts),
        ends=tuple(seg_ends),
        groups=tuple(group_index[key] for key in seg_bands),
        group_keys=tuple(group_index),
        tariff_hashes=tariff_hashes,
        day_starts=_day_starts(period_start, period_end, changes, in_force, local_cache),
    )


def _day_starts(
    period_start: int,
    period_end: int,
    changes: list[int],
    in_force: list[Tariff],
    local_cache: dict[tuple[str, int], dt.datetime],
) -> dict[bytes, tuple[int, ...]]:
    """Each tariff's local day starts in the period, counted for the tariff in force then.

    A day start is the first instant of a local date: local midnight, or where midnight does not
    exist (a DST jump at 00:00) the first instant after it. A date is counted once even if a
    backward DST jump shows it twice.
    """
    zones = {t.time_zone: t.zone for t in in_force}
    found: dict[bytes, list[int]] = {t.hash: [] for t in in_force}
    first_step = _next_step(period_start)
    for name, zone in zones.items():
        latest = dt.datetime.fromtimestamp(first_step - STEP_S, tz=zone).date()
        for step in range(first_step, period_end, STEP_S):
            local = local_cache.get((name, step))
            if local is None:
                local = dt.datetime.fromtimestamp(step, tz=zone)
            day = local.date()
            if day > latest:
                latest = day
                tariff = in_force[bisect_right(changes, step) - 1]
                if tariff.time_zone == name:
                    found[tariff.hash].append(step)
    return {h: tuple(days) for h, days in found.items()}


def _next_step(t: int) -> int:
    """The first multiple of STEP_S at or after t."""
    return -(-t // STEP_S) * STEP_S


def _first_instant(day: dt.date, zone: ZoneInfo) -> int:
    """The first Unix second whose local date in `zone` is `day` (its midnight, if it exists)."""
    naive = dt.datetime(day.year, day.month, day.day)
    guess = int(naive.replace(tzinfo=zone).timestamp())
    # Midnight inside a DST gap maps to an instant of the previous or next date; search the
    # 15-minute steps around it for the first one of `day` (day changes happen on steps).
    candidate = guess - guess % STEP_S - 4 * 3600
    while dt.datetime.fromtimestamp(candidate, tz=zone).date() < day:
        candidate += STEP_S
    return candidate
