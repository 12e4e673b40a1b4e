"""The meter's public key: every accepted form, read on the curve `SA` names, and the keys
refused.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ledger.readings.ocmf.errors import OcmfBadKey
from ledger.readings.ocmf.record import parse_ocmf
from ledger.readings.ocmf.verify import verify_ocmf
from tests.unit.readings.ocmf.ocmf_support import BEGIN, der_hex, payload, signed, unsigned


def _key_forms(public: ec.EllipticCurvePublicKey) -> dict[str, str | bytes]:
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    compressed = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    spaced = " ".join(der.hex().upper()[i : i + 4] for i in range(0, len(der) * 2, 4))
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "hex DER": der.hex().upper(),
        "hex DER lower case, padded": f"  {der.hex()}\n",
        "hex DER with spaces": spaced,
        "base64 DER": base64.b64encode(der).decode(),
        "raw hex x||y": point[1:].hex().upper(),
        "hex SEC1 point": point.hex(),
        "hex SEC1 compressed": compressed.hex(),
        "0x hex DER": "0x" + der.hex(),
        "PEM": pem.decode(),
        "binary DER": der,
        "binary x||y": point[1:],
    }


@pytest.mark.parametrize(
    "form",
    [
        "hex DER",
        "hex DER lower case, padded",
        "hex DER with spaces",
        "base64 DER",
        "raw hex x||y",
        "hex SEC1 point",
        "hex SEC1 compressed",
        "0x hex DER",
        "PEM",
        "binary DER",
        "binary x||y",
    ],
)
def test_public_key_forms_are_accepted(form: str, meter_key: ec.EllipticCurvePrivateKey) -> None:
    record = parse_ocmf(signed(payload(BEGIN), meter_key))
    verify_ocmf(record, _key_forms(meter_key.public_key())[form])


def test_a_key_object_is_accepted(meter_key: ec.EllipticCurvePrivateKey) -> None:
    verify_ocmf(parse_ocmf(signed(payload(BEGIN), meter_key)), meter_key.public_key())


def test_raw_x_y_is_read_on_the_curve_that_sa_names() -> None:
    key = ec.generate_private_key(ec.SECP256K1())
    raw = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )[1:]
    text = signed(payload(BEGIN), key, algorithm="ECDSA-secp256k1-SHA256")
    verify_ocmf(parse_ocmf(text), raw.hex())
    with pytest.raises(OcmfBadKey):  # the same 64 bytes are not a point on P-256
        verify_ocmf(parse_ocmf(text.replace("secp256k1", "secp256r1")), raw.hex())


def test_a_key_on_another_curve_than_sa_is_a_bad_key(
    meter_key: ec.EllipticCurvePrivateKey,
) -> None:
    k1 = der_hex(ec.generate_private_key(ec.SECP256K1()).public_key())
    with pytest.raises(OcmfBadKey, match="the key is on secp256k1 but .* needs secp256r1") as e:
        verify_ocmf(parse_ocmf(signed(payload(BEGIN), meter_key)), k1)
    assert e.value.code == "ocmf_bad_key"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("not a key!", "neither hex nor base64"),
        ("3059zz", "neither hex nor base64"),
        ("abc", "neither hex nor base64"),
        ("", "not DER/PEM"),
        ("3059301306", "not DER/PEM"),
        ("04" + "00" * 64, "not a point on secp256r1"),
        ("00" * 64, "not a point on secp256r1"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not DER/PEM"),
    ],
)
def test_undecodable_keys_are_bad_keys(key: str, reason: str) -> None:
    with pytest.raises(OcmfBadKey, match=reason):
        verify_ocmf(parse_ocmf(unsigned(payload(BEGIN))), key)


def test_a_key_that_is_not_elliptic_curve_is_a_bad_key() -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    public = ed25519.Ed25519PrivateKey.generate().public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(OcmfBadKey, match="not an elliptic-curve key"):
        verify_ocmf(parse_ocmf(unsigned(payload(BEGIN))), der.hex())
