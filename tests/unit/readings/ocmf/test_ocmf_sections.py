"""Splitting a record into `OCMF|`, the payload as received and the signature section after
the last `|`, and what each section must hold to be parsed.
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ledger.readings.ocmf.errors import OcmfBadSignature, OcmfMalformed
from ledger.readings.ocmf.record import DEFAULT_ALGORITHM, parse_ocmf
from ledger.readings.ocmf.verify import verify_ocmf
from tests.unit.readings.ocmf.ocmf_support import BEGIN, payload, signed, unsigned


def test_signed_bytes_are_the_text_between_the_header_and_the_last_bar() -> None:
    text = payload(BEGIN, extra=',"TT":"tariff A|B||C"')
    record = parse_ocmf(unsigned(text))
    assert record.payload_bytes == text.encode()
    assert record.payload["TT"] == "tariff A|B||C"


def test_payload_with_bars_verifies_over_its_exact_bytes(
    meter_key: ec.EllipticCurvePrivateKey, meter_public_hex: str
) -> None:
    record = parse_ocmf(signed(payload(BEGIN, extra=',"TT":"a|b"'), meter_key))
    verify_ocmf(record, meter_public_hex)


def test_whitespace_around_the_record_is_not_part_of_the_signed_bytes(
    meter_key: ec.EllipticCurvePrivateKey, meter_public_hex: str
) -> None:
    text = signed(payload(BEGIN), meter_key)
    record = parse_ocmf(f"\r\n\t  {text}\n\t\t")
    assert record.payload_bytes == payload(BEGIN).encode()
    assert record.raw == f"\r\n\t  {text}\n\t\t".encode()
    verify_ocmf(record, meter_public_hex)


def test_str_and_bytes_give_the_same_record() -> None:
    text = unsigned(payload(BEGIN, extra=',"CI":"Zähler Süd"'))
    assert parse_ocmf(text) == parse_ocmf(text.encode("utf-8"))


def test_unusual_whitespace_verifies_and_a_reserialised_payload_does_not(
    meter_key: ec.EllipticCurvePrivateKey, meter_public_hex: str
) -> None:
    # JSON allows whitespace anywhere; the meter signed these exact bytes, tabs and all.
    odd = (
        '{ "PG" :\t"T7" ,\r\n  "MS":"M1",  "RD" : [ {"TM":"2018-07-24T13:22:04,000+0200 S" ,'
        '"RV" : 1.50 , "RI":"1-0:1.8.0","RU":"kWh","ST":"G"} ]   }'
    )
    record = parse_ocmf(signed(odd, meter_key))
    verify_ocmf(record, meter_public_hex)
    assert record.readings[0].value == Decimal("1.50")

    compact = json.dumps(json.loads(odd), separators=(",", ":"))
    signature_section = record.raw.rsplit(b"|", 1)[1].decode()
    with pytest.raises(OcmfBadSignature):
        verify_ocmf(parse_ocmf(f"OCMF|{compact}|{signature_section}"), meter_public_hex)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "does not start with 'OCMF|'"),
        ("OCMX|{}|{}", "does not start with 'OCMF|'"),
        ('{"RD":[]}|{"SD":"00"}', "does not start with 'OCMF|'"),
        ("OCMF|", "no '|' between"),
        ('OCMF|{"RD":[]}', "no '|' between"),
        ('OCMF||{"SD":"00"}', "payload section is not JSON"),
        ("OCMF|{}|", "signature section is not JSON"),
    ],
)
def test_missing_parts_are_malformed(text: str, reason: str) -> None:
    with pytest.raises(OcmfMalformed, match=reason):
        parse_ocmf(text)


@pytest.mark.parametrize(
    ("payload_text", "signature", "reason"),
    [
        ('{"RD":[', '{"SD":"00"}', "payload section is not JSON"),
        ("[1, 2]", '{"SD":"00"}', "payload section is not a JSON object"),
        ('{"PG":"T1","PG":"T2","RD":[]}', '{"SD":"00"}', "duplicate key 'PG'"),
        ('{"RD":[{"TM":"x","RV":NaN}]}', '{"SD":"00"}', "NaN is not a number"),
        (payload(BEGIN), '{"SD":"00"', "signature section is not JSON"),
        (payload(BEGIN), '"3045"', "signature section is not a JSON object"),
    ],
)
def test_invalid_json_is_malformed(payload_text: str, signature: str, reason: str) -> None:
    with pytest.raises(OcmfMalformed, match=reason):
        parse_ocmf(f"OCMF|{payload_text}|{signature}")


def test_payload_that_is_not_utf8_is_malformed() -> None:
    with pytest.raises(OcmfMalformed, match="payload section is not UTF-8"):
        parse_ocmf(b'OCMF|{"MS":"\xff"}|{"SD":"00"}')


@pytest.mark.parametrize(
    ("rd", "reason"),
    [
        ('"RD":[]', "RD must be a non-empty list"),
        ('"RD":{}', "RD must be"),
        ('"RD":[7]', "not an object"),
    ],
)
def test_readings_that_are_not_a_list_of_objects_are_malformed(rd: str, reason: str) -> None:
    with pytest.raises(OcmfMalformed, match=reason):
        parse_ocmf(unsigned("{" + rd + "}"))


def test_signature_defaults_are_p256_sha256_hex_der() -> None:
    signature = parse_ocmf(unsigned(payload(BEGIN), '{"SD":"0A0b"}')).signature
    assert signature.algorithm == DEFAULT_ALGORITHM == "ECDSA-secp256r1-SHA256"
    assert (signature.encoding, signature.mime, signature.data) == (
        "hex",
        "application/x-der",
        b"\x0a\x0b",
    )


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        ("{}", "SD is missing"),
        ('{"SD":30}', "SD is not a string"),
        ('{"SD":""}', "SD is not hex"),
        ('{"SD":"3045zz"}', "SD is not hex"),
        ('{"SD":"304"}', "SD is not hex"),
        ('{"SD":"30 45"}', "SD is not hex"),
        ('{"SE":"base64","SD":"not base64!"}', "SD is not base64"),
        ('{"SE":"base32","SD":"00"}', "SE 'base32' is not hex or base64"),
        ('{"SM":"application/json","SD":"00"}', "SM 'application/json'"),
        ('{"SA":7,"SD":"00"}', "SA is not a string"),
    ],
)
def test_bad_signature_data_is_malformed(signature: str, reason: str) -> None:
    with pytest.raises(OcmfMalformed, match=reason):
        parse_ocmf(unsigned(payload(BEGIN), signature))


def test_base64_signature_data_verifies(
    meter_key: ec.EllipticCurvePrivateKey, meter_public_hex: str
) -> None:
    text = payload(BEGIN)
    der = meter_key.sign(text.encode(), ec.ECDSA(hashes.SHA256()))
    section = json.dumps({"SE": "base64", "SD": base64.b64encode(der).decode()})
    verify_ocmf(parse_ocmf(f"OCMF|{text}|{section}"), meter_public_hex)
