"""Amounts: rounding rules (negatives too), fixed days, line order, totals, inputs refused."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from eth_utils.address import to_checksum_address

from ledger.billing.compute import (
    BillInputError,
    TariffCurrencyMismatch,
    compute_bill,
    line_amount,
    round_minor,
)
from ledger.billing.timeline import Assignment, month_period
from tests.unit.billing.billing_support import (
    DAY,
    HOUR,
    METER,
    MONDAY,
    bill,
    inputs,
    lines_of,
    make_tariff,
    readings,
)


@pytest.mark.parametrize(
    ("numerator", "rule", "expected"),
    [
        (2500, "half_even", 2),
        (3500, "half_even", 4),
        (2501, "half_even", 3),
        (-2500, "half_even", -2),
        (-3500, "half_even", -4),
        (2500, "half_up", 3),
        (2499, "half_up", 2),
        (-2500, "half_up", -3),
        (-2499, "half_up", -2),
        (2999, "down", 2),
        (-2999, "down", -2),
        (3000, "down", 3),
    ],
)
def test_rounding_rules_round_thousandths_as_documented(
    numerator: int, rule: str, expected: int
) -> None:
    assert round_minor(numerator, 1000, rule) == expected


def test_a_line_amount_is_quantity_times_price_per_kwh() -> None:
    assert line_amount(1234, 300000, "down") == 370200


def test_a_negative_price_gives_a_credit_rounded_like_a_charge() -> None:
    assert line_amount(1, -500, "half_up") == -1
    assert line_amount(1, -500, "half_even") == 0
    assert line_amount(1, -1999, "down") == -1


@pytest.mark.parametrize(("rule", "amount"), [("half_even", 0), ("half_up", 1), ("down", 0)])
def test_a_bill_rounds_each_line_by_its_tariffs_rule(rule: str, amount: int) -> None:
    tariff = make_tariff(
        rounding=rule, prices={"flat": 500}, weekday=["flat"] * 24, weekend=["flat"] * 24
    )
    document = bill(MONDAY, MONDAY + DAY, [(MONDAY, 0), (MONDAY + DAY, 1)], tariffs=[tariff])
    (line,) = lines_of(document, "grid_import")
    assert (line["quantity"], line["amount_minor"]) == (1, amount)


def test_a_week_has_seven_fixed_days() -> None:
    document = bill(MONDAY, MONDAY + 7 * DAY, [(MONDAY, 0), (MONDAY + 7 * DAY, 0)])
    (fixed,) = lines_of(document, "fixed_daily")
    assert (fixed["quantity"], fixed["unit"], fixed["price_per"]) == (7, "day", "day")
    assert fixed["amount_minor"] == 7 * 100000


def test_a_day_whose_midnight_precedes_the_period_is_not_charged() -> None:
    document = bill(MONDAY + 1, MONDAY + 2 * DAY, [(MONDAY, 0), (MONDAY + 2 * DAY, 0)])
    (fixed,) = lines_of(document, "fixed_daily")
    assert fixed["quantity"] == 1


def test_march_in_berlin_has_31_fixed_days_despite_the_short_day() -> None:
    tariff = make_tariff(time_zone="Europe/Berlin")
    start, end = month_period("2026-03", "Europe/Berlin")
    document = bill(start, end, [(start, 0), (end, 0)], tariffs=[tariff])
    (fixed,) = lines_of(document, "fixed_daily")
    assert fixed["quantity"] == 31


def test_fixed_days_go_to_the_tariff_in_force_at_each_local_midnight() -> None:
    first, second = make_tariff(fixed_daily_minor=7), make_tariff(fixed_daily_minor=11)
    switch = MONDAY + 2 * DAY + 12 * HOUR  # Wednesday noon
    document = bill(
        MONDAY,
        MONDAY + 5 * DAY,
        [(MONDAY, 0), (MONDAY + 5 * DAY, 0)],
        tariffs=[first, second],
        assignments=[Assignment(first.hash, 0), Assignment(second.hash, switch)],
    )
    days = {
        line["unit_price_minor"]: line["quantity"] for line in lines_of(document, "fixed_daily")
    }
    assert days == {7: 3, 11: 2}


def test_lines_are_ordered_by_kind_then_band_then_estimation() -> None:
    points = [(MONDAY + 12 * HOUR, 0, 0), (MONDAY + 20 * HOUR, 800, 80)]
    document = bill(MONDAY, MONDAY + DAY, points)
    assert [(line["kind"], line["band"], line["estimated"]) for line in document["lines"]] == [
        ("grid_import", "peak", False),
        ("grid_import", "peak", True),
        ("grid_import", "flat", False),
        ("grid_import", "flat", True),
        ("grid_import", "valley", True),
        ("feed_in", "peak", False),
        ("feed_in", "peak", True),
        ("feed_in", "flat", False),
        ("feed_in", "flat", True),
        ("feed_in", "valley", True),
        ("fixed_daily", None, False),
    ]


def test_the_total_is_the_sum_of_the_lines() -> None:
    points = [(MONDAY, 0, 0), (MONDAY + 13 * HOUR, 777, 33), (MONDAY + DAY, 1001, 50)]
    document = bill(MONDAY, MONDAY + DAY, points)
    assert document["total_minor"] == sum(line["amount_minor"] for line in document["lines"])
    assert document["amount_due_minor"] == document["total_minor"]


def test_a_tariff_in_another_currency_is_refused() -> None:
    with pytest.raises(TariffCurrencyMismatch) as caught:
        bill(MONDAY, MONDAY + DAY, [(MONDAY, 0)], tariffs=[make_tariff(currency="EUR")])
    assert caught.value.code == "tariff_currency_mismatch"


def test_a_tariff_with_other_decimals_is_refused() -> None:
    with pytest.raises(TariffCurrencyMismatch, match="2 decimals"):
        bill(MONDAY, MONDAY + DAY, [(MONDAY, 0)], tariffs=[make_tariff(decimals=2)])


def test_readings_out_of_seq_order_are_refused() -> None:
    made = readings([(MONDAY, 0), (MONDAY + HOUR, 5)])
    with pytest.raises(BillInputError, match="ascending seq order") as caught:
        compute_bill(inputs(MONDAY, MONDAY + DAY, {METER: made[::-1]}))
    assert caught.value.code == "invalid_bill_inputs"


def test_readings_going_back_in_time_are_refused() -> None:
    made = readings([(MONDAY + HOUR, 0), (MONDAY, 5)])
    with pytest.raises(BillInputError, match="go back in time"):
        compute_bill(inputs(MONDAY, MONDAY + DAY, {METER: made}))


def test_another_meters_reading_is_refused() -> None:
    made = readings([(MONDAY, 0), (MONDAY + HOUR, 5)])
    made[1] = made[1]._replace(meter_id=bytes(32))
    with pytest.raises(BillInputError, match="another meter's"):
        compute_bill(inputs(MONDAY, MONDAY + DAY, {METER: made}))


def test_a_customer_that_is_not_an_address_is_refused() -> None:
    document_inputs = dataclasses.replace(
        inputs(MONDAY, MONDAY + DAY, {METER: []}), customer="alice"
    )
    with pytest.raises(BillInputError, match="customer is not an address"):
        compute_bill(document_inputs)


def test_addresses_are_written_in_their_checksummed_form() -> None:
    lower = "0x" + "ab" * 20
    document = compute_bill(
        dataclasses.replace(inputs(MONDAY, MONDAY + DAY, {METER: []}), customer=lower)
    )
    assert document["customer"] == to_checksum_address(lower) != lower


def test_the_period_label_and_currency_are_in_the_document() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start, end = month_period("2026-11", "Europe/Berlin")
    assert start == int(dt.datetime(2026, 11, 1, tzinfo=berlin).timestamp())
    document = compute_bill(inputs(start, end, {METER: []}, label="2026-11"))
    assert document["period"] == {"start": start, "end": end, "label": "2026-11"}
    assert document["currency"] == {"code": "ELC", "decimals": 6}
