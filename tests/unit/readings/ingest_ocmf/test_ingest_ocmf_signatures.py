"""A record's signature, the meter's key and the binding of the record to the meter."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ledger.meters.keys import KeyAlgorithm, generate_key
from ledger.meters.registry import meter_id_bytes
from ledger.readings.ingest import Ingestor
from ledger.readings.results import Outcome, Rejection
from ledger.store.database import Store
from tests.unit.readings.ingest_ocmf.ingest_ocmf_support import (
    METER_ID,
    SERIAL,
    START,
    entry,
    ocmf_time,
    payload,
    sign_ocmf,
    submit_ocmf,
)
from tests.unit.readings.ingest_support import NOW, FakeRegistry, assert_rejected


def test_a_payload_changed_after_signing_is_bad_signature(
    ingestor: Ingestor, store: Store, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    record = sign_ocmf(meter_key, payload(1))
    tampered = record.replace('"RV":100', '"RV":900')
    assert tampered != record

    assert_rejected(submit_ocmf(ingestor, tampered), Rejection.BAD_SIGNATURE)
    assert store.count_readings(METER_ID) == 0


def test_a_payload_reserialised_with_other_whitespace_is_bad_signature(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    record = sign_ocmf(meter_key, payload(1))
    text, signature = record[len("OCMF|") :].rsplit("|", 1)
    spaced = "OCMF|" + json.dumps(json.loads(text)) + "|" + signature
    assert_rejected(submit_ocmf(ingestor, spaced), Rejection.BAD_SIGNATURE)


def test_a_record_signed_by_another_key_is_bad_signature(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    intruder = ec.generate_private_key(ec.SECP256R1())
    assert_rejected(submit_ocmf(ingestor, sign_ocmf(intruder, payload(1))), Rejection.BAD_SIGNATURE)


def test_a_secp256k1_record_for_a_p256_meter_is_bad_signature(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    other = ec.generate_private_key(ec.SECP256K1())
    record = sign_ocmf(other, payload(1), algorithm="ECDSA-secp256k1-SHA256")
    result = submit_ocmf(ingestor, record)
    assert_rejected(result, Rejection.BAD_SIGNATURE)
    assert "p256" in result.message


def test_an_ed25519_meter_cannot_have_signed_an_ocmf_record(
    ingestor: Ingestor, registry: FakeRegistry
) -> None:
    registry.register(METER_ID, generate_key(KeyAlgorithm.ED25519))
    record = sign_ocmf(ec.generate_private_key(ec.SECP256R1()), payload(1))
    assert_rejected(submit_ocmf(ingestor, record), Rejection.BAD_SIGNATURE)


@pytest.mark.parametrize(
    ("curve", "algorithm"),
    [
        (ec.SECP384R1(), "ECDSA-secp384r1-SHA256"),
        (ec.BrainpoolP256R1(), "ECDSA-brainpool256r1-SHA256"),
    ],
)
def test_a_record_on_a_curve_the_registry_cannot_hold_is_ocmf_unsupported_curve(
    ingestor: Ingestor,
    meter_key: ec.EllipticCurvePrivateKey,
    curve: ec.EllipticCurve,
    algorithm: str,
) -> None:
    record = sign_ocmf(ec.generate_private_key(curve), payload(1), algorithm=algorithm)
    result = submit_ocmf(ingestor, record)
    assert_rejected(result, Rejection.OCMF_UNSUPPORTED_CURVE)
    assert (result.meter_id, result.seq) == (SERIAL, 1)


def test_a_secp192k1_record_is_ocmf_unsupported_curve(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    # OpenSSL has no secp192k1, so this record cannot be signed here: its SD is never looked at.
    text = json.dumps(payload(1), separators=(",", ":"))
    record = f'OCMF|{text}|{{"SA":"ECDSA-secp192k1-SHA256","SD":"3006020101020101"}}'
    assert_rejected(submit_ocmf(ingestor, record), Rejection.OCMF_UNSUPPORTED_CURVE)


def test_a_record_with_an_unknown_signature_method_is_ocmf_unsupported_algorithm(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    record = sign_ocmf(meter_key, payload(1), algorithm="RSA-2048-SHA256")
    assert_rejected(submit_ocmf(ingestor, record), Rejection.OCMF_UNSUPPORTED_ALGORITHM)


def test_a_record_with_sha384_under_a_p256_key_is_accepted(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    record = sign_ocmf(
        meter_key, payload(1), algorithm="ECDSA-secp256r1-SHA384", hash_algorithm=hashes.SHA384()
    )
    assert submit_ocmf(ingestor, record).status is Outcome.ACCEPTED


def test_body_meter_id_other_than_the_record_ms_is_meter_mismatch(
    ingestor: Ingestor, registry: FakeRegistry, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    # Even a registered meter cannot submit another meter's record under its own id.
    registry.register(meter_id_bytes("MTR-OTHER"), meter_key)
    result = submit_ocmf(ingestor, sign_ocmf(meter_key, payload(1)), meter_id="MTR-OTHER")
    assert_rejected(result, Rejection.METER_MISMATCH)
    assert (result.meter_id, result.seq) == (SERIAL, 1)


def test_body_meter_id_in_hex_form_matches_the_ms(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    record = sign_ocmf(meter_key, payload(1))
    assert submit_ocmf(ingestor, record, meter_id="0x" + METER_ID.hex()).status is Outcome.ACCEPTED


def test_body_meter_id_that_is_no_text_is_meter_mismatch(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    result = submit_ocmf(ingestor, sign_ocmf(meter_key, payload(1)), meter_id="\ud800")
    assert_rejected(result, Rejection.METER_MISMATCH)


def test_a_record_of_an_unregistered_meter_is_unknown_meter(ingestor: Ingestor) -> None:
    record = sign_ocmf(ec.generate_private_key(ec.SECP256R1()), payload(1))
    assert_rejected(submit_ocmf(ingestor, record), Rejection.UNKNOWN_METER)


def test_a_record_from_before_the_meters_first_key_is_no_key_at_time(
    ingestor: Ingestor, registry: FakeRegistry
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    registry.register(METER_ID, key, valid_from=START + 61)
    assert_rejected(submit_ocmf(ingestor, sign_ocmf(key, payload(1))), Rejection.NO_KEY_AT_TIME)


def test_a_record_timed_beyond_the_allowed_skew_is_clock_skew(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    future = payload(1, entries=[entry(100, TM=ocmf_time(NOW + 301))])
    assert_rejected(submit_ocmf(ingestor, sign_ocmf(meter_key, future)), Rejection.CLOCK_SKEW)
