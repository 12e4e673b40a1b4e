"""OCMF parsing, value mapping and signature checks on records built and signed here."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ledger.errors import LedgerError
from ledger.readings.ocmf.errors import (
    OcmfBadKey,
    OcmfBadSignature,
    OcmfBadValue,
    OcmfError,
    OcmfMalformed,
    OcmfUnsupportedAlgorithm,
    OcmfUnsupportedCurve,
)
from ledger.readings.ocmf.record import (
    DEFAULT_ALGORITHM,
    MAX_WH,
    Register,
    TimeStatus,
    obis_register,
    parse_ocmf,
    parse_ocmf_time,
)
from ledger.readings.ocmf.verify import verify_ocmf

# The order n of the P-256 group: (r, n - s) is the other valid signature for (r, s).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
BEGIN = (
    '{"TM":"2018-07-24T13:22:04,000+0200 S","TX":"B","RV":2935.6,'
    '"RI":"1-b:1.8.0","RU":"kWh","RT":"DC","EF":"","ST":"G"}'
)
END = (
    '{"TM":"2018-07-24T13:26:04,000+0200 S","TX":"E","RV":2965.1,'
    '"RI":"1-b:1.8.0","RU":"kWh","RT":"DC","EF":"","ST":"G"}'
)


def payload(*readings: str, extra: str = "") -> str:
    """A payload like the OCMF specification's example, with the given `RD` entries."""
    return (
        '{"FV":"1.0","GI":"ABL SBC-301","GS":"808829900001","PG":"T12345","MS":"BQ27400330016",'
        f'"IS":true,"IT":"ISO14443","ID":"1F2D3A4F5506C7"{extra},"RD":[{",".join(readings)}]}}'
    )


def unsigned(payload_text: str, signature: str = '{"SD":"3006020101020101"}') -> str:
    """A record whose signature is syntactically fine but not checked."""
    return f"OCMF|{payload_text}|{signature}"


def signed(
    payload_text: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    algorithm: str | None = None,
    digest: hashes.HashAlgorithm | None = None,
) -> str:
    """`OCMF|payload|{"SA":..,"SD":hex DER}` signed over the payload's exact UTF-8 bytes."""
    der = key.sign(payload_text.encode(), ec.ECDSA(digest or hashes.SHA256()))
    section = {"SA": algorithm, "SD": der.hex().upper()} if algorithm else {"SD": der.hex()}
    return f"OCMF|{payload_text}|{json.dumps(section)}"


def value_of(raw_value: str, unit: str = "kWh", obis: str = "1-0:1.8.0") -> str:
    """A record holding one reading with `RV` written exactly as `raw_value`."""
    reading = (
        f'{{"TM":"2021-10-06T13:13:56,000+0200 S","TX":"B","RV":{raw_value},'
        f'"RI":"{obis}","RU":"{unit}","ST":"G"}}'
    )
    return unsigned(payload(reading))


def der_hex(public: ec.EllipticCurvePublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ).hex()


@pytest.fixture(scope="module")
def meter_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def meter_public_hex(meter_key: ec.EllipticCurvePrivateKey) -> str:
    return der_hex(meter_key.public_key())


# --- splitting: `OCMF|`, the payload as received, the last `|` ---


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


# --- the signature section ---


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


# --- values: OBIS registers, units, exact Wh ---


@pytest.mark.parametrize(
    ("obis", "register"),
    [
        ("1-0:1.8.0", Register.IMPORT),
        ("1-0:2.8.0", Register.EXPORT),
        ("1-b:1.8.0", Register.IMPORT),
        ("1-b:1.8.e", Register.IMPORT),
        ("1-b:2.8.e", Register.EXPORT),
        ("1-0:1.8.0*255", Register.IMPORT),
        ("1-0:2.8.0.FF", Register.EXPORT),
        ("01-00:01.08.00.FF", Register.IMPORT),
        ("01-00:02.08.00*ff", Register.EXPORT),
        ("1-0:1.8.0*198", None),  # another value group (BAUER's per-transaction register)
        ("1-0:1.8.1", None),  # tariff 1, not the total
        ("1-1:1.8.0", None),  # channel 1
        ("1-b:1.9.0", None),
        ("1-0:98.8.0.FF", None),
        ("01-00:00.08.06.FF", None),
        ("0-0:1.8.0", None),
        ("1-0:1.8", None),
        ("", None),
    ],
)
def test_obis_codes_map_onto_import_and_export_only(obis: str, register: Register | None) -> None:
    assert obis_register(obis) is register


