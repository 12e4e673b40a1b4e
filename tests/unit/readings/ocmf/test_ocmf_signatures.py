"""Signature checks: over the payload's exact bytes, in DER or r||s, on every OCMF curve and
hash, and the curves and algorithms refused.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ledger.readings.ocmf.errors import (
    OcmfBadSignature,
    OcmfUnsupportedAlgorithm,
    OcmfUnsupportedCurve,
)
from ledger.readings.ocmf.record import parse_ocmf
from ledger.readings.ocmf.verify import verify_ocmf
from tests.unit.readings.ocmf.ocmf_support import (
    BEGIN,
    END,
    P256_ORDER,
    der_hex,
    payload,
    signed,
    unsigned,
)


def test_tampered_payload_fails(
    meter_key: ec.EllipticCurvePrivateKey, meter_public_hex: str
) -> None:
    text = signed(payload(BEGIN, END), meter_key)
    tampered = text.replace('"RV":2965.1', '"RV":2965.2')
    assert tampered != text
    with pytest.raises(OcmfBadSignature) as caught:
        verify_ocmf(parse_ocmf(tampered), meter_public_hex)
    assert caught.value.code == "ocmf_bad_signature"


def test_a_single_added_space_fails(
    meter_key: ec.EllipticCurvePrivateKey, meter_public_hex: str
) -> None:
    text = signed(payload(BEGIN), meter_key)
    with pytest.raises(OcmfBadSignature):
        verify_ocmf(parse_ocmf(text.replace('"RD":', '"RD": ')), meter_public_hex)


def test_another_meters_key_fails(meter_key: ec.EllipticCurvePrivateKey) -> None:
    other = der_hex(ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(OcmfBadSignature):
        verify_ocmf(parse_ocmf(signed(payload(BEGIN), meter_key)), other)


def test_malleated_signature_still_verifies(
    meter_key: ec.EllipticCurvePrivateKey, meter_public_hex: str
) -> None:
    # Expected ECDSA behaviour, not a flaw of this verifier: (r, n - s) is a second valid
    # signature of the same payload. Never deduplicate on signature bytes; use (meter, PG).
    text = payload(BEGIN)
    r, s = decode_dss_signature(meter_key.sign(text.encode(), ec.ECDSA(hashes.SHA256())))
    twin = encode_dss_signature(r, P256_ORDER - s)
    original = parse_ocmf(f'OCMF|{text}|{{"SD":"{encode_dss_signature(r, s).hex()}"}}')
    malleated = parse_ocmf(f'OCMF|{text}|{{"SD":"{twin.hex()}"}}')
    assert malleated.signature.data != original.signature.data
    verify_ocmf(original, meter_public_hex)
    verify_ocmf(malleated, meter_public_hex)
    assert malleated.payload_bytes == original.payload_bytes


def test_raw_r_s_signature_verifies_when_it_is_not_der(
    meter_key: ec.EllipticCurvePrivateKey, meter_public_hex: str
) -> None:
    text = payload(BEGIN)
    r, s = decode_dss_signature(meter_key.sign(text.encode(), ec.ECDSA(hashes.SHA256())))
    raw = (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex().upper()
    verify_ocmf(parse_ocmf(f'OCMF|{text}|{{"SD":"{raw}"}}'), meter_public_hex)


@pytest.mark.parametrize("signature_hex", ["00" * 63, "00" * 65, "3045022100"])
def test_signature_neither_der_nor_r_s_is_a_bad_signature(
    signature_hex: str, meter_public_hex: str
) -> None:
    record = parse_ocmf(unsigned(payload(BEGIN), f'{{"SD":"{signature_hex}"}}'))
    with pytest.raises(OcmfBadSignature, match="neither DER nor r\\|\\|s"):
        verify_ocmf(record, meter_public_hex)


def test_zero_signature_is_a_bad_signature(meter_public_hex: str) -> None:
    record = parse_ocmf(unsigned(payload(BEGIN), '{"SD":"' + "00" * 64 + '"}'))
    with pytest.raises(OcmfBadSignature):
        verify_ocmf(record, meter_public_hex)


@pytest.mark.parametrize(
    ("curve", "algorithm"),
    [
        (ec.SECP256R1(), "ECDSA-secp256r1-SHA256"),
        (ec.SECP256K1(), "ECDSA-secp256k1-SHA256"),
        (ec.SECP192R1(), "ECDSA-secp192r1-SHA256"),
        (ec.SECP384R1(), "ECDSA-secp384r1-SHA256"),
        (ec.BrainpoolP256R1(), "ECDSA-brainpool256r1-SHA256"),
        (ec.BrainpoolP384R1(), "ECDSA-brainpool384r1-SHA256"),
    ],
)
def test_each_ocmf_curve_verifies(curve: ec.EllipticCurve, algorithm: str) -> None:
    key = ec.generate_private_key(curve)
    verify_ocmf(
        parse_ocmf(signed(payload(BEGIN), key, algorithm=algorithm)), der_hex(key.public_key())
    )


@pytest.mark.parametrize(
    ("algorithm", "digest"),
    [("ECDSA-secp256r1-SHA384", hashes.SHA384()), ("ECDSA-secp256r1-SHA512", hashes.SHA512())],
)
def test_the_hash_named_in_sa_is_used(algorithm: str, digest: hashes.HashAlgorithm) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = der_hex(key.public_key())
    text = signed(payload(BEGIN), key, algorithm=algorithm, digest=digest)
    verify_ocmf(parse_ocmf(text), public)
    with pytest.raises(OcmfBadSignature):  # the same signature read as SHA-256 fails
        verify_ocmf(parse_ocmf(text.replace(algorithm, "ECDSA-secp256r1-SHA256")), public)


def test_secp192k1_is_refused_with_a_specific_error(meter_public_hex: str) -> None:
    record = parse_ocmf(unsigned(payload(BEGIN), '{"SA":"ECDSA-secp192k1-SHA256","SD":"3006"}'))
    assert record.readings[0].value == Decimal("2935.6")  # values still readable
    with pytest.raises(OcmfUnsupportedCurve, match="OpenSSL .* does not implement secp192k1") as e:
        verify_ocmf(record, meter_public_hex)
    assert e.value.code == "ocmf_unsupported_curve"
    assert e.value.curve == "secp192k1"


def test_a_der_key_on_a_curve_openssl_lacks_is_an_unsupported_curve() -> None:
    # secp192k1 SubjectPublicKeyInfo (OID 1.3.132.0.31), from the Transparenzsoftware corpus.
    secp192k1_key = (
        "3046301006072A8648CE3D020106052B8104001F03320004C2006542218BB27F5E0B945C5F9D158867B666"
        "B3BB4414ABC6569489A8F7985020C77F0F32A4B4E183A3056127C34869"
    )
    record = parse_ocmf(unsigned(payload(BEGIN)))
    with pytest.raises(OcmfUnsupportedCurve):
        verify_ocmf(record, secp192k1_key)


@pytest.mark.parametrize("algorithm", ["ECDSA-secp999r1-SHA256", "ECDSA-P-256-SHA256"])
def test_unknown_curves_are_refused(algorithm: str, meter_public_hex: str) -> None:
    record = parse_ocmf(unsigned(payload(BEGIN), f'{{"SA":"{algorithm}","SD":"3006"}}'))
    with pytest.raises((OcmfUnsupportedCurve, OcmfUnsupportedAlgorithm)):
        verify_ocmf(record, meter_public_hex)


@pytest.mark.parametrize(
    "algorithm", ["RSA-2048-SHA256", "ECDSA-secp256r1-SHA1", "ECDSA-secp256r1-MD5", "ecdsa"]
)
def test_other_signature_algorithms_are_refused(algorithm: str, meter_public_hex: str) -> None:
    record = parse_ocmf(unsigned(payload(BEGIN), f'{{"SA":"{algorithm}","SD":"3006"}}'))
    with pytest.raises(OcmfUnsupportedAlgorithm) as caught:
        verify_ocmf(record, meter_public_hex)
    assert caught.value.code == "ocmf_unsupported_algorithm"
