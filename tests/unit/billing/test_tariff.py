"""The tariff file format: parsing, every field's check with its message, the hash, bands."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ledger.anchoring.merkle import keccak256
from ledger.billing.tariff import TariffError, parse_tariff, tariff_hash
from tests.unit.billing.billing_support import WEEKDAY, make_tariff, tariff_text

EXAMPLE = Path(__file__).resolve().parents[3] / "tariffs" / "household-tou.toml"


def refused(text: str) -> str:
    """The message parse_tariff refuses `text` with (its code checked too)."""
    with pytest.raises(TariffError) as caught:
        parse_tariff(text.encode())
    assert caught.value.code == "invalid_tariff"
    return str(caught.value)


def test_the_example_tariff_parses_with_its_bands_and_zone() -> None:
    tariff = parse_tariff(EXAMPLE.read_bytes())
    assert (tariff.currency, tariff.decimals, tariff.time_zone) == ("ELC", 6, "Europe/Berlin")
    assert tariff.bands == ("peak", "flat", "valley")
    assert [season.name for season in tariff.seasons] == ["winter", "summer"]


def test_the_example_tariff_bills_a_winter_weekday_evening_as_peak() -> None:
    tariff = parse_tariff(EXAMPLE.read_bytes())
    # Tuesday 3 November 2026, 18:30 in Berlin (CET, UTC+1)
    evening = int(dt.datetime(2026, 11, 3, 17, 30, tzinfo=dt.UTC).timestamp())
    assert tariff.band_at(evening) == "peak"


def test_the_example_tariff_bills_christmas_evening_as_a_weekend_day() -> None:
    tariff = parse_tariff(EXAMPLE.read_bytes())
    # Friday 25 December 2026, 18:30 in Berlin: a holiday, so the weekend's flat band
    christmas_evening = int(dt.datetime(2026, 12, 25, 17, 30, tzinfo=dt.UTC).timestamp())
    assert tariff.band_at(christmas_evening) == "flat"


def test_tariff_hash_is_keccak256_of_the_exact_bytes() -> None:
    data = tariff_text().encode()
    assert tariff_hash(data) == keccak256(data)
    assert parse_tariff(data).hash == keccak256(data)


def test_one_more_space_in_the_file_is_another_tariff() -> None:
    data = tariff_text().encode()
    assert parse_tariff(data + b" ").hash != parse_tariff(data).hash


def test_a_parsed_tariff_keeps_its_exact_bytes() -> None:
    data = tariff_text().encode()
    assert parse_tariff(data).text == data


def test_negative_import_prices_are_allowed() -> None:
    tariff = make_tariff(prices={"peak": 100, "flat": 50, "valley": -20000})
    assert tariff.price("valley") == -20000


def test_not_toml_is_refused() -> None:
    assert "not valid TOML" in refused("format = ")


def test_not_utf8_is_refused() -> None:
    with pytest.raises(TariffError, match="not UTF-8"):
        parse_tariff(b"\xff\xfe")


def test_another_format_is_refused() -> None:
    text = tariff_text().replace("energy-ledger/tariff/v1", "energy-ledger/tariff/v2")
    assert "'format'" in refused(text)


@pytest.mark.parametrize(
    "field",
    [
        "name",
        "currency",
        "decimals",
        "time_zone",
        "rounding",
        "fixed_daily_minor",
        "feed_in_minor_per_kwh",
        "holidays",
    ],
)
def test_a_missing_field_is_named(field: str) -> None:
    text = "\n".join(
        line for line in tariff_text().splitlines() if not line.startswith(f"{field} =")
    )
    assert refused(text).startswith(f"tariff field {field!r}: missing")


def test_missing_prices_are_named() -> None:
    text = tariff_text().replace("[prices_minor_per_kwh]", "[unrelated]")
    assert "'unrelated': unknown field" in refused(text)


def test_an_unknown_top_level_field_is_named() -> None:
    assert "'colour': unknown field" in refused(tariff_text(extra='colour = "green"'))


def test_a_float_price_is_refused() -> None:
    message = refused(tariff_text(prices={"peak": 0.35, "flat": 1, "valley": 1}))
    assert message == "tariff field 'prices_minor_per_kwh.peak': must be integer, got float"


def test_a_float_fixed_charge_is_refused() -> None:
    assert "'fixed_daily_minor': must be integer, got float" in refused(
        tariff_text(fixed_daily_minor=1.5)
    )


def test_a_boolean_where_an_integer_is_asked_is_refused() -> None:
    assert "'decimals': must be integer, got boolean" in refused(tariff_text(decimals=True))


def test_a_string_where_an_integer_is_asked_is_refused() -> None:
    assert "'feed_in_minor_per_kwh': must be integer, got string" in refused(
        tariff_text(feed_in_minor_per_kwh="80000")
    )


def test_a_negative_fixed_charge_is_refused() -> None:
    assert "'fixed_daily_minor': must not be negative" in refused(tariff_text(fixed_daily_minor=-1))


def test_a_negative_feed_in_credit_is_refused() -> None:
    assert "'feed_in_minor_per_kwh': must not be negative" in refused(
        tariff_text(feed_in_minor_per_kwh=-1)
    )


def test_an_empty_currency_is_refused() -> None:
    assert "'currency': must not be empty" in refused(tariff_text(currency=""))


def test_decimals_out_of_range_are_refused() -> None:
    assert "'decimals': must be 0..36" in refused(tariff_text(decimals=77))


def test_an_unknown_time_zone_is_refused() -> None:
    assert "'time_zone': not a known IANA time zone" in refused(
        tariff_text(time_zone="Mars/Olympus_Mons")
    )


def test_an_unknown_rounding_rule_is_refused() -> None:
    assert "'rounding': must be one of half_even, half_up, down" in refused(
        tariff_text(rounding="bankers")
    )


def test_an_unknown_band_in_the_prices_is_refused() -> None:
    message = refused(tariff_text(prices={"peak": 1, "shoulder": 2, "valley": 3}))
    assert "'prices_minor_per_kwh.shoulder': unknown band" in message


def test_an_hour_naming_an_unpriced_band_is_refused() -> None:
    hours = list(WEEKDAY)
    hours[3] = "shoulder"
    assert "'seasons[0].weekday[3]': band 'shoulder' has no price" in refused(
        tariff_text(weekday=hours)
    )


def test_an_hour_naming_a_known_but_unpriced_band_is_refused() -> None:
    message = refused(tariff_text(prices={"flat": 1, "valley": 1}))
    assert "'seasons[0].weekday[18]': band 'peak' has no price" in message


def test_a_day_type_with_23_hours_is_refused() -> None:
    message = refused(tariff_text(weekend=["valley"] * 23))
    assert "'seasons[0].weekend': must hold 24 entries (local hours 0..23), got 23" in message


def test_a_month_in_two_seasons_is_refused() -> None:
    second = (
        '[[seasons]]\nname = "again"\nmonths = [12]\n'
        f"weekday = {['flat'] * 24}\nweekend = {['flat'] * 24}\n".replace("'", '"')
    )
    message = refused(tariff_text() + second)
    assert "'seasons[1].months[0]': month 12 is already in another season" in message


def test_a_month_in_no_season_is_refused() -> None:
    text = tariff_text().replace("months = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]", "months = [1]")
    assert "'seasons': months [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] are in no season" in refused(
        text
    )


def test_a_month_13_is_refused() -> None:
    text = tariff_text().replace("months = [1, 2,", "months = [13, 2,")
    assert "'seasons[0].months[0]': must be 1..12, got 13" in refused(text)


def test_a_holiday_that_is_not_a_date_is_refused() -> None:
    assert "'holidays[0]': not a date YYYY-MM-DD" in refused(tariff_text(holidays=["25.12.2026"]))


def test_a_holiday_listed_twice_is_refused() -> None:
    message = refused(tariff_text(holidays=["2026-12-25", "2026-12-25"]))
    assert "'holidays[1]': 2026-12-25 listed twice" in message


def test_a_season_without_a_weekend_is_named() -> None:
    text = "\n".join(line for line in tariff_text().splitlines() if not line.startswith("weekend"))
    assert "'seasons[0].weekend': missing" in refused(text)