@pytest.mark.parametrize(
    ("raw_value", "unit", "wh"),
    [
        ("2935.6", "kWh", 2935600),
        ("1.005", "kWh", 1005),  # 1.005 * 1000 == 1004.9999999999999 in binary floating point
        ("0.001", "kWh", 1),
        ("57.584", "kWh", 57584),
        ("1.0", "kWh", 1000),
        ("0", "kWh", 0),
        ("0.000", "kWh", 0),
        ("1e3", "kWh", 1000000),
        ("2.5E0", "kWh", 2500),
        ("12345678901234.567", "kWh", 12345678901234567),
        ('"       9.038"', "kWh", 9038),
        ('"00000000.000"', "kWh", 0),
        ('"      30"', "Wh", 30),
        ("7753", "Wh", 7753),
        ("2851485.0", "Wh", 2851485),
        (str(MAX_WH), "Wh", MAX_WH),
    ],
)
def test_energy_values_convert_to_whole_wh_exactly(raw_value: str, unit: str, wh: int) -> None:
    (reading,) = parse_ocmf(value_of(raw_value, unit)).register_readings()
    assert reading.wh == wh
    assert type(reading.wh) is int


def test_conversion_never_goes_through_float() -> None:
    assert int(1.005 * 1000) == 1004  # what a float conversion would record
    record = parse_ocmf(value_of("1.005"))
    assert record.readings[0].value == Decimal("1.005")
    assert record.register_readings()[0].wh == 1005


@pytest.mark.parametrize(
    ("raw_value", "unit", "reason"),
    [
        ("0.2596", "kWh", "is 259.6 Wh, not a whole number of Wh"),
        ("0.0005", "kWh", "is 0.5 Wh, not a whole number of Wh"),
        ("62500.2031", "kWh", "is 62500203.1 Wh, not a whole number of Wh"),
        ("7753.5", "Wh", "not a whole number of Wh"),
        ("1.0000000000000000000000000000001", "kWh", "not a whole number of Wh"),
        ("-1", "Wh", "is negative"),
        ('"  -0.001"', "kWh", "is negative"),
        (str(MAX_WH + 1), "Wh", "exceeds"),
        ("1e400", "kWh", "exceeds"),
        ("2935.6", "MWh", "is not an energy unit"),
        ("2935.6", "kwh", "is not an energy unit"),
        ("30", "sec", "is not an energy unit"),
    ],
)
def test_unusable_register_values_are_bad_values(raw_value: str, unit: str, reason: str) -> None:
    record = parse_ocmf(value_of(raw_value, unit))  # parsing keeps the exact value
    with pytest.raises(OcmfBadValue, match=reason) as caught:
        record.register_readings()
    assert caught.value.code == "ocmf_bad_value"
    assert caught.value.index == 0


@pytest.mark.parametrize("raw_value", ["true", "null", '"abc"', '"1,5"', '""', "[1]", '"1 2"'])
def test_values_that_are_not_numbers_are_bad_values(raw_value: str) -> None:
    with pytest.raises(OcmfBadValue, match="RV .* is not a number"):
        parse_ocmf(value_of(raw_value))


def test_other_quantities_keep_their_value_and_are_not_registers() -> None:
    record = parse_ocmf(value_of('"      30"', unit="sec", obis="01-00:00.08.06.FF"))
    (reading,) = record.readings
    assert (reading.register, reading.value, reading.unit) == (None, Decimal("30"), "sec")
    assert record.register_readings() == ()


def test_omitted_fields_carry_over_from_the_previous_reading() -> None:
    export = '{"RV":4.405,"RI":"1-0:2.8.0","RU":"kWh"}'
    record = parse_ocmf(unsigned(payload(BEGIN, export, '{"TX":"E","RV":2940}')))
    begin, carried, end = record.readings
    assert (carried.timestamp, carried.transaction, carried.status) == (
        begin.timestamp,
        "B",
        "G",
    )
    assert (carried.register, carried.value) == (Register.EXPORT, Decimal("4.405"))
    assert (end.register, end.unit, end.transaction) == (Register.EXPORT, "kWh", "E")
    assert [(r.register, r.wh) for r in record.register_readings()] == [
        (Register.IMPORT, 2935600),
        (Register.EXPORT, 4405),
        (Register.EXPORT, 2940000),
    ]


def test_a_reading_without_value_is_an_event_not_a_register_value() -> None:
    record = parse_ocmf(unsigned(payload(BEGIN, '{"TX":"X","ST":"E","EF":"E"}')))
    assert record.readings[1].value is None
    assert record.readings[1].error_flags == "E"
    assert len(record.register_readings()) == 1
    with pytest.raises(OcmfBadValue, match="RV None is missing"):
        record.readings[1].to_wh()


def test_record_fields_and_reading_fields_are_exposed() -> None:
    record = parse_ocmf(unsigned(payload(BEGIN, END)))
    assert (record.pagination, record.meter_serial, record.gateway_serial) == (
        "T12345",
        "BQ27400330016",
        "808829900001",
    )
    assert record.format_version == "1.0"
    begin, end = record.register_readings()
    assert (begin.register, begin.wh, begin.transaction, begin.status) == (
        Register.IMPORT,
        2935600,
        "B",
        "G",
    )
    assert (end.wh, end.transaction, end.timestamp - begin.timestamp) == (2965100, "E", 240)


