"""The reading made of a record's values: units, padded strings, sub-Wh, several entries,
export, status.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ledger.readings.ingest import Ingestor
from ledger.readings.ocmf.values import StatusFlag
from ledger.readings.results import OcmfSubmission, Outcome, Rejection
from tests.unit.readings.ingest_ocmf.ingest_ocmf_support import (
    SERIAL,
    START,
    entry,
    expected,
    ocmf_time,
    payload,
    sign_ocmf,
    submit,
    submit_ocmf,
)
from tests.unit.readings.ingest_support import assert_rejected


@pytest.mark.parametrize(
    ("value", "unit", "wh"),
    [
        (7753, "Wh", 7753),
        (57.584, "kWh", 57584),
        (1234, "kWh", 1234000),
        ("       9.038", "kWh", 9038),  # DZG: a numeric string padded with spaces
        ("00000120.000", "kWh", 120000),
        ("   42", "Wh", 42),
        (0.2596, "kWh", 259),  # 259.6 Wh: the fraction of a Wh is dropped, never rounded up
        (7753.9, "Wh", 7753),
    ],
)
def test_import_values_in_kwh_and_wh_become_whole_wh_rounded_down(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey, value: Any, unit: str, wh: int
) -> None:
    body = payload(1, entries=[entry(value, unit=unit)])
    result = submit_ocmf(ingestor, sign_ocmf(meter_key, body))
    assert result.status is Outcome.ACCEPTED, result.message
    assert ingestor.reading(SERIAL, 1).import_wh == wh
    assert ingestor.reading(SERIAL, 1).canonical == expected(1, wh).encode()


def test_an_energy_value_in_another_unit_is_ocmf_bad_value(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    body = payload(1, entries=[entry(5, unit="MWh")])
    assert_rejected(submit_ocmf(ingestor, sign_ocmf(meter_key, body)), Rejection.OCMF_BAD_VALUE)


def test_a_negative_value_is_ocmf_bad_value(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    body = payload(1, entries=[entry(-1, unit="Wh")])
    assert_rejected(submit_ocmf(ingestor, sign_ocmf(meter_key, body)), Rejection.OCMF_BAD_VALUE)


def test_the_reading_is_the_last_entry_of_a_transaction_record_at_its_time_and_offset(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    end = START + 600
    body = payload(
        4,
        entries=[
            entry(1_000, TX="B", TM=ocmf_time(START, offset_minutes=120)),
            entry(1_350, TX="E", TM=ocmf_time(end, millis=999, offset_minutes=-300)),
            {"RV": 0.35, "RI": "1-b:1.9.0", "RU": "kWh"},  # not a ledger register
        ],
    )
    result = submit_ocmf(ingestor, sign_ocmf(meter_key, body))

    stored = ingestor.reading(SERIAL, 4)
    assert result.status is Outcome.ACCEPTED, result.message
    assert (stored.timestamp, stored.import_wh) == (end, 1_350)


def test_export_comes_from_2_8_0_at_the_same_time_and_is_0_when_not_reported(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    with_export = payload(
        2,
        entries=[
            entry(57.584, unit="kWh", seq=2),
            {"RV": 4.405, "RI": "1-0:2.8.0", "RU": "kWh", "ST": "G"},  # TM carries over
        ],
    )
    submit(
        ingestor,
        OcmfSubmission(SERIAL, sign_ocmf(meter_key, with_export)),
        OcmfSubmission(SERIAL, sign_ocmf(meter_key, payload(1))),
    )
    assert (ingestor.reading(SERIAL, 2).import_wh, ingestor.reading(SERIAL, 2).export_wh) == (
        57_584,
        4_405,
    )
    assert ingestor.reading(SERIAL, 1).export_wh == 0


def test_an_export_value_older_than_the_import_value_is_ocmf_unmappable(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    body = payload(
        2,
        entries=[
            entry(100, seq=1),
            entry(10, seq=1, obis="1-0:2.8.0"),
            entry(200, seq=2),
        ],
    )
    result = submit_ocmf(ingestor, sign_ocmf(meter_key, body))
    assert_rejected(result, Rejection.OCMF_UNMAPPABLE)
    assert "export" in result.message


@pytest.mark.parametrize(
    ("fields", "flags"),
    [
        ({}, StatusFlag(0)),
        ({"ST": "E"}, StatusFlag.METER_STATUS),
        ({"EF": "E"}, StatusFlag.ENERGY_ERROR),
        ({"EF": "Et"}, StatusFlag.ENERGY_ERROR | StatusFlag.TIME_ERROR),
        ({"TM": ocmf_time(START + 60, flag="U")}, StatusFlag.TIME_UNSYNCHRONIZED),
        ({"TM": ocmf_time(START + 60, flag="I")}, StatusFlag.TIME_INFORMATIVE),
        ({"TM": ocmf_time(START + 60, flag="R")}, StatusFlag.TIME_RELATIVE),
    ],
)
def test_ocmf_status_time_and_error_flags_become_status_bits(
    ingestor: Ingestor,
    meter_key: ec.EllipticCurvePrivateKey,
    fields: dict[str, Any],
    flags: StatusFlag,
) -> None:
    body = payload(1, entries=[entry(100, **fields)])
    result = submit_ocmf(ingestor, sign_ocmf(meter_key, body))
    assert result.status is Outcome.ACCEPTED, result.message
    assert ingestor.reading(SERIAL, 1).status == int(flags)
    assert ingestor.reading(SERIAL, 1).canonical == expected(1, 100, status=int(flags)).encode()
