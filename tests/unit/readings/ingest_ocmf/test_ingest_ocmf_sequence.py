"""OCMF records through the sequence checks: duplicates, conflicts, order and gaps."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from ledger.readings.ingest import Ingestor
from ledger.readings.results import OcmfSubmission, Outcome, Rejection
from ledger.store.database import Store
from tests.unit.readings.ingest_ocmf.ingest_ocmf_support import (
    METER_ID,
    SERIAL,
    entry,
    expected,
    payload,
    sign_ocmf,
    submit,
    submit_ocmf,
)
from tests.unit.readings.ingest_support import assert_rejected


def test_the_same_record_again_is_a_duplicate_with_the_original_receipt(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    record = sign_ocmf(meter_key, payload(1))
    first = submit_ocmf(ingestor, record)
    again = submit_ocmf(ingestor, record)
    assert (again.status, again.code) == (Outcome.DUPLICATE, None)
    assert again.receipt == first.receipt


def test_the_same_payload_with_another_signature_is_a_duplicate_keeping_the_first(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    first = sign_ocmf(meter_key, payload(1))
    resigned = sign_ocmf(meter_key, payload(1))  # a new random ECDSA nonce: other SD bytes
    assert first != resigned

    submit_ocmf(ingestor, first)
    again = submit_ocmf(ingestor, resigned)

    assert again.status is Outcome.DUPLICATE
    assert ingestor.reading(SERIAL, 1).raw == first.encode()


def test_another_record_with_the_same_pagination_is_a_conflicting_reading(
    ingestor: Ingestor, store: Store, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    submit_ocmf(ingestor, sign_ocmf(meter_key, payload(1)))
    other = payload(1, entries=[entry(150)])

    result = submit_ocmf(ingestor, sign_ocmf(meter_key, other))

    assert_rejected(result, Rejection.CONFLICTING_READING)
    (event,) = store.integrity_events(METER_ID)
    assert (event.seq, event.kind) == (1, "conflicting_reading")
    assert event.received_canonical == expected(1, 150).encode()
    assert ingestor.reading(SERIAL, 1).import_wh == 100


def test_a_record_below_the_previous_register_is_register_decreased(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    lower = payload(2, entries=[entry(50, seq=2)])
    results = submit(
        ingestor,
        OcmfSubmission(SERIAL, sign_ocmf(meter_key, payload(1))),
        OcmfSubmission(SERIAL, sign_ocmf(meter_key, lower)),
    )
    assert_rejected(results[1], Rejection.REGISTER_DECREASED)


def test_a_record_not_after_the_previous_one_is_timestamp_out_of_order(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    same_time = payload(2, entries=[entry(200, seq=1)])
    results = submit(
        ingestor,
        OcmfSubmission(SERIAL, sign_ocmf(meter_key, payload(1))),
        OcmfSubmission(SERIAL, sign_ocmf(meter_key, same_time)),
    )
    assert_rejected(results[1], Rejection.TIMESTAMP_OUT_OF_ORDER)


def test_a_pagination_jump_is_accepted_and_recorded_as_a_gap(
    ingestor: Ingestor, store: Store, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    results = submit(
        ingestor,
        OcmfSubmission(SERIAL, sign_ocmf(meter_key, payload(1))),
        OcmfSubmission(SERIAL, sign_ocmf(meter_key, payload(4))),
    )
    assert [r.status for r in results] == [Outcome.ACCEPTED] * 2
    assert [(g.from_seq, g.to_seq) for g in store.gaps(METER_ID)] == [(2, 3)]
