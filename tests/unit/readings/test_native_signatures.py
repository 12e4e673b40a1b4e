"""Signatures of native readings: P-256, secp256k1 and Ed25519, the encodings accepted, the
forgeries and malleations refused, and the RFCs the signing library reproduces.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils

from ledger.errors import MeterError
from ledger.meters.keys import ED25519_ORDER, KeyAlgorithm, generate_key
from ledger.readings.native import (
    ReadingSignatureError,
    raw_ecdsa_verified,
    raw_ecdsa_verifies,
    sign_canonical,
    sign_reading,
    verify_reading_signature,
    verify_signature,
)
from tests.fixtures.ed25519_vectors import (
    IDENTITY_FORGERY_SIGNATURE,
    IDENTITY_KEY,
    SMALL_ORDER_KEYS,
)
from tests.unit.readings.native_support import (
    ALGORITHMS,
    CURVE_ORDER,
    ECDSA_ALGORITHMS,
    public_bytes,
    reading,
)


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.label)
def test_a_signed_reading_verifies_under_its_key(algorithm: KeyAlgorithm) -> None:
    key = generate_key(algorithm)
    r = reading()
    signature = sign_reading(key, r)
    assert len(signature) == 64
    verify_reading_signature(algorithm, public_bytes(key), r.encode(), signature)


def test_the_identity_key_forgery_is_refused() -> None:
    # With the identity point as key, R = identity and S = 0 verify for any message in a
    # cofactorless verifier (OpenSSL's): the key is refused before any signature is looked at.
    forged = bytes.fromhex(IDENTITY_FORGERY_SIGNATURE)

    with pytest.raises(MeterError, match="small order"):
        verify_reading_signature(
            KeyAlgorithm.ED25519, bytes.fromhex(IDENTITY_KEY), reading().encode(), forged
        )


def test_a_small_order_r_is_refused_even_under_a_key_that_got_past_registration() -> None:
    # A key object made without the registry's checks (as an old registry entry could be).
    identity = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(IDENTITY_KEY))
    forged = bytes.fromhex(IDENTITY_FORGERY_SIGNATURE)

    with pytest.raises(ReadingSignatureError, match="small order"):
        verify_signature(KeyAlgorithm.ED25519, identity, reading().encode(), forged)


@pytest.mark.parametrize("encoded", [h for _, h in SMALL_ORDER_KEYS], ids=lambda h: h[:8] + h[-2:])
def test_an_ed25519_signature_whose_r_has_small_order_is_refused(encoded: str) -> None:
    key = generate_key(KeyAlgorithm.ED25519)
    signature = bytes.fromhex(encoded) + sign_reading(key, reading())[32:]

    with pytest.raises(ReadingSignatureError, match="small order"):
        verify_reading_signature(
            KeyAlgorithm.ED25519, public_bytes(key), reading().encode(), signature
        )


def test_an_ed25519_signature_with_s_not_below_l_is_refused() -> None:
    key = generate_key(KeyAlgorithm.ED25519)
    signature = sign_reading(key, reading())
    s = int.from_bytes(signature[32:], "little")
    # S + L is the same signature in a second encoding, valid modulo L.
    malleated = signature[:32] + (s + ED25519_ORDER).to_bytes(32, "little")

    with pytest.raises(ReadingSignatureError, match="S >= L"):
        verify_reading_signature(
            KeyAlgorithm.ED25519, public_bytes(key), reading().encode(), malleated
        )


@pytest.mark.parametrize("algorithm", ECDSA_ALGORITHMS, ids=lambda a: a.label)
def test_a_ber_but_not_der_ecdsa_signature_is_refused(algorithm: KeyAlgorithm) -> None:
    key = generate_key(algorithm)
    raw = sign_reading(key, reading())
    der = utils.encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
    # The same SEQUENCE with a long-form length: valid BER, not DER.
    ber = b"\x30\x81" + der[1:]

    with pytest.raises(ReadingSignatureError):
        verify_reading_signature(algorithm, public_bytes(key), reading().encode(), ber)


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.label)
def test_signatures_are_deterministic(algorithm: KeyAlgorithm) -> None:
    key = generate_key(algorithm)
    assert sign_reading(key, reading()) == sign_reading(key, reading())


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.label)
def test_a_changed_reading_does_not_verify(algorithm: KeyAlgorithm) -> None:
    key = generate_key(algorithm)
    signature = sign_reading(key, reading(import_wh=12_345))
    with pytest.raises(ReadingSignatureError, match="does not verify") as caught:
        verify_reading_signature(
            algorithm, public_bytes(key), reading(import_wh=12_346).encode(), signature
        )
    assert caught.value.code == "bad_signature"


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.label)
def test_another_meters_key_does_not_verify(algorithm: KeyAlgorithm) -> None:
    signature = sign_reading(generate_key(algorithm), reading())
    other = public_bytes(generate_key(algorithm))
    with pytest.raises(ReadingSignatureError):
        verify_reading_signature(algorithm, other, reading().encode(), signature)


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.label)
@pytest.mark.parametrize("length", [0, 63, 65, 73])
def test_a_signature_of_the_wrong_size_is_refused(algorithm: KeyAlgorithm, length: int) -> None:
    key = generate_key(algorithm)
    with pytest.raises(ReadingSignatureError):
        verify_reading_signature(algorithm, public_bytes(key), reading().encode(), b"\x30" * length)


def test_an_ed25519_meter_signs_the_digest_as_its_message() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    canonical = reading().encode()
    key.public_key().verify(sign_canonical(key, canonical), hashlib.sha256(canonical).digest())


@pytest.mark.parametrize("algorithm", ECDSA_ALGORITHMS, ids=lambda a: a.label)
def test_an_ecdsa_signature_is_plain_ecdsa_sha256_over_the_canonical_bytes(
    algorithm: KeyAlgorithm,
) -> None:
    key = generate_key(algorithm)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    canonical = reading().encode()
    raw = sign_canonical(key, canonical)
    der = utils.encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
    key.public_key().verify(der, canonical, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("algorithm", ECDSA_ALGORITHMS, ids=lambda a: a.label)
def test_a_der_encoded_ecdsa_signature_is_accepted(algorithm: KeyAlgorithm) -> None:
    key = generate_key(algorithm)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    canonical = reading().encode()
    der = key.sign(canonical, ec.ECDSA(hashes.SHA256()))  # a random nonce, as some meters use
    verify_reading_signature(algorithm, public_bytes(key), canonical, der)
    with pytest.raises(ReadingSignatureError):
        verify_reading_signature(algorithm, public_bytes(key), canonical, der + b"\x00")


@pytest.mark.parametrize("algorithm", ECDSA_ALGORITHMS, ids=lambda a: a.label)
def test_ecdsa_is_malleable_so_r_and_n_minus_s_verify_too(algorithm: KeyAlgorithm) -> None:
    # Why readings are identified by (meter_id, seq): the same reading, two signature byte strings.
    key = generate_key(algorithm)
    canonical = reading().encode()
    raw = sign_canonical(key, canonical)
    r, s = int.from_bytes(raw[:32]), int.from_bytes(raw[32:])
    twin = raw[:32] + (CURVE_ORDER[algorithm] - s).to_bytes(32, "big")
    assert twin != raw
    verify_reading_signature(algorithm, public_bytes(key), canonical, raw)
    verify_reading_signature(algorithm, public_bytes(key), canonical, twin)
    verify_reading_signature(
        algorithm, public_bytes(key), canonical, utils.encode_dss_signature(r, s)
    )


@pytest.mark.parametrize("algorithm", ECDSA_ALGORITHMS, ids=lambda a: a.label)
@pytest.mark.parametrize("which", ["r", "s"])
@pytest.mark.parametrize("value", ["zero", "order"])
def test_ecdsa_r_or_s_out_of_range_is_refused(
    algorithm: KeyAlgorithm, which: str, value: str
) -> None:
    key = generate_key(algorithm)
    canonical = reading().encode()
    raw = sign_canonical(key, canonical)
    bad = (0 if value == "zero" else CURVE_ORDER[algorithm]).to_bytes(32, "big")
    forged = bad + raw[32:] if which == "r" else raw[:32] + bad
    with pytest.raises(ReadingSignatureError):
        verify_reading_signature(algorithm, public_bytes(key), canonical, forged)


def test_a_key_of_another_algorithm_is_a_meter_error() -> None:
    p256 = generate_key(KeyAlgorithm.P256)
    signature = sign_reading(p256, reading())
    with pytest.raises(MeterError):
        verify_reading_signature(
            KeyAlgorithm.ED25519, public_bytes(p256), reading().encode(), signature
        )


def test_a_p256_signature_does_not_verify_as_secp256k1() -> None:
    scalar = 0x1234567890ABCDEF
    p256 = ec.derive_private_key(scalar, ec.SECP256R1())
    k1 = ec.derive_private_key(scalar, ec.SECP256K1())
    signature = sign_reading(p256, reading())
    with pytest.raises(ReadingSignatureError):
        verify_reading_signature(
            KeyAlgorithm.SECP256K1, public_bytes(k1), reading().encode(), signature
        )


def test_signing_with_another_curve_is_refused() -> None:
    with pytest.raises(ReadingSignatureError, match="unsupported curve"):
        sign_reading(ec.generate_private_key(ec.SECP384R1()), reading())


def test_deterministic_p256_signing_is_rfc6979() -> None:
    # RFC 6979 appendix A.2.5, P-256, SHA-256, message "sample".
    key = ec.derive_private_key(
        0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721, ec.SECP256R1()
    )
    r, s = utils.decode_dss_signature(
        key.sign(b"sample", ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    )
    assert r == 0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716
    assert s == 0xF7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8


def test_ed25519_is_rfc8032() -> None:
    # RFC 8032 section 7.1, test 1 (empty message).
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    signature = ed25519.Ed25519PrivateKey.from_private_bytes(seed).sign(b"")
    assert signature.hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e"
        "39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )


@pytest.mark.parametrize("algorithm", ECDSA_ALGORITHMS, ids=lambda a: a.label)
def test_raw_ecdsa_verified_answers_each_as_raw_ecdsa_verifies_does_in_order(
    algorithm: KeyAlgorithm,
) -> None:
    key, other = generate_key(algorithm), generate_key(algorithm)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    public = key.public_key()
    signed = [reading(seq=seq).encode() for seq in range(1, 5)]
    signatures = [sign_canonical(key, canonical) for canonical in signed]
    items = [
        (public, signed[0], signatures[0]),  # sound
        None,  # nothing to check
        (public, signed[1], signatures[2]),  # the signature of other bytes
        (public, signed[3], sign_canonical(other, signed[3])),  # another key's
        (public, signed[2], signatures[2]),  # sound
    ]

    verified = raw_ecdsa_verified(items)

    assert verified == [True, False, False, False, True]
    assert verified == [item is not None and raw_ecdsa_verifies(*item) for item in items]
