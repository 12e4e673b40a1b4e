"""Energy per band: the split rule, same-instant readings, gaps, head/tail and no readings."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from ledger.billing.compute import compute_bill
from tests.unit.billing.billing_support import (
    DAY,
    HOUR,
    METER,
    MONDAY,
    OTHER_METER,
    bill,
    hex32,
    inputs,
    lines_of,
    make_tariff,
    quantities,
    readings,
)

M = 60
START, END = MONDAY, MONDAY + DAY  # a weekday: valley 0-6, flat 6-18, peak 18-22, valley 22-24


def at(hours: float) -> int:
    return MONDAY + int(hours * HOUR)


def test_an_interval_straddling_a_band_boundary_is_split_pro_rata_by_seconds() -> None:
    document = bill(START, END, [(at(0), 0), (at(5) + 50 * M, 0), (at(6) + 10 * M, 7), (at(24), 7)])
    # 7 Wh over 05:50-06:10: floor(7 * 600 / 1200) = 3 before 06:00, the other 4 after
    assert quantities(document) == {"peak": 0, "flat": 4, "valley": 3}


def test_the_remainder_of_a_split_goes_to_the_later_part() -> None:
    document = bill(START, END, [(at(0), 0), (at(5) + 50 * M, 0), (at(6) + 10 * M, 1), (at(24), 1)])
    assert quantities(document) == {"peak": 0, "flat": 1, "valley": 0}


def test_two_adjacent_periods_split_a_straddling_interval_so_their_bills_add_up() -> None:
    points = [(at(0), 0), (at(11), 100), (at(13), 1100), (at(24), 1234)]
    cut = at(12) + 7  # the periods meet inside the 11:00-13:00 interval
    first = bill(START, cut, points)
    second = bill(cut, END, points)
    assert sum(quantities(first).values()) == 100 + 1000 * (HOUR + 7) // (2 * HOUR)
    assert sum(quantities(first).values()) + sum(quantities(second).values()) == 1234


def test_readings_at_one_instant_put_their_energy_in_the_segment_holding_it() -> None:
    document = bill(START, END, [(at(0), 0), (at(6), 0), (at(6), 5), (at(24), 5)])
    assert quantities(document) == {"peak": 0, "flat": 5, "valley": 0}


def test_energy_after_the_period_end_is_left_to_the_next_period() -> None:
    document = bill(START, at(12), [(at(0), 0), (at(11), 110), (at(13), 310)])
    # 00:00-11:00 (110 Wh): 60 before 06:00, 50 after; of 11:00-13:00 (200 Wh) the hour
    # before noon gets floor(200 * 3600 / 7200) = 100
    assert quantities(document) == {"flat": 150, "valley": 60}


def test_export_registers_make_feed_in_lines_with_a_negative_unit_price() -> None:
    document = bill(
        START, END, [(at(0), 0, 0), (at(6), 0, 0), (at(12), 0, 1000), (at(24), 0, 1000)]
    )
    (feed_in,) = lines_of(document, "feed_in")
    assert (feed_in["band"], feed_in["quantity"], feed_in["unit_price_minor"]) == (
        "flat",
        1000,
        -50000,
    )
    assert feed_in["amount_minor"] == -50000


def test_a_seq_gap_bills_its_energy_as_estimated_lines_with_the_gap_rule() -> None:
    points = [(at(0), 0), (at(4), 40), (at(8), 440), (at(24), 440)]
    document = compute_bill(inputs(START, END, {METER: readings(points, seqs=[1, 2, 5, 6])}))
    assert quantities(document, estimated=True) == {"flat": 200, "valley": 200}
    estimated = [line for line in document["lines"] if line["estimated"]]
    assert {line["estimate_rule"] for line in estimated} == {"gap_pro_rata_by_seconds"}
    assert estimated[0]["evidence"]["readings"] == [[hex32(METER), 2, 2], [hex32(METER), 5, 5]]


def test_measured_lines_cite_only_the_readings_of_measured_intervals() -> None:
    points = [(at(0), 0), (at(4), 40), (at(8), 440), (at(24), 440)]
    document = compute_bill(inputs(START, END, {METER: readings(points, seqs=[1, 2, 5, 6])}))
    (valley,) = [
        line for line in document["lines"] if line["band"] == "valley" and not line["estimated"]
    ]
    assert valley["quantity"] == 40
    assert valley["evidence"]["readings"] == [[hex32(METER), 1, 2], [hex32(METER), 5, 6]]


def test_seconds_before_the_first_reading_are_estimated_at_the_average_rate() -> None:
    document = bill(START, END, [(at(12), 0), (at(18), 600), (at(24), 1200)])
    # 1200 Wh in the 12 covered hours: the 12 missing ones get 1200 Wh, split by seconds
    assert quantities(document, estimated=True) == {"valley": 600, "flat": 600}
    assert quantities(document, estimated=False) == {"flat": 600, "peak": 400, "valley": 200}
    rules = {line["estimate_rule"] for line in document["lines"] if line["estimated"]}
    assert rules == {"average_rate"}


def test_seconds_after_the_last_reading_are_estimated_at_the_average_rate() -> None:
    document = bill(START, END, [(at(0), 0), (at(12), 1200)])
    assert quantities(document, estimated=True) == {"flat": 600, "peak": 400, "valley": 200}


def test_average_rate_lines_cite_every_reading_the_rate_came_from() -> None:
    document = bill(START, END, [(at(0), 0), (at(6), 600), (at(12), 1200)])
    line = next(line for line in document["lines"] if line["estimate_rule"] == "average_rate")
    assert line["evidence"]["readings"] == [[hex32(METER), 1, 3]]


def test_a_meter_without_readings_gets_one_zero_no_readings_line() -> None:
    document = compute_bill(inputs(START, END, {METER: []}))
    assert [
        (line["kind"], line["quantity"], line["estimate_rule"], line["evidence"]["readings"])
        for line in document["lines"]
        if line["kind"] != "fixed_daily"
    ] == [("grid_import", 0, "no_readings", [])]


def test_a_meter_whose_readings_all_precede_the_period_cites_the_last_one() -> None:
    document = bill(START, END, [(at(-5), 0), (at(-2), 10)])
    (line,) = lines_of(document, "grid_import")
    assert line["estimate_rule"] == "no_readings"
    assert line["evidence"]["readings"] == [[hex32(METER), 2, 2]]
    assert document["reading_batches"] == [[hex32(METER), 2, 2, 1]]


def test_a_meter_whose_readings_all_follow_the_period_cites_the_first_one() -> None:
    document = bill(START, END, [(at(25), 0), (at(26), 10)])
    (line,) = lines_of(document, "grid_import")
    assert line["evidence"]["readings"] == [[hex32(METER), 1, 1]]


def test_each_meter_of_a_customer_gets_its_own_lines() -> None:
    document = compute_bill(
        inputs(
            START,
            END,
            {
                METER: readings([(at(0), 0), (at(24), 10)]),
                OTHER_METER: readings([(at(0), 0), (at(24), 20)], meter=OTHER_METER),
            },
        )
    )
    valley = [
        (line["evidence"]["readings"][0][0], line["quantity"])
        for line in lines_of(document, "grid_import")
        if line["band"] == "valley"
    ]
    # valley is 00-06 and 22-24: floor(10 * 6 / 24) + (10 - floor(10 * 22 / 24)) = 2 + 1
    assert valley == [(hex32(METER), 3), (hex32(OTHER_METER), 7)]
    assert document["meters"] == [hex32(METER), hex32(OTHER_METER)]


def test_reading_batches_are_runs_of_consecutive_seqs_in_one_batch() -> None:
    made = readings([(at(0), 0), (at(6), 1), (at(12), 2), (at(18), 3), (at(24), 4)])
    made[3:] = [
        type(r)(r.meter_id, r.seq + (5 if i else 0), r.timestamp, r.import_wh, r.export_wh, 2)
        for i, r in enumerate(made[3:])
    ]
    document = compute_bill(inputs(START, END, {METER: made}))
    assert document["reading_batches"] == [
        [hex32(METER), 1, 3, 1],
        [hex32(METER), 4, 4, 2],
        [hex32(METER), 10, 10, 2],
    ]


def test_readings_outside_the_intervals_of_the_period_are_not_cited() -> None:
    document = bill(START, END, [(at(-9), 0), (at(-1), 5), (at(24), 10), (at(30), 20)])
    assert document["reading_batches"] == [[hex32(METER), 2, 3, 1]]


def test_the_fall_back_day_in_berlin_bills_two_hours_at_local_2_oclock() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    tariff = make_tariff(
        time_zone="Europe/Berlin", weekend=["valley"] * 2 + ["peak"] + ["flat"] * 21
    )
    start = int(dt.datetime(2026, 10, 25, tzinfo=berlin).timestamp())
    end = int(dt.datetime(2026, 10, 26, tzinfo=berlin).timestamp())
    points = [(start + h * HOUR, 100 * h) for h in range(26)]  # 100 Wh in each UTC hour
    document = compute_bill(inputs(start, end, {METER: readings(points)}, tariffs=[tariff]))
    assert quantities(document) == {"peak": 200, "flat": 2100, "valley": 200}
    (fixed,) = lines_of(document, "fixed_daily")
    assert fixed["quantity"] == 1
