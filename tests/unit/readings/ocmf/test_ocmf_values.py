"""Reading values: OBIS codes onto the import and export registers, units, exact whole Wh,
fields carried over between readings, and the record's fields.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.readings.ocmf.errors import OcmfBadValue
from ledger.readings.ocmf.record import MAX_WH, Register, obis_register, parse_ocmf
from tests.unit.readings.ocmf.ocmf_support import BEGIN, END, payload, unsigned, value_of


@pytest.mark.parametrize(
    ("obis", "register"),
    [
        ("1-0:1.8.0", Register.IMPORT),
        ("1-0:2.8.0", Register.EXPORT),
        ("1-b:1.8.0", Register.IMPORT),
        ("1-b:1.8.e", Register.IMPORT),
        ("1-b:2.8.e", Register.EXPORT),
        ("1-0:1.8.0*255", Register.IMPORT),
        ("1-0:2.8.0.FF", Register.EXPORT),
        ("01-00:01.08.00.FF", Register.IMPORT),
        ("01-00:02.08.00*ff", Register.EXPORT),
        ("1-0:1.8.0*198", None),  # another value group (BAUER's per-transaction register)
        ("1-0:1.8.1", None),  # tariff 1, not the total
        ("1-1:1.8.0", None),  # channel 1
        ("1-b:1.9.0", None),
        ("1-0:98.8.0.FF", None),
        ("01-00:00.08.06.FF", None),
        ("0-0:1.8.0", None),
        ("1-0:1.8", None),
        ("", None),
    ],
)
def test_obis_codes_map_onto_import_and_export_only(obis: str, register: Register | None) -> None:
    assert obis_register(obis) is register


@pytest.mark.parametrize(
    ("raw_value", "unit", "wh"),
    [
        ("2935.6", "kWh", 2935600),
        ("1.005", "kWh", 1005),  # 1.005 * 1000 == 1004.9999999999999 in binary floating point
        ("0.001", "kWh", 1),
        ("57.584", "kWh", 57584),
        ("1.0", "kWh", 1000),
        ("0", "kWh", 0),
        ("0.000", "kWh", 0),
        ("1e3", "kWh", 1000000),
        ("2.5E0", "kWh", 2500),
        ("12345678901234.567", "kWh", 12345678901234567),
        ('"       9.038"', "kWh", 9038),
        ('"00000000.000"', "kWh", 0),
        ('"      30"', "Wh", 30),
        ("7753", "Wh", 7753),
        ("2851485.0", "Wh", 2851485),
        (str(MAX_WH), "Wh", MAX_WH),
    ],
)
def test_energy_values_convert_to_whole_wh_exactly(raw_value: str, unit: str, wh: int) -> None:
    (reading,) = parse_ocmf(value_of(raw_value, unit)).register_readings()
    assert reading.wh == wh
    assert type(reading.wh) is int


def test_conversion_never_goes_through_float() -> None:
    assert int(1.005 * 1000) == 1004  # what a float conversion would record
    record = parse_ocmf(value_of("1.005"))
    assert record.readings[0].value == Decimal("1.005")
    assert record.register_readings()[0].wh == 1005


@pytest.mark.parametrize(
    ("raw_value", "unit", "reason"),
    [
        ("0.2596", "kWh", "is 259.6 Wh, not a whole number of Wh"),
        ("0.0005", "kWh", "is 0.5 Wh, not a whole number of Wh"),
        ("62500.2031", "kWh", "is 62500203.1 Wh, not a whole number of Wh"),
        ("7753.5", "Wh", "not a whole number of Wh"),
        ("1.0000000000000000000000000000001", "kWh", "not a whole number of Wh"),
        ("-1", "Wh", "is negative"),
        ('"  -0.001"', "kWh", "is negative"),
        (str(MAX_WH + 1), "Wh", "exceeds"),
        ("1e400", "kWh", "exceeds"),
        ("2935.6", "MWh", "is not an energy unit"),
        ("2935.6", "kwh", "is not an energy unit"),
        ("30", "sec", "is not an energy unit"),
    ],
)
def test_unusable_register_values_are_bad_values(raw_value: str, unit: str, reason: str) -> None:
    record = parse_ocmf(value_of(raw_value, unit))  # parsing keeps the exact value
    with pytest.raises(OcmfBadValue, match=reason) as caught:
        record.register_readings()
    assert caught.value.code == "ocmf_bad_value"
    assert caught.value.index == 0


@pytest.mark.parametrize("raw_value", ["true", "null", '"abc"', '"1,5"', '""', "[1]", '"1 2"'])
def test_values_that_are_not_numbers_are_bad_values(raw_value: str) -> None:
    with pytest.raises(OcmfBadValue, match="RV .* is not a number"):
        parse_ocmf(value_of(raw_value))


def test_other_quantities_keep_their_value_and_are_not_registers() -> None:
    record = parse_ocmf(value_of('"      30"', unit="sec", obis="01-00:00.08.06.FF"))
    (reading,) = record.readings
    assert (reading.register, reading.value, reading.unit) == (None, Decimal("30"), "sec")
    assert record.register_readings() == ()


def test_omitted_fields_carry_over_from_the_previous_reading() -> None:
    export = '{"RV":4.405,"RI":"1-0:2.8.0","RU":"kWh"}'
    record = parse_ocmf(unsigned(payload(BEGIN, export, '{"TX":"E","RV":2940}')))
    begin, carried, end = record.readings
    assert (carried.timestamp, carried.transaction, carried.status) == (
        begin.timestamp,
        "B",
        "G",
    )
    assert (carried.register, carried.value) == (Register.EXPORT, Decimal("4.405"))
    assert (end.register, end.unit, end.transaction) == (Register.EXPORT, "kWh", "E")
    assert [(r.register, r.wh) for r in record.register_readings()] == [
        (Register.IMPORT, 2935600),
        (Register.EXPORT, 4405),
        (Register.EXPORT, 2940000),
    ]


def test_a_reading_without_value_is_an_event_not_a_register_value() -> None:
    record = parse_ocmf(unsigned(payload(BEGIN, '{"TX":"X","ST":"E","EF":"E"}')))
    assert record.readings[1].value is None
    assert record.readings[1].error_flags == "E"
    assert len(record.register_readings()) == 1
    with pytest.raises(OcmfBadValue, match="RV None is missing"):
        record.readings[1].to_wh()


def test_record_fields_and_reading_fields_are_exposed() -> None:
    record = parse_ocmf(unsigned(payload(BEGIN, END)))
    assert (record.pagination, record.meter_serial, record.gateway_serial) == (
        "T12345",
        "BQ27400330016",
        "808829900001",
    )
    assert record.format_version == "1.0"
    begin, end = record.register_readings()
    assert (begin.register, begin.wh, begin.transaction, begin.status) == (
        Register.IMPORT,
        2935600,
        "B",
        "G",
    )
    assert (end.wh, end.transaction, end.timestamp - begin.timestamp) == (2965100, "E", 240)
