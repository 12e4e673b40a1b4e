"""Meter ids and public-key encodings, checked without a chain."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from api.schemas.meters import KeyEpochPublic
from ledger.errors import MeterError
from ledger.meters.keys import (
    KeyAlgorithm,
    algorithm_of,
    decode_public_key,
    encode_public_key,
    generate_key,
    load_public_key,
)
from ledger.meters.registry import (
    LATEST_UTC_TIME,
    MAX_VALID_FROM_AHEAD_S,
    KeyEpochView,
    check_valid_from,
    meter_id_bytes,
    meter_id_text,
    utc_text,
)


def test_serial_is_padded_to_bytes32_and_reads_back() -> None:
    raw = meter_id_bytes("MTR-0001")
    assert raw == b"MTR-0001" + b"\x00" * 24
    assert meter_id_text(raw) == "MTR-0001"


def test_hex_id_is_taken_raw_and_shown_as_hex_when_not_text() -> None:
    hex_id = "0x" + "ff" * 32
    assert meter_id_bytes(hex_id) == b"\xff" * 32
    assert meter_id_text(b"\xff" * 32) == hex_id


@pytest.mark.parametrize("bad", ["", "x" * 33, "tab\there", "0x" + "zz" * 32])
def test_invalid_meter_ids_are_refused(bad: str) -> None:
    with pytest.raises(MeterError):
        meter_id_bytes(bad)


@pytest.mark.parametrize(
    ("algorithm", "length"),
    [(KeyAlgorithm.P256, 65), (KeyAlgorithm.SECP256K1, 65), (KeyAlgorithm.ED25519, 32)],
)
def test_registry_encoding_round_trips_for_every_algorithm(
    algorithm: KeyAlgorithm, length: int
) -> None:
    public = generate_key(algorithm).public_key()
    encoded = encode_public_key(public)
    assert len(encoded) == length
    assert algorithm_of(public) is algorithm
    assert encode_public_key(decode_public_key(algorithm, encoded)) == encoded


def test_a_point_off_the_curve_is_refused() -> None:
    with pytest.raises(MeterError, match="p256"):
        decode_public_key(KeyAlgorithm.P256, b"\x04" + b"\x01" * 64)


def test_other_curves_are_refused() -> None:
    public = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(MeterError, match="secp384r1"):
        encode_public_key(public)


@pytest.mark.parametrize("form", ["pem-public", "pem-private", "der-public"])
def test_keys_load_from_pem_and_der(form: str) -> None:
    private = generate_key(KeyAlgorithm.P256)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    if form == "pem-private":
        data = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    else:
        encoding = (
            serialization.Encoding.PEM if form == "pem-public" else serialization.Encoding.DER
        )
        data = private.public_key().public_bytes(
            encoding, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    assert encode_public_key(load_public_key(data)) == encode_public_key(private.public_key())


def test_garbage_is_not_a_key() -> None:
    with pytest.raises(MeterError, match="could not read a public key"):
        load_public_key(b"hello")


def test_algorithm_labels_round_trip_and_unknown_is_refused() -> None:
    assert all(KeyAlgorithm.from_label(a.label) is a for a in KeyAlgorithm)
    with pytest.raises(MeterError, match="unknown key algorithm"):
        KeyAlgorithm.from_label("rsa")


# Times: bounded where they enter, rendered without overflow where they leave


def test_an_epoch_past_year_9999_is_shown_in_unix_seconds_with_a_null_utc_string() -> None:
    epoch = KeyEpochView(0, KeyAlgorithm.P256, b"\x04" + b"\x01" * 64, 2**64 - 1, 2**64 - 2)

    shown = KeyEpochPublic.model_validate(epoch).model_dump(mode="json")

    assert (shown["valid_from"], shown["valid_from_utc"]) == (2**64 - 1, None)
    assert (shown["revoked_at"], shown["revoked_at_utc"]) == (2**64 - 2, None)


def test_the_last_second_of_year_9999_is_still_shown_in_utc() -> None:
    assert utc_text(LATEST_UTC_TIME) == "9999-12-31T23:59:59Z"
    assert utc_text(LATEST_UTC_TIME + 1) is None


def test_valid_from_more_than_ten_years_ahead_is_refused() -> None:
    now = 1_700_000_000

    with pytest.raises(MeterError, match="ahead of now"):
        check_valid_from(now + MAX_VALID_FROM_AHEAD_S + 1, now)


@pytest.mark.parametrize("valid_from", [0, 1_600_000_000, 1_700_000_000 + MAX_VALID_FROM_AHEAD_S])
def test_valid_from_far_back_or_up_to_ten_years_ahead_is_allowed(valid_from: int) -> None:
    check_valid_from(valid_from, 1_700_000_000)
