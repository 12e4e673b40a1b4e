"""Records that are not one ledger reading, and rejected records never stored."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ledger.readings.ingest import Ingestor
from ledger.readings.ocmf.errors import OcmfUnmappable
from ledger.readings.ocmf.record import parse_ocmf
from ledger.readings.ocmf.values import StatusFlag, ledger_values
from ledger.readings.results import OcmfSubmission, Rejection
from ledger.store.database import Store
from tests.unit.readings.ingest_ocmf.ingest_ocmf_support import (
    METER_ID,
    SERIAL,
    START,
    entry,
    ocmf_time,
    payload,
    sign_ocmf,
    submit,
    submit_ocmf,
)
from tests.unit.readings.ingest_support import assert_rejected


def test_text_that_is_not_an_ocmf_record_is_ocmf_malformed(ingestor: Ingestor) -> None:
    result = submit_ocmf(ingestor, "OCMF|{not json}|{}")
    assert_rejected(result, Rejection.OCMF_MALFORMED)
    assert (result.meter_id, result.seq) == (SERIAL, None)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({k: v for k, v in payload(1).items() if k != "MS"}, "MS"),
        ({**payload(1), "MS": ""}, "MS"),
        ({**payload(1), "MS": "M" * 33}, "not a ledger meter id"),
        ({k: v for k, v in payload(1).items() if k != "PG"}, "PG"),
        ({**payload(1), "PG": "F1"}, "fiscal"),
        ({**payload(1), "PG": "T-1"}, "T or F"),
        ({**payload(1), "PG": "T18446744073709551616"}, "exceeds"),
        ({**payload(1), "PG": "T" + "9" * 5000}, "exceeds"),
        (payload(1, entries=[entry(5, obis="1-0:1.8.0*198")]), "no import"),
        (payload(1, entries=[{"TM": ocmf_time(START), "TX": "B", "ST": "G"}]), "no import"),
    ],
)
def test_a_record_that_is_not_one_ledger_reading_is_ocmf_unmappable(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey, body: dict[str, Any], reason: str
) -> None:
    result = submit_ocmf(ingestor, sign_ocmf(meter_key, body))
    assert_rejected(result, Rejection.OCMF_UNMAPPABLE)
    assert reason in result.message


def test_ledger_values_name_the_entries_the_registers_come_from() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    body = payload(
        9,
        entries=[
            entry(1, TX="B", seq=8),
            entry(2, TX="E", seq=9),
            entry(3, seq=9, obis="1-0:2.8.0", ST="F"),
        ],
    )
    values = ledger_values(parse_ocmf(sign_ocmf(key, body)))
    assert (values.meter_serial, values.seq, values.timestamp) == (SERIAL, 9, START + 540)
    assert (values.import_wh, values.export_wh, values.entries) == (2, 3, (1, 2))
    assert values.status == StatusFlag.METER_STATUS


def test_ledger_values_of_a_fiscal_record_raise_ocmf_unmappable() -> None:
    record = parse_ocmf(sign_ocmf(ec.generate_private_key(ec.SECP256R1()), payload(1, PG="F3")))
    with pytest.raises(OcmfUnmappable) as caught:
        ledger_values(record)
    assert caught.value.code == "ocmf_unmappable"


def test_rejected_ocmf_records_are_not_stored(
    ingestor: Ingestor, store: Store, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    submit(
        ingestor,
        OcmfSubmission(SERIAL, "OCMF|{}|{}"),
        OcmfSubmission("MTR-OTHER", "not ocmf"),
    )
    assert store.count_readings(METER_ID) == 0
