"""OCMF timestamps: exact milliseconds and the time status flag, and the times refused."""

from __future__ import annotations

import pytest

from ledger.readings.ocmf.errors import OcmfBadValue
from ledger.readings.ocmf.record import TimeStatus, parse_ocmf, parse_ocmf_time
from tests.unit.readings.ocmf.ocmf_support import BEGIN, payload, unsigned


def test_ocmf_time_becomes_unix_seconds_and_its_flag() -> None:
    (reading,) = parse_ocmf(unsigned(payload(BEGIN))).readings
    assert reading.timestamp == 1532431324  # 2018-07-24T11:22:04Z
    assert reading.time_status is TimeStatus.SYNCHRONIZED


@pytest.mark.parametrize(
    ("text", "unix_ms", "status"),
    [
        ("2018-07-24T13:22:04,000+0200 S", 1532431324000, TimeStatus.SYNCHRONIZED),
        ("2019-04-02T17:28:45,867+0200 S", 1554218925867, TimeStatus.SYNCHRONIZED),
        ("2019-08-13T10:03:15,000+0000 I", 1565690595000, TimeStatus.INFORMATIVE),
        ("1970-01-01T01:01:49,000+0100 U", 109000, TimeStatus.UNSYNCHRONIZED),
        ("2021-10-06T13:13:56,000+0200 R", 1633518836000, TimeStatus.RELATIVE),
        ("2021-01-01T00:00:00,000-0530 S", 1609479000000, TimeStatus.SYNCHRONIZED),
        ("1969-12-31T23:59:59,500+0000 S", -500, TimeStatus.SYNCHRONIZED),
    ],
)
def test_ocmf_times_are_exact_milliseconds(text: str, unix_ms: int, status: TimeStatus) -> None:
    assert parse_ocmf_time(text) == (unix_ms, status)


def test_seconds_are_the_floor_of_the_milliseconds() -> None:
    reading = '{"TM":"1969-12-31T23:59:59,500+0000 S","RV":1,"RI":"1-0:1.8.0","RU":"Wh","ST":"G"}'
    (parsed,) = parse_ocmf(unsigned(payload(reading))).readings
    assert (parsed.timestamp, parsed.timestamp_ms) == (-1, -500)


@pytest.mark.parametrize(
    "text",
    [
        "2018-07-24T13:22:04+0200 S",  # no milliseconds
        "2018-07-24T13:22:04,000+0200",  # no flag
        "2018-07-24T13:22:04,000+02:00 S",
        "2018-07-24 13:22:04,000+0200 S",
        "2018-07-24T13:22:04,000+0200 Q",  # unknown flag
        "2018-02-30T13:22:04,000+0200 S",  # no such day
        "2018-07-24T24:00:00,000+0200 S",
        "2018-07-24T13:22:04,000+2400 S",  # offset out of range
        "٢٠١٨-07-24T13:22:04,000+0200 S",  # non-ASCII digits
    ],
)
def test_malformed_times_are_bad_values(text: str) -> None:
    reading = f'{{"TM":"{text}","RV":1,"RI":"1-0:1.8.0","RU":"Wh","ST":"G"}}'
    with pytest.raises(OcmfBadValue, match="TM"):
        parse_ocmf(unsigned(payload(reading)))


def test_a_first_reading_without_time_is_a_bad_value() -> None:
    with pytest.raises(OcmfBadValue, match="TM None is missing"):
        parse_ocmf(unsigned(payload('{"RV":1,"RI":"1-0:1.8.0","RU":"Wh"}')))


def test_reading_fields_that_are_not_strings_are_bad_values() -> None:
    with pytest.raises(OcmfBadValue, match="TX 1 is not a string"):
        parse_ocmf(unsigned(payload('{"TM":"2018-07-24T13:22:04,000+0200 S","TX":1,"RV":1}')))
