"""The time line: month periods, segments of one tariff and band, DST, assignments."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from ledger.billing.timeline import (
    Assignment,
    NoTariffError,
    PeriodError,
    Segment,
    month_period,
    segments,
    timeline,
)
from tests.unit.billing.billing_support import DAY, HOUR, MONDAY, make_tariff

BERLIN = ZoneInfo("Europe/Berlin")


def local_midnight(year: int, month: int, day: int, zone: ZoneInfo = BERLIN) -> int:
    return int(dt.datetime(year, month, day, tzinfo=zone).timestamp())


def test_a_month_in_berlin_runs_from_local_midnight_to_local_midnight() -> None:
    assert month_period("2026-11", "Europe/Berlin") == (
        local_midnight(2026, 11, 1),
        local_midnight(2026, 12, 1),
    )


def test_december_ends_at_the_next_new_year() -> None:
    start, end = month_period("2026-12", "UTC")
    assert end == int(dt.datetime(2027, 1, 1, tzinfo=dt.UTC).timestamp())
    assert end - start == 31 * DAY


@pytest.mark.parametrize("label", ["2026-13", "2026-1", "26-11", "2026-11-01", "1969-12"])
def test_a_label_that_is_not_a_month_is_refused(label: str) -> None:
    with pytest.raises(PeriodError) as caught:
        month_period(label, "UTC")
    assert caught.value.code == "invalid_period"


def test_an_unknown_billing_time_zone_is_refused() -> None:
    with pytest.raises(PeriodError, match="not a known IANA zone"):
        month_period("2026-11", "Nowhere/Special")


def test_equal_neighbours_merge_across_midnight() -> None:
    tariff = make_tariff()
    cut = segments(
        MONDAY, MONDAY + DAY + 6 * HOUR, [Assignment(tariff.hash, 0)], {tariff.hash: tariff}
    )
    assert [(s.start - MONDAY, s.end - MONDAY, s.band) for s in cut] == [
        (0, 6 * HOUR, "valley"),
        (6 * HOUR, 18 * HOUR, "flat"),
        (18 * HOUR, 22 * HOUR, "peak"),
        (22 * HOUR, DAY + 6 * HOUR, "valley"),
    ]


def test_a_period_that_does_not_start_on_a_quarter_hour_starts_its_first_segment_there() -> None:
    tariff = make_tariff()
    cut = segments(
        MONDAY + 17, MONDAY + 7 * HOUR, [Assignment(tariff.hash, 0)], {tariff.hash: tariff}
    )
    assert [(s.start - MONDAY, s.band) for s in cut] == [(17, "valley"), (6 * HOUR, "flat")]


def test_the_spring_forward_day_in_berlin_has_23_hours_and_no_local_2_oclock() -> None:
    tariff = make_tariff(
        time_zone="Europe/Berlin", weekend=["valley"] * 2 + ["peak"] + ["flat"] * 21
    )
    start, end = local_midnight(2026, 3, 29), local_midnight(2026, 3, 30)
    cut = segments(start, end, [Assignment(tariff.hash, 0)], {tariff.hash: tariff})
    assert end - start == 23 * HOUR
    assert [(s.band, s.end - s.start) for s in cut] == [("valley", 2 * HOUR), ("flat", 21 * HOUR)]


def test_the_fall_back_day_in_berlin_has_25_hours_and_two_hours_at_2_oclock() -> None:
    tariff = make_tariff(
        time_zone="Europe/Berlin", weekend=["valley"] * 2 + ["peak"] + ["flat"] * 21
    )
    start, end = local_midnight(2026, 10, 25), local_midnight(2026, 10, 26)
    cut = segments(start, end, [Assignment(tariff.hash, 0)], {tariff.hash: tariff})
    assert end - start == 25 * HOUR
    assert [(s.band, s.end - s.start) for s in cut] == [
        ("valley", 2 * HOUR),
        ("peak", 2 * HOUR),
        ("flat", 21 * HOUR),
    ]


def test_bands_in_a_quarter_hour_offset_zone_change_at_a_quarter_past() -> None:
    # Kathmandu is UTC+5:45: local 06:00 is 00:15 UTC.
    tariff = make_tariff(time_zone="Asia/Kathmandu")
    cut = segments(MONDAY, MONDAY + HOUR, [Assignment(tariff.hash, 0)], {tariff.hash: tariff})
    assert [(s.start - MONDAY, s.band) for s in cut] == [(0, "valley"), (15 * 60, "flat")]


def test_a_new_assignment_cuts_the_period_at_its_valid_from() -> None:
    day_tariff = make_tariff(weekday=["flat"] * 24)
    night_tariff = make_tariff(weekday=["valley"] * 24)
    switch = MONDAY + 5 * HOUR + 7
    cut = segments(
        MONDAY,
        MONDAY + DAY,
        [Assignment(day_tariff.hash, MONDAY - DAY), Assignment(night_tariff.hash, switch)],
        {day_tariff.hash: day_tariff, night_tariff.hash: night_tariff},
    )
    assert cut == [
        Segment(MONDAY, switch, day_tariff.hash, "flat"),
        Segment(switch, MONDAY + DAY, night_tariff.hash, "valley"),
    ]


def test_only_the_assignment_in_force_counts_before_the_period() -> None:
    old, current = make_tariff(weekday=["flat"] * 24), make_tariff()
    cut = segments(
        MONDAY,
        MONDAY + HOUR,
        [Assignment(old.hash, MONDAY - 2 * DAY), Assignment(current.hash, MONDAY - DAY)],
        {old.hash: old, current.hash: current},
    )
    assert [s.tariff_hash for s in cut] == [current.hash]


def test_a_period_starting_before_the_first_assignment_has_no_tariff() -> None:
    tariff = make_tariff()
    with pytest.raises(NoTariffError) as caught:
        segments(MONDAY, MONDAY + DAY, [Assignment(tariff.hash, MONDAY + 1)], {tariff.hash: tariff})
    assert caught.value.code == "no_tariff"


def test_a_customer_without_assignments_has_no_tariff() -> None:
    with pytest.raises(NoTariffError, match="none on record"):
        segments(MONDAY, MONDAY + DAY, [], {})


def test_an_assignment_of_a_tariff_whose_text_is_missing_has_no_tariff() -> None:
    tariff = make_tariff()
    with pytest.raises(NoTariffError, match="is not on record"):
        segments(MONDAY, MONDAY + DAY, [Assignment(tariff.hash, 0)], {})


def test_a_time_line_cached_for_one_caller_does_not_hide_a_missing_tariff_from_another() -> None:
    tariff = make_tariff(name="cached, then missing")
    timeline(MONDAY, MONDAY + DAY, [Assignment(tariff.hash, 0)], {tariff.hash: tariff})
    with pytest.raises(NoTariffError, match="is not on record"):
        timeline(MONDAY, MONDAY + DAY, [Assignment(tariff.hash, 0)], {})


def test_an_empty_period_is_refused() -> None:
    tariff = make_tariff()
    with pytest.raises(PeriodError, match="is empty"):
        segments(MONDAY, MONDAY, [Assignment(tariff.hash, 0)], {tariff.hash: tariff})


def test_customers_with_the_same_assignments_share_one_time_line() -> None:
    tariff = make_tariff(name="shared time line")
    first = timeline(MONDAY, MONDAY + DAY, [Assignment(tariff.hash, 0)], {tariff.hash: tariff})
    second = timeline(MONDAY, MONDAY + DAY, [Assignment(tariff.hash, 5)], {tariff.hash: tariff})
    assert second is first  # assigned at another time before the period: the same time line


def test_local_day_starts_are_counted_for_the_tariff_in_force() -> None:
    tariff = make_tariff(time_zone="Europe/Berlin")
    line = timeline(
        local_midnight(2026, 10, 25) - HOUR,
        local_midnight(2026, 10, 28),
        [Assignment(tariff.hash, 0)],
        {tariff.hash: tariff},
    )
    assert line.day_starts[tariff.hash] == (
        local_midnight(2026, 10, 25),
        local_midnight(2026, 10, 26),
        local_midnight(2026, 10, 27),
    )
