"""Signed OCMF records that are accepted, and what is stored for them."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ledger.readings.ingest import Ingestor
from ledger.readings.native import anchored_leaf, sign_reading
from ledger.readings.ocmf.record import parse_ocmf
from ledger.readings.ocmf.verify import ocmf_signature_form
from ledger.readings.results import OcmfSubmission, Outcome, Submission
from tests.unit.readings.ingest_ocmf.ingest_ocmf_support import (
    METER_ID,
    SERIAL,
    START,
    expected,
    payload,
    sign_ocmf,
    submit,
    submit_ocmf,
)
from tests.unit.readings.ingest_support import FakeRegistry


def test_a_signed_ocmf_record_is_accepted_with_the_version_2_leaf_of_its_payload_and_signature(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    record = sign_ocmf(meter_key, payload(7))
    result = submit_ocmf(ingestor, record)
    parsed = parse_ocmf(record)

    assert (result.status, result.code) == (Outcome.ACCEPTED, None), result.message
    assert (result.meter_id, result.seq) == (SERIAL, 7)
    assert result.receipt is not None
    assert result.receipt.timestamp == START + 420
    assert result.receipt.leaf == anchored_leaf(
        expected(7, 700).encode(), parsed.payload_bytes, ocmf_signature_form(parsed)
    )
    assert result.receipt.key_epoch == 0


def test_the_exact_ocmf_text_and_signature_are_stored_beside_the_canonical_bytes(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    # Spaces inside the payload are signed bytes; a trailing newline is received and kept too.
    text = json.dumps(payload(3), separators=(", ", " : "))
    record = sign_ocmf(meter_key, text) + "\n"

    submit_ocmf(ingestor, record)
    stored = ingestor.reading(SERIAL, 3)

    assert stored.source == "ocmf"
    assert stored.raw == record.encode()
    assert stored.signature == bytes.fromhex(json.loads(record.split("|")[2])["SD"])
    assert stored.canonical == expected(3, 300).encode()
    assert (stored.timestamp, stored.import_wh, stored.export_wh) == (START + 180, 300, 0)


def test_a_secp256k1_meter_is_accepted_for_an_ecdsa_secp256k1_record(
    ingestor: Ingestor, registry: FakeRegistry
) -> None:
    key = ec.generate_private_key(ec.SECP256K1())
    registry.register(METER_ID, key)
    record = sign_ocmf(key, payload(1), algorithm="ECDSA-secp256k1-SHA256")
    assert submit_ocmf(ingestor, record).status is Outcome.ACCEPTED


def test_a_record_without_sa_is_verified_as_p256_with_sha256(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    record = sign_ocmf(meter_key, payload(1), algorithm=None)
    assert submit_ocmf(ingestor, record).status is Outcome.ACCEPTED


def test_a_raw_r_s_signature_is_accepted_and_stored_as_received(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    text = json.dumps(payload(1), separators=(",", ":"))
    r, s = decode_dss_signature(meter_key.sign(text.encode(), ec.ECDSA(hashes.SHA256())))
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    record = f'OCMF|{text}|{{"SD":"{raw.hex()}"}}'

    assert submit_ocmf(ingestor, record).status is Outcome.ACCEPTED
    assert ingestor.reading(SERIAL, 1).signature == raw


def test_a_batch_may_mix_native_readings_and_ocmf_records_of_one_meter(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    native = expected(2, 200)
    results = submit(
        ingestor,
        OcmfSubmission(SERIAL, sign_ocmf(meter_key, payload(1))),
        Submission(
            SERIAL, "0x" + native.encode().hex(), "0x" + sign_reading(meter_key, native).hex()
        ),
        OcmfSubmission(SERIAL, sign_ocmf(meter_key, payload(3))),
    )
    assert [(r.status, r.seq) for r in results] == [(Outcome.ACCEPTED, s) for s in (1, 2, 3)]
    assert [ingestor.reading(SERIAL, s).source for s in (1, 2, 3)] == ["ocmf", "native", "ocmf"]
