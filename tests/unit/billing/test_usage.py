"""Consumption per interval (ledger/billing/usage.py): the bill's rules, cut by local time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.billing.compute import BillInputError, MeterReadings, compute_bill
from ledger.billing.timeline import PeriodError
from ledger.billing.usage import Interval, consumption, interval_bounds, local_time
from tests.unit.billing.billing_support import (
    DAY,
    HOUR,
    METER,
    MONDAY,
    inputs,
    make_tariff,
    quantities,
    readings,
)


def columns(
    points: Sequence[tuple[int, int] | tuple[int, int, int]], seqs: Sequence[int] | None = None
) -> MeterReadings:
    return MeterReadings.of(METER, readings(points, seqs=seqs))


def by_hour(start: int, hours: int) -> list[int]:
    return interval_bounds(start, start + hours * HOUR, "hour", "UTC")


def local(year: int, month: int, day: int, hour: int, zone: str) -> int:
    return int(dt.datetime(year, month, day, hour, tzinfo=ZoneInfo(zone)).timestamp())


# --- interval bounds -----------------------------------------------------------------------------


def test_a_utc_day_has_24_hour_intervals() -> None:
    bounds = interval_bounds(MONDAY, MONDAY + DAY, "hour", "UTC")
    assert bounds == [MONDAY + h * HOUR for h in range(25)]


def test_the_autumn_dst_day_in_berlin_has_25_hour_intervals() -> None:
    start = local(2026, 10, 25, 0, "Europe/Berlin")
    end = local(2026, 10, 26, 0, "Europe/Berlin")
    assert len(interval_bounds(start, end, "hour", "Europe/Berlin")) - 1 == 25


def test_the_spring_dst_day_in_berlin_is_one_day_interval_of_23_hours() -> None:
    start = local(2026, 3, 29, 0, "Europe/Berlin")
    end = local(2026, 3, 31, 0, "Europe/Berlin")
    bounds = interval_bounds(start, end, "day", "Europe/Berlin")
    assert [b - a for a, b in zip(bounds, bounds[1:], strict=False)] == [23 * HOUR, 24 * HOUR]


def test_hours_of_a_half_hour_zone_start_at_half_past_utc() -> None:
    bounds = interval_bounds(MONDAY, MONDAY + 3 * HOUR, "hour", "Asia/Kolkata")
    assert bounds == [MONDAY, MONDAY + HOUR // 2, MONDAY + 3 * HOUR // 2, MONDAY + 5 * HOUR // 2,
                      MONDAY + 3 * HOUR]  # fmt: skip


def test_weeks_start_on_monday_and_the_first_week_is_partial() -> None:
    wednesday = MONDAY + 2 * DAY
    bounds = interval_bounds(wednesday, MONDAY + 14 * DAY, "week", "UTC")
    assert bounds == [wednesday, MONDAY + 7 * DAY, MONDAY + 14 * DAY]


def test_months_start_on_the_first_local_day_of_shanghai() -> None:
    start = local(2026, 11, 15, 0, "Asia/Shanghai")
    end = local(2027, 1, 10, 0, "Asia/Shanghai")
    bounds = interval_bounds(start, end, "month", "Asia/Shanghai")
    assert bounds == [
        start,
        local(2026, 12, 1, 0, "Asia/Shanghai"),
        local(2027, 1, 1, 0, "Asia/Shanghai"),
        end,
    ]


def test_an_unknown_group_is_refused_with_invalid_period() -> None:
    with pytest.raises(PeriodError) as refused:
        interval_bounds(MONDAY, MONDAY + DAY, "year", "UTC")  # type: ignore[arg-type]
    assert refused.value.code == "invalid_period"


def test_an_unknown_time_zone_is_refused_with_invalid_period() -> None:
    with pytest.raises(PeriodError):
        interval_bounds(MONDAY, MONDAY + DAY, "day", "Mars/Olympus")


def test_an_empty_period_is_refused_with_invalid_period() -> None:
    with pytest.raises(PeriodError):
        interval_bounds(MONDAY, MONDAY, "day", "UTC")


def test_local_time_shows_the_utc_offset_in_force() -> None:
    assert local_time(MONDAY, "Asia/Shanghai") == "2026-11-02T08:00:00+08:00"


# --- consumption ---------------------------------------------------------------------------------


def test_hourly_readings_give_each_hour_its_measured_difference() -> None:
    points = [(MONDAY + h * HOUR, 1000 + 10 * h * h, 5 * h) for h in range(4)]
    found = consumption(columns(points), by_hour(MONDAY, 3))
    assert [(i.import_wh, i.export_wh, i.estimated) for i in found] == [
        (10, 5, False),
        (30, 5, False),
        (50, 5, False),
    ]


def test_a_reading_interval_across_two_hours_is_split_by_seconds() -> None:
    # 90 Wh over [0:00, 1:30): 60 Wh in the first hour, 30 Wh in the second.
    points = [(MONDAY, 0), (MONDAY + 90 * 60, 90), (MONDAY + 2 * HOUR, 100)]
    found = consumption(columns(points), by_hour(MONDAY, 2))
    assert [i.import_wh for i in found] == [60, 40]


def test_hours_across_a_seq_jump_are_flagged_gap_pro_rata_by_seconds() -> None:
    points = [(MONDAY, 0), (MONDAY + HOUR, 10), (MONDAY + 3 * HOUR, 50), (MONDAY + 4 * HOUR, 60)]
    found = consumption(columns(points, seqs=[1, 2, 9, 10]), by_hour(MONDAY, 4))
    assert [(i.estimated_import_wh, i.estimate_rules) for i in found] == [
        (0, ()),
        (20, ("gap_pro_rata_by_seconds",)),
        (20, ("gap_pro_rata_by_seconds",)),
        (0, ()),
    ]


def test_hours_before_the_first_reading_are_estimated_at_the_average_rate() -> None:
    points = [(MONDAY + 2 * HOUR, 0), (MONDAY + 4 * HOUR, 40)]
    found = consumption(columns(points), by_hour(MONDAY, 4))
    assert [(i.import_wh, i.estimated_import_wh, i.estimate_rules) for i in found] == [
        (20, 20, ("average_rate",)),
        (20, 20, ("average_rate",)),
        (20, 0, ()),
        (20, 0, ()),
    ]


def test_a_meter_without_readings_has_zero_intervals_flagged_no_readings() -> None:
    found = consumption(columns([]), by_hour(MONDAY, 2))
    assert found == [
        Interval(MONDAY, MONDAY + HOUR, 0, 0, 0, 0, ("no_readings",)),
        Interval(MONDAY + HOUR, MONDAY + 2 * HOUR, 0, 0, 0, 0, ("no_readings",)),
    ]


def test_readings_going_back_in_time_are_refused() -> None:
    with pytest.raises(BillInputError):
        consumption(columns([(MONDAY, 0), (MONDAY - 1, 5)]), by_hour(MONDAY, 1))


# The bill's Wh and the intervals' Wh agree: one band all day, so the bill's grid lines hold
# every Wh of the period, measured and estimated apart.
_FLAT = make_tariff(weekday=["flat"] * 24, weekend=["flat"] * 24)


@st.composite
def meter_days(draw: st.DrawFn) -> tuple[list[tuple[int, int, int]], list[int]]:
    count = draw(st.integers(min_value=0, max_value=12))
    times = sorted(draw(st.lists(st.integers(-DAY, 3 * DAY), min_size=count, max_size=count)))
    steps = draw(st.lists(st.integers(0, 5000), min_size=count, max_size=count))
    jumps = draw(st.lists(st.integers(1, 3), min_size=count, max_size=count))
    points, seqs, register, seq = [], [], 0, 0
    for t, step, jump in zip(times, steps, jumps, strict=True):
        register += step
        seq += jump
        points.append((MONDAY + t, register, register // 3))
        seqs.append(seq)
    return points, seqs


@settings(max_examples=300, deadline=None)
@given(meter_days(), st.sampled_from(["hour", "day"]))
def test_the_intervals_of_a_bill_period_add_up_to_its_grid_lines(
    drawn: tuple[list[tuple[int, int, int]], list[int]], group_by: str
) -> None:
    points, seqs = drawn
    start, end = MONDAY, MONDAY + 2 * DAY
    bounds = interval_bounds(start, end, group_by, "UTC")  # type: ignore[arg-type]
    found = consumption(columns(points, seqs=seqs), bounds)
    document = compute_bill(
        inputs(start, end, {METER: readings(points, seqs=seqs)}, tariffs=[_FLAT])
    )
    for kind, attribute in (("grid_import", "import_wh"), ("feed_in", "export_wh")):
        assert sum(getattr(i, attribute) for i in found) == sum(quantities(document, kind).values())
        assert sum(getattr(i, "estimated_" + attribute) for i in found) == sum(
            quantities(document, kind, estimated=True).values()
        )