# --- timestamps ---


def test_ocmf_time_becomes_unix_seconds_and_its_flag() -> None:
    (reading,) = parse_ocmf(unsigned(payload(BEGIN))).readings
    assert reading.timestamp == 1532431324  # 2018-07-24T11:22:04Z
    assert reading.time_status is TimeStatus.SYNCHRONIZED


@pytest.mark.parametrize(
    ("text", "unix_ms", "status"),
    [
        ("2018-07-24T13:22:04,000+0200 S", 1532431324000, TimeStatus.SYNCHRONIZED),
        ("2019-04-02T17:28:45,867+0200 S", 1554218925867, TimeStatus.SYNCHRONIZED),
        ("2019-08-13T10:03:15,000+0000 I", 1565690595000, TimeStatus.INFORMATIVE),
        ("1970-01-01T01:01:49,000+0100 U", 109000, TimeStatus.UNSYNCHRONIZED),
        ("2021-10-06T13:13:56,000+0200 R", 1633518836000, TimeStatus.RELATIVE),
        ("2021-01-01T00:00:00,000-0530 S", 1609479000000, TimeStatus.SYNCHRONIZED),
        ("1969-12-31T23:59:59,500+0000 S", -500, TimeStatus.SYNCHRONIZED),
    ],
)
def test_ocmf_times_are_exact_milliseconds(text: str, unix_ms: int, status: TimeStatus) -> None:
    assert parse_ocmf_time(text) == (unix_ms, status)


def test_seconds_are_the_floor_of_the_milliseconds() -> None:
    reading = '{"TM":"1969-12-31T23:59:59,500+0000 S","RV":1,"RI":"1-0:1.8.0","RU":"Wh","ST":"G"}'
    (parsed,) = parse_ocmf(unsigned(payload(reading))).readings
    assert (parsed.timestamp, parsed.timestamp_ms) == (-1, -500)


@pytest.mark.parametrize(
    "text",
    [
        "2018-07-24T13:22:04+0200 S",  # no milliseconds
        "2018-07-24T13:22:04,000+0200",  # no flag
        "2018-07-24T13:22:04,000+02:00 S",
        "2018-07-24 13:22:04,000+0200 S",
        "2018-07-24T13:22:04,000+0200 Q",  # unknown flag
        "2018-02-30T13:22:04,000+0200 S",  # no such day
        "2018-07-24T24:00:00,000+0200 S",
        "2018-07-24T13:22:04,000+2400 S",  # offset out of range
        "٢٠١٨-07-24T13:22:04,000+0200 S",  # non-ASCII digits
    ],
)
def test_malformed_times_are_bad_values(text: str) -> None:
    reading = f'{{"TM":"{text}","RV":1,"RI":"1-0:1.8.0","RU":"Wh","ST":"G"}}'
    with pytest.raises(OcmfBadValue, match="TM"):
        parse_ocmf(unsigned(payload(reading)))


def test_a_first_reading_without_time_is_a_bad_value() -> None:
    with pytest.raises(OcmfBadValue, match="TM None is missing"):
        parse_ocmf(unsigned(payload('{"RV":1,"RI":"1-0:1.8.0","RU":"Wh"}')))


def test_reading_fields_that_are_not_strings_are_bad_values() -> None:
    with pytest.raises(OcmfBadValue, match="TX 1 is not a string"):
        parse_ocmf(unsigned(payload('{"TM":"2018-07-24T13:22:04,000+0200 S","TX":1,"RV":1}')))


# --- signatures ---


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


# --- public keys ---


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


# --- errors ---


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (OcmfError, "ocmf_error"),
        (OcmfMalformed, "ocmf_malformed"),
        (OcmfBadValue, "ocmf_bad_value"),
        (OcmfUnsupportedAlgorithm, "ocmf_unsupported_algorithm"),
        (OcmfUnsupportedCurve, "ocmf_unsupported_curve"),
        (OcmfBadKey, "ocmf_bad_key"),
        (OcmfBadSignature, "ocmf_bad_signature"),
    ],
)
def test_every_ocmf_error_is_a_ledger_error_with_a_stable_code(
    error: type[OcmfError], code: str
) -> None:
    assert issubclass(error, OcmfError)
    assert issubclass(error, LedgerError)
    assert error.code == code


def test_error_messages_name_what_went_wrong() -> None:
    assert str(OcmfMalformed(reason="x")) == "malformed OCMF record: x"
    bad = OcmfBadValue(index=2, name="RV", value="1.5 Wh", reason="is not whole")
    assert str(bad) == "OCMF reading 2: RV '1.5 Wh' is not whole"
    assert (bad.index, bad.field, bad.value) == (2, "RV", "1.5 Wh")
