"""Registration key forms (`parse_public_key`) and the point checks every form goes through.

Wycheproof-style tables: Ed25519 small-order, non-canonical, off-curve and mixed-order keys, and
the ECDSA encodings of the point at infinity, off-curve points and compressed points.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ledger.errors import MeterError
from ledger.meters.keys import (
    KeyAlgorithm,
    decode_public_key,
    encode_public_key,
    generate_key,
    parse_public_key,
)
from tests.fixtures.ed25519_vectors import (
    MIXED_ORDER_KEYS,
    NON_CANONICAL_KEYS,
    OFF_CURVE_KEYS,
    RFC8032_TEST1_PUBLIC_KEY,
    SMALL_ORDER_KEYS,
)

WEAK_ED25519_KEYS = SMALL_ORDER_KEYS + NON_CANONICAL_KEYS + OFF_CURVE_KEYS + MIXED_ORDER_KEYS
ECDSA = [KeyAlgorithm.P256, KeyAlgorithm.SECP256K1]


def spki_der(key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# Ed25519 point checks


@pytest.mark.parametrize(
    ("name", "encoded"), WEAK_ED25519_KEYS, ids=[n for n, _ in WEAK_ED25519_KEYS]
)
def test_a_weak_ed25519_key_is_refused_at_registration(name: str, encoded: str) -> None:
    with pytest.raises(MeterError, match="ed25519"):
        parse_public_key("0x" + encoded, "ed25519")


@pytest.mark.parametrize(
    ("name", "encoded"), WEAK_ED25519_KEYS, ids=[n for n, _ in WEAK_ED25519_KEYS]
)
def test_a_weak_ed25519_key_is_refused_when_read_from_the_registry(name: str, encoded: str) -> None:
    with pytest.raises(MeterError):
        decode_public_key(KeyAlgorithm.ED25519, bytes.fromhex(encoded))


def test_a_weak_ed25519_key_is_refused_inside_der_too() -> None:
    identity = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(SMALL_ORDER_KEYS[0][1]))

    with pytest.raises(MeterError, match="small order"):
        parse_public_key(spki_der(identity).hex())


def test_the_rfc8032_test_key_and_generated_keys_are_accepted() -> None:
    keys = [bytes.fromhex(RFC8032_TEST1_PUBLIC_KEY)] + [
        encode_public_key(generate_key(KeyAlgorithm.ED25519).public_key()) for _ in range(20)
    ]

    for raw in keys:
        assert encode_public_key(parse_public_key(raw.hex(), "ed25519")) == raw


# ECDSA point checks


@pytest.mark.parametrize("algorithm", ECDSA, ids=lambda a: a.label)
@pytest.mark.parametrize(
    "encoded",
    ["00", "04" + "00" * 64, "04" + "01" * 64, "06" + "11" * 64, "05" + "11" * 32],
    ids=["infinity", "zero-point", "off-curve", "hybrid", "bad-prefix"],
)
def test_an_ecdsa_key_at_infinity_off_the_curve_or_in_another_encoding_is_refused(
    algorithm: KeyAlgorithm, encoded: str
) -> None:
    with pytest.raises(MeterError):
        parse_public_key(encoded, algorithm)


@pytest.mark.parametrize("algorithm", ECDSA, ids=lambda a: a.label)
def test_a_compressed_sec1_point_is_accepted_and_stored_uncompressed(
    algorithm: KeyAlgorithm,
) -> None:
    public = generate_key(algorithm).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    compressed = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )

    parsed = parse_public_key(compressed.hex(), algorithm)

    assert encode_public_key(parsed) == encode_public_key(public)
    assert encode_public_key(parsed)[:1] == b"\x04"


# Registration forms


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm), ids=lambda a: a.label)
@pytest.mark.parametrize(
    "form",
    ["pem", "der-hex", "der-base64", "der-hex-0x-spaced", "registry-hex", "registry-hex-upper"],
)
def test_every_registration_form_gives_the_registry_encoding(
    algorithm: KeyAlgorithm, form: str
) -> None:
    public = generate_key(algorithm).public_key()
    stored = encode_public_key(public)
    der = spki_der(public)
    text = {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode(),
        "der-hex": der.hex(),
        "der-base64": base64.b64encode(der).decode(),
        "der-hex-0x-spaced": "0x" + " ".join(der[i : i + 16].hex() for i in range(0, 91, 16)),
        "registry-hex": "0x" + stored.hex(),
        "registry-hex-upper": "0x" + stored.hex().upper(),
    }[form]

    assert encode_public_key(parse_public_key(text, algorithm)) == stored


@pytest.mark.parametrize("algorithm", ECDSA, ids=lambda a: a.label)
def test_raw_x_y_is_read_as_the_given_algorithm(algorithm: KeyAlgorithm) -> None:
    stored = encode_public_key(generate_key(algorithm).public_key())

    assert encode_public_key(parse_public_key(stored[1:].hex(), algorithm)) == stored


def test_raw_x_y_without_an_algorithm_is_refused() -> None:
    stored = encode_public_key(generate_key(KeyAlgorithm.P256).public_key())

    with pytest.raises(MeterError, match="give its algorithm"):
        parse_public_key(stored[1:].hex())


def test_a_der_key_without_an_algorithm_names_its_own() -> None:
    public = generate_key(KeyAlgorithm.SECP256K1).public_key()

    parsed = parse_public_key(base64.b64encode(spki_der(public)).decode())

    assert isinstance(parsed, ec.EllipticCurvePublicKey)
    assert isinstance(parsed.curve, ec.SECP256K1)


def test_a_key_of_another_algorithm_than_the_one_given_is_refused() -> None:
    public = generate_key(KeyAlgorithm.SECP256K1).public_key()

    with pytest.raises(MeterError, match="secp256k1, not p256"):
        parse_public_key(spki_der(public).hex(), "p256")


def test_a_32_byte_key_without_an_algorithm_is_ed25519() -> None:
    stored = encode_public_key(generate_key(KeyAlgorithm.ED25519).public_key())

    assert isinstance(parse_public_key(stored.hex()), ed25519.Ed25519PublicKey)


def test_a_private_key_is_refused_unless_read_from_the_registrars_own_file() -> None:
    private = generate_key(KeyAlgorithm.P256)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    with pytest.raises(MeterError, match="private key never leaves the meter"):
        parse_public_key(pem.decode())
    parsed = parse_public_key(pem, allow_private=True)
    assert encode_public_key(parsed) == encode_public_key(private.public_key())


def test_binary_der_from_a_file_is_read() -> None:
    public = generate_key(KeyAlgorithm.P256).public_key()

    assert encode_public_key(parse_public_key(spki_der(public))) == encode_public_key(public)


@pytest.mark.parametrize("text", ["hello world!", "0x123", "", "-----BEGIN PUBLIC KEY-----\nxx"])
def test_text_that_is_no_key_form_is_refused(text: str) -> None:
    with pytest.raises(MeterError):
        parse_public_key(text)
