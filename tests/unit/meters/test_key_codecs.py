"""The key codecs of `ledger.meters.keys`: one parser per format, and the three callers that use
them (registration's `parse_public_key`, the registry encoding's `decode_public_key`, an OCMF
record's `load_ocmf_public_key`) reading the same key the same way, each with its own words."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ledger.errors import MeterError
from ledger.meters.keys import (
    KeyAlgorithm,
    KeyDecodeError,
    algorithm_of_curve,
    decode_public_key,
    ed25519_raw,
    encode_public_key,
    generate_key,
    key_text_bytes,
    parse_public_key,
    pem_public_key,
    raw_xy_point,
    sec1_point,
    spki_der,
)
from ledger.readings.ocmf.errors import OcmfBadKey
from ledger.readings.ocmf.verify import load_ocmf_public_key, signature_method
from tests.fixtures.ed25519_vectors import RFC8032_TEST1_PUBLIC_KEY, SMALL_ORDER_KEYS

CURVES = {KeyAlgorithm.P256: ec.SECP256R1(), KeyAlgorithm.SECP256K1: ec.SECP256K1()}
OCMF_METHODS = {
    KeyAlgorithm.P256: "ECDSA-secp256r1-SHA256",
    KeyAlgorithm.SECP256K1: "ECDSA-secp256k1-SHA256",
}


def ecdsa_key(algorithm: KeyAlgorithm) -> ec.EllipticCurvePublicKey:
    key = generate_key(algorithm).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def point(key: ec.EllipticCurvePublicKey, form: serialization.PublicFormat) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, form)


def spki(key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("algorithm", list(CURVES))
@pytest.mark.parametrize(
    "form",
    [serialization.PublicFormat.UncompressedPoint, serialization.PublicFormat.CompressedPoint],
)
def test_sec1_point_reads_a_compressed_or_uncompressed_point_of_its_curve(
    algorithm: KeyAlgorithm, form: serialization.PublicFormat
) -> None:
    key = ecdsa_key(algorithm)

    parsed = sec1_point(CURVES[algorithm], point(key, form))

    assert encode_public_key(parsed) == encode_public_key(key)


@pytest.mark.parametrize(
    "data", [b"\x00", b"\x04" + bytes(64), b"\x02" + b"\xff" * 32], ids=["infinity", "zero", "off"]
)
def test_sec1_point_refuses_the_point_at_infinity_and_points_off_the_curve(data: bytes) -> None:
    with pytest.raises(KeyDecodeError) as raised:
        sec1_point(ec.SECP256R1(), data)

    assert not raised.value.unsupported


@pytest.mark.parametrize("algorithm", list(CURVES))
def test_raw_xy_point_reads_x_and_y_without_the_sec1_prefix(algorithm: KeyAlgorithm) -> None:
    key = ecdsa_key(algorithm)
    uncompressed = point(key, serialization.PublicFormat.UncompressedPoint)

    assert encode_public_key(raw_xy_point(CURVES[algorithm], uncompressed[1:])) == uncompressed


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_spki_der_reads_a_key_of_every_registry_algorithm(algorithm: KeyAlgorithm) -> None:
    key = generate_key(algorithm).public_key()

    parsed = spki_der(spki(key))

    assert isinstance(parsed, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey)
    assert encode_public_key(parsed) == encode_public_key(key)


def test_spki_der_refuses_bytes_that_are_not_der() -> None:
    with pytest.raises(KeyDecodeError) as raised:
        spki_der(b"\x30\x03\x02\x01")

    assert not raised.value.unsupported


def test_pem_public_key_reads_a_pem_subject_public_key_info() -> None:
    key = ecdsa_key(KeyAlgorithm.P256)
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    parsed = pem_public_key(pem)

    assert isinstance(parsed, ec.EllipticCurvePublicKey)
    assert encode_public_key(parsed) == encode_public_key(key)


def test_ed25519_raw_reads_a_32_byte_key() -> None:
    parsed = ed25519_raw(bytes.fromhex(RFC8032_TEST1_PUBLIC_KEY))

    assert encode_public_key(parsed).hex() == RFC8032_TEST1_PUBLIC_KEY


@pytest.mark.parametrize(
    ("name", "key_hex"), SMALL_ORDER_KEYS, ids=[n for n, _ in SMALL_ORDER_KEYS]
)
def test_ed25519_raw_refuses_a_small_order_key(name: str, key_hex: str) -> None:
    with pytest.raises(KeyDecodeError):
        ed25519_raw(bytes.fromhex(key_hex))


@pytest.mark.parametrize(
    "text", ["0a0B", "0x0a0b", "0X0A0B", " 0a 0b\n", base64.b64encode(b"\x0a\x0b").decode()]
)
def test_key_text_bytes_reads_hex_with_or_without_0x_and_base64(text: str) -> None:
    assert key_text_bytes(text) == b"\x0a\x0b"


@pytest.mark.parametrize("text", ["zz!", "0a0", "é"])
def test_key_text_bytes_refuses_text_that_is_neither_hex_nor_base64(text: str) -> None:
    with pytest.raises(KeyDecodeError, match="neither hex nor base64"):
        key_text_bytes(text)


def test_algorithm_of_curve_names_the_registry_algorithm_or_none() -> None:
    assert algorithm_of_curve(ec.SECP256R1()) is KeyAlgorithm.P256
    assert algorithm_of_curve(ec.SECP256K1()) is KeyAlgorithm.SECP256K1
    assert algorithm_of_curve(ec.SECP384R1()) is None


@pytest.mark.parametrize("algorithm", list(CURVES))
def test_registration_registry_and_ocmf_read_the_same_der_hex_key_alike(
    algorithm: KeyAlgorithm,
) -> None:
    key = ecdsa_key(algorithm)
    der_hex = spki(key).hex()

    registered = encode_public_key(parse_public_key(der_hex, algorithm))
    from_registry = encode_public_key(decode_public_key(algorithm, registered))
    method = signature_method(OCMF_METHODS[algorithm])
    from_ocmf = encode_public_key(load_ocmf_public_key(der_hex, method))

    assert registered == from_registry == from_ocmf == encode_public_key(key)


def test_an_off_curve_point_is_refused_by_registration_and_ocmf_each_in_its_own_words() -> None:
    off_curve = "04" + "00" * 64

    with pytest.raises(MeterError, match="^not a valid p256 public key: "):
        parse_public_key(off_curve, KeyAlgorithm.P256)
    with pytest.raises(OcmfBadKey, match="not a point on secp256r1: "):
        load_ocmf_public_key(off_curve, signature_method("ECDSA-secp256r1-SHA256"))


def test_an_ocmf_key_text_that_is_not_ascii_is_a_bad_key_not_a_crash() -> None:
    with pytest.raises(OcmfBadKey, match="the key text is neither hex nor base64"):
        load_ocmf_public_key("clé", signature_method("ECDSA-secp256r1-SHA256"))
