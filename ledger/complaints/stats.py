"""The monthly statistics of complaints, a pure function of the ComplaintRegistry's events.

`monthly_statistics(events, month=..., as_of=..., levels=...)` needs nothing but the events
(`ledger.complaints.model.ComplaintEvent`, from the read model or decoded from the chain's logs)
and the service-level targets: the gateway's auditor route calls it on the read model, and an
auditor calls it on logs read from the chain; the same events give the same numbers.

Definitions (docs/complaints.md#monthly-statistics):
- The month is a calendar month in UTC, `[first second, first second of the next)`. Its rounds
  are those that started in it: openings (`count`) and reopenings (`reopened`).
- `as_of` is the time the statistics are taken at (the gateway uses its latest indexed block's
  time and reports it): events after it are ignored, and a step not taken by then is overdue
  once `as_of` is past its due time.
- Per operator step, over the month's rounds that took it: `taken`, and the `median_s` and
  `p90_s` of its time from the round's start, by the nearest-rank method (the smallest value
  with at least half, resp. 90%, of the values at or below it: always one of the values, an
  integer, no interpolation).
- Per targeted step: `due` (taken, or not taken and overdue at `as_of`), `met` (taken within
  its target) and `share_met_bp`, met / due in basis points rounded down (None when none is due).
- The negative list: every breach, a step taken after its target (`answered` true, `delay_s`
  past the due time) or overdue and not taken at `as_of` (`answered` false, `delay_s` so far),
  ordered by complaint, round and step.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ledger.complaints.model import (
    OPERATOR_STEPS,
    ComplaintEvent,
    clocks,
    fold,
)
from ledger.complaints.sla import ServiceLevels
from ledger.errors import LedgerError

_MONTH = re.compile(r"(\d{4})-(\d{2})")
BASIS_POINTS = 10_000


class InvalidMonth(LedgerError):
    """A month that is not YYYY-MM (01-12)."""

    code = "complaint_invalid_month"
    http_status = 422


@dataclass(frozen=True)
class StepStatistics:
    """One operator step over the month's rounds."""

    step: str
    taken: int
    median_s: int | None
    p90_s: int | None
    target_s: int | None  # the default kind's target (kinds may differ: see `due`/`met`)
    due: int | None
    met: int | None
    share_met_bp: int | None


@dataclass(frozen=True)
class Breach:
    """A step of a round that missed its target."""

    complaint_id: int
    round: int
    step: str
    subject_kind: str
    target_s: int
    due_at: int
    answered: bool
    delay_s: int


@dataclass(frozen=True)
class MonthlyStatistics:
    month: str
    period_start: int
    period_end: int
    as_of: int
    count: int
    reopened: int
    steps: tuple[StepStatistics, ...]
    breaches: tuple[Breach, ...]


def month_bounds(month: str) -> tuple[int, int]:
    """`[start, end)` of a calendar month in UTC, Unix seconds.

    Raises:
        InvalidMonth: not YYYY-MM with a month 01-12.
    """
    matched = _MONTH.fullmatch(month) if isinstance(month, str) else None
    if matched is None or not 1 <= int(matched[2]) <= 12 or int(matched[1]) < 1970:
        raise InvalidMonth(f"month {month!r} is not YYYY-MM (1970 or later, 01-12)")
    year, number = int(matched[1]), int(matched[2])
    start = calendar.timegm((year, number, 1, 0, 0, 0))
    next_year, next_month = (year + 1, 1) if number == 12 else (year, number + 1)
    return start, calendar.timegm((next_year, next_month, 1, 0, 0, 0))


def nearest_rank(values: list[int], percent: int) -> int | None:
    """The nearest-rank percentile of `values`: the ceil(percent/100 * n)-th smallest."""
    if not values:
        return None
    ordered = sorted(values)
    rank = -(-percent * len(ordered) // 100)  # ceil, in integers
    return ordered[max(rank, 1) - 1]


def monthly_statistics(
    events: Iterable[ComplaintEvent], *, month: str, as_of: int, levels: ServiceLevels
) -> MonthlyStatistics:
    """The statistics of the rounds started in `month` (see the module docstring)."""
    start, end = month_bounds(month)
    known = [event for event in events if event.at <= as_of]
    durations: dict[str, list[int]] = {step: [] for step in OPERATOR_STEPS}
    due = {step: 0 for step in OPERATOR_STEPS}
    met = {step: 0 for step in OPERATOR_STEPS}
    breaches: list[Breach] = []
    count = reopened = 0
    for complaint in sorted(fold(known).values(), key=lambda c: c.complaint_id):
        for round_ in complaint.rounds:
            if not start <= round_.started_at < end:
                continue
            if round_.number == 1:
                count += 1
            else:
                reopened += 1
            for clock in clocks(complaint, round_, levels, as_of):
                if clock.took_s is not None:
                    durations[clock.step].append(clock.took_s)
                if clock.state not in ("met", "late", "overdue"):
                    continue
                due[clock.step] += 1
                if clock.state == "met":
                    met[clock.step] += 1
                    continue
                assert clock.target_s is not None and clock.due_at is not None
                late_by = (
                    clock.took_s - clock.target_s
                    if clock.took_s is not None
                    else as_of - clock.due_at
                )
                breaches.append(
                    Breach(
                        complaint_id=complaint.complaint_id,
                        round=round_.number,
                        step=clock.step,
                        subject_kind=complaint.subject_kind,
                        target_s=clock.target_s,
                        due_at=clock.due_at,
                        answered=clock.state == "late",
                        delay_s=late_by,
                    )
                )
    steps = []
    for step in OPERATOR_STEPS:
        target = levels.default.for_step(step)
        targeted = target is not None
        steps.append(
            StepStatistics(
                step=step,
                taken=len(durations[step]),
                median_s=nearest_rank(durations[step], 50),
                p90_s=nearest_rank(durations[step], 90),
                target_s=target,
                due=due[step] if targeted else None,
                met=met[step] if targeted else None,
                share_met_bp=(
                    met[step] * BASIS_POINTS // due[step] if targeted and due[step] else None
                ),
            )
        )
    return MonthlyStatistics(
        month=month,
        period_start=start,
        period_end=end,
        as_of=as_of,
        count=count,
        reopened=reopened,
        steps=tuple(steps),
        breaches=tuple(breaches),
    )
