"""OCMF records through the reading ingestion: signed with fresh keys here, checked against a
real store (SQLite and PostgreSQL) and an in-memory key registry (the fake of test_ingest.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ledger.meters.keys import KeyAlgorithm, generate_key
from ledger.meters.registry import meter_id_bytes
from ledger.readings.ingest import Ingestor
from ledger.readings.keys import KeyCache
from ledger.readings.native import Reading, reading_leaf, sign_reading
from ledger.readings.ocmf.errors import OcmfUnmappable
from ledger.readings.ocmf.record import parse_ocmf
from ledger.readings.ocmf.values import StatusFlag, ledger_values
from ledger.readings.results import IngestResult, OcmfSubmission, Outcome, Rejection, Submission
from ledger.store.database import Store
from tests.unit.readings.ingest_support import CHAIN_ID, NOW, Clock, FakeRegistry

SERIAL = "1EBZ0300099001"  # the meter serial `MS`, which is the meter's registered id
METER_ID = meter_id_bytes(SERIAL)
START = NOW - 5_000  # reading `seq` is taken one minute after START per seq
CET = 60  # minutes east of UTC of the meters' local time


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def meter_key(registry: FakeRegistry) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    registry.register(METER_ID, key)
    return key


@pytest.fixture
def ingestor(store: Store, registry: FakeRegistry) -> Ingestor:
    return Ingestor(
        store,
        KeyCache(registry, monotonic=Clock(1000.0)),
        chain_id=CHAIN_ID,
        max_batch=10,
        clock_skew_s=300,
        clock=Clock(NOW + 0.5),
    )


# --- building signed OCMF records -------------------------------------------------------------


def ocmf_time(
    timestamp: int, *, millis: int = 0, offset_minutes: int = CET, flag: str = "S"
) -> str:
    """`2023-11-14T23:13:20,000+0100 S`: the instant `timestamp` in a zone `offset_minutes` east."""
    local = datetime.fromtimestamp(timestamp, timezone(timedelta(minutes=offset_minutes)))
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{local:%Y-%m-%dT%H:%M:%S},{millis:03d}{sign}{hours:02d}{minutes:02d} {flag}"


def entry(
    value: Any, *, seq: int = 1, unit: str = "Wh", obis: str = "1-0:1.8.0", **fields: Any
) -> dict[str, Any]:
    """One `RD` entry at reading `seq`'s time; `fields` add or override OCMF fields."""
    return {
        "TM": ocmf_time(START + 60 * seq),
        "TX": "C",
        "RV": value,
        "RI": obis,
        "RU": unit,
        "RT": "AC",
        "EF": "",
        "ST": "G",
        **fields,
    }


def payload(
    seq: int = 1, *, entries: list[dict[str, Any]] | None = None, **fields: Any
) -> dict[str, Any]:
    """A payload with pagination T<seq>, our meter serial and by default one import value:
    100 Wh per seq."""
    return {
        "FV": "1.0",
        "GI": "UNIT-CHARGER",
        "GS": "GS-0001",
        "GV": "1.0.0",
        "PG": f"T{seq}",
        "MV": "eBZ",
        "MM": "DD3",
        "MS": SERIAL,
        "IS": False,
        "RD": [entry(100 * seq, seq=seq)] if entries is None else entries,
        **fields,
    }


def sign_ocmf(
    key: ec.EllipticCurvePrivateKey,
    body: dict[str, Any] | str,
    *,
    algorithm: str | None = "ECDSA-secp256r1-SHA256",
    hash_algorithm: hashes.HashAlgorithm | None = None,
) -> str:
    """`OCMF|{payload}|{signature}`: the payload text (compact JSON of `body`, or `body` itself
    when it is text) signed as it is, with a hex DER `SD`."""
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    signature = key.sign(text.encode(), ec.ECDSA(hash_algorithm or hashes.SHA256()))
    section = {"SD": signature.hex().upper()}
    if algorithm is not None:
        section = {"SA": algorithm, **section}
    return f"OCMF|{text}|{json.dumps(section, separators=(',', ':'))}"


def submit(ingestor: Ingestor, *items: Submission | OcmfSubmission) -> list[IngestResult]:
    return ingestor.submit(list(items))


def submit_ocmf(ingestor: Ingestor, record: str, meter_id: str = SERIAL) -> IngestResult:
    (result,) = ingestor.submit([OcmfSubmission(meter_id, record)])
    return result


def expected(seq: int, import_wh: int, export_wh: int = 0, status: int = 0) -> Reading:
    """The reading the gateway must build for a record of this module."""
    return Reading(
        chain_id=CHAIN_ID,
        meter_id=METER_ID,
        seq=seq,
        timestamp=START + 60 * seq,
        import_wh=import_wh,
        export_wh=export_wh,
        status=status,
    )


def assert_rejected(result: IngestResult, code: Rejection) -> None:
    assert (result.status, result.code) == (Outcome.REJECTED, code), result.message
    assert result.receipt is None


# --- accepted records and what is stored ------------------------------------------------------


def test_a_signed_ocmf_record_is_accepted_with_the_leaf_of_its_canonical_reading(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    result = submit_ocmf(ingestor, sign_ocmf(meter_key, payload(7)))

    assert (result.status, result.code) == (Outcome.ACCEPTED, None), result.message
    assert (result.meter_id, result.seq) == (SERIAL, 7)
    assert result.receipt is not None
    assert result.receipt.timestamp == START + 420
    assert result.receipt.leaf == reading_leaf(expected(7, 700).encode())
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


# --- values: units, padded strings, sub-Wh, several entries, export, status ------------------


@pytest.mark.parametrize(
    ("value", "unit", "wh"),
    [
        (7753, "Wh", 7753),
        (57.584, "kWh", 57584),
        (1234, "kWh", 1234000),
        ("       9.038", "kWh", 9038),  # DZG: a numeric string padded with spaces
        ("00000120.000", "kWh", 120000),
        ("   42", "Wh", 42),
        (0.2596, "kWh", 259),  # 259.6 Wh: the fraction of a Wh is dropped, never rounded up
        (7753.9, "Wh", 7753),
    ],
)
def test_import_values_in_kwh_and_wh_become_whole_wh_rounded_down(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey, value: Any, unit: str, wh: int
) -> None:
    body = payload(1, entries=[entry(value, unit=unit)])
    result = submit_ocmf(ingestor, sign_ocmf(meter_key, body))
    assert result.status is Outcome.ACCEPTED, result.message
    assert ingestor.reading(SERIAL, 1).import_wh == wh
    assert result.receipt is not None
    assert result.receipt.leaf == reading_leaf(expected(1, wh).encode())


def test_an_energy_value_in_another_unit_is_ocmf_bad_value(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    body = payload(1, entries=[entry(5, unit="MWh")])
    assert_rejected(submit_ocmf(ingestor, sign_ocmf(meter_key, body)), Rejection.OCMF_BAD_VALUE)


def test_a_negative_value_is_ocmf_bad_value(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    body = payload(1, entries=[entry(-1, unit="Wh")])
    assert_rejected(submit_ocmf(ingestor, sign_ocmf(meter_key, body)), Rejection.OCMF_BAD_VALUE)


def test_the_reading_is_the_last_entry_of_a_transaction_record_at_its_time_and_offset(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    end = START + 600
    body = payload(
        4,
        entries=[
            entry(1_000, TX="B", TM=ocmf_time(START, offset_minutes=120)),
            entry(1_350, TX="E", TM=ocmf_time(end, millis=999, offset_minutes=-300)),
            {"RV": 0.35, "RI": "1-b:1.9.0", "RU": "kWh"},  # not a ledger register
        ],
    )
    result = submit_ocmf(ingestor, sign_ocmf(meter_key, body))

    stored = ingestor.reading(SERIAL, 4)
    assert result.status is Outcome.ACCEPTED, result.message
    assert (stored.timestamp, stored.import_wh) == (end, 1_350)


def test_export_comes_from_2_8_0_at_the_same_time_and_is_0_when_not_reported(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    with_export = payload(
        2,
        entries=[
            entry(57.584, unit="kWh", seq=2),
            {"RV": 4.405, "RI": "1-0:2.8.0", "RU": "kWh", "ST": "G"},  # TM carries over
        ],
    )
    submit(
        ingestor,
        OcmfSubmission(SERIAL, sign_ocmf(meter_key, with_export)),
        OcmfSubmission(SERIAL, sign_ocmf(meter_key, payload(1))),
    )
    assert (ingestor.reading(SERIAL, 2).import_wh, ingestor.reading(SERIAL, 2).export_wh) == (
        57_584,
        4_405,
    )
    assert ingestor.reading(SERIAL, 1).export_wh == 0


def test_an_export_value_older_than_the_import_value_is_ocmf_unmappable(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    body = payload(
        2,
        entries=[
            entry(100, seq=1),
            entry(10, seq=1, obis="1-0:2.8.0"),
            entry(200, seq=2),
        ],
    )
    result = submit_ocmf(ingestor, sign_ocmf(meter_key, body))
    assert_rejected(result, Rejection.OCMF_UNMAPPABLE)
    assert "export" in result.message


@pytest.mark.parametrize(
    ("fields", "flags"),
    [
        ({}, StatusFlag(0)),
        ({"ST": "E"}, StatusFlag.METER_STATUS),
        ({"EF": "E"}, StatusFlag.ENERGY_ERROR),
        ({"EF": "Et"}, StatusFlag.ENERGY_ERROR | StatusFlag.TIME_ERROR),
        ({"TM": ocmf_time(START + 60, flag="U")}, StatusFlag.TIME_UNSYNCHRONIZED),
        ({"TM": ocmf_time(START + 60, flag="I")}, StatusFlag.TIME_INFORMATIVE),
        ({"TM": ocmf_time(START + 60, flag="R")}, StatusFlag.TIME_RELATIVE),
    ],
)
def test_ocmf_status_time_and_error_flags_become_status_bits(
    ingestor: Ingestor,
    meter_key: ec.EllipticCurvePrivateKey,
    fields: dict[str, Any],
    flags: StatusFlag,
) -> None:
    body = payload(1, entries=[entry(100, **fields)])
    result = submit_ocmf(ingestor, sign_ocmf(meter_key, body))
    assert result.status is Outcome.ACCEPTED, result.message
    assert ingestor.reading(SERIAL, 1).status == int(flags)
    assert ingestor.reading(SERIAL, 1).canonical == expected(1, 100, status=int(flags)).encode()


# --- duplicates, conflicts and the sequence checks --------------------------------------------


def test_the_same_record_again_is_a_duplicate_with_the_original_receipt(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    record = sign_ocmf(meter_key, payload(1))
    first = submit_ocmf(ingestor, record)
    again = submit_ocmf(ingestor, record)
    assert (again.status, again.code) == (Outcome.DUPLICATE, None)
    assert again.receipt == first.receipt


def test_the_same_payload_with_another_signature_is_a_duplicate_keeping_the_first(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    first = sign_ocmf(meter_key, payload(1))
    resigned = sign_ocmf(meter_key, payload(1))  # a new random ECDSA nonce: other SD bytes
    assert first != resigned

    submit_ocmf(ingestor, first)
    again = submit_ocmf(ingestor, resigned)

    assert again.status is Outcome.DUPLICATE
    assert ingestor.reading(SERIAL, 1).raw == first.encode()


def test_another_record_with_the_same_pagination_is_a_conflicting_reading(
    ingestor: Ingestor, store: Store, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    submit_ocmf(ingestor, sign_ocmf(meter_key, payload(1)))
    other = payload(1, entries=[entry(150)])

    result = submit_ocmf(ingestor, sign_ocmf(meter_key, other))

    assert_rejected(result, Rejection.CONFLICTING_READING)
    (event,) = store.integrity_events(METER_ID)
    assert (event.seq, event.kind) == (1, "conflicting_reading")
    assert event.received_canonical == expected(1, 150).encode()
    assert ingestor.reading(SERIAL, 1).import_wh == 100


def test_a_record_below_the_previous_register_is_register_decreased(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    lower = payload(2, entries=[entry(50, seq=2)])
    results = submit(
        ingestor,
        OcmfSubmission(SERIAL, sign_ocmf(meter_key, payload(1))),
        OcmfSubmission(SERIAL, sign_ocmf(meter_key, lower)),
    )
    assert_rejected(results[1], Rejection.REGISTER_DECREASED)


def test_a_record_not_after_the_previous_one_is_timestamp_out_of_order(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    same_time = payload(2, entries=[entry(200, seq=1)])
    results = submit(
        ingestor,
        OcmfSubmission(SERIAL, sign_ocmf(meter_key, payload(1))),
        OcmfSubmission(SERIAL, sign_ocmf(meter_key, same_time)),
    )
    assert_rejected(results[1], Rejection.TIMESTAMP_OUT_OF_ORDER)


def test_a_pagination_jump_is_accepted_and_recorded_as_a_gap(
    ingestor: Ingestor, store: Store, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    results = submit(
        ingestor,
        OcmfSubmission(SERIAL, sign_ocmf(meter_key, payload(1))),
        OcmfSubmission(SERIAL, sign_ocmf(meter_key, payload(4))),
    )
    assert [r.status for r in results] == [Outcome.ACCEPTED] * 2
    assert [(g.from_seq, g.to_seq) for g in store.gaps(METER_ID)] == [(2, 3)]


# --- signature, key and meter binding ---------------------------------------------------------


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


# --- records that are not one ledger reading --------------------------------------------------


def test_text_that_is_not_an_ocmf_record_is_ocmf_malformed(ingestor: Ingestor) -> None:
    result = submit_ocmf(ingestor, "OCMF|{not json}|{}")
    assert_rejected(result, Rejection.OCMF_MALFORMED)
    assert (result.meter_id, result.seq) == (SERIAL, None)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({k: v for k, v in payload(1).items() if k != "MS"}, "MS"),
        ({**payload(1), "MS": ""}, "MS"),
        ({**payload(1), "MS": "M" * 33}, "not a ledger meter id"),
        ({k: v for k, v in payload(1).items() if k != "PG"}, "PG"),
        ({**payload(1), "PG": "F1"}, "fiscal"),
        ({**payload(1), "PG": "T-1"}, "T or F"),
        ({**payload(1), "PG": "T18446744073709551616"}, "exceeds"),
        ({**payload(1), "PG": "T" + "9" * 5000}, "exceeds"),
        (payload(1, entries=[entry(5, obis="1-0:1.8.0*198")]), "no import"),
        (payload(1, entries=[{"TM": ocmf_time(START), "TX": "B", "ST": "G"}]), "no import"),
    ],
)
def test_a_record_that_is_not_one_ledger_reading_is_ocmf_unmappable(
    ingestor: Ingestor, meter_key: ec.EllipticCurvePrivateKey, body: dict[str, Any], reason: str
) -> None:
    result = submit_ocmf(ingestor, sign_ocmf(meter_key, body))
    assert_rejected(result, Rejection.OCMF_UNMAPPABLE)
    assert reason in result.message


def test_ledger_values_name_the_entries_the_registers_come_from() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    body = payload(
        9,
        entries=[
            entry(1, TX="B", seq=8),
            entry(2, TX="E", seq=9),
            entry(3, seq=9, obis="1-0:2.8.0", ST="F"),
        ],
    )
    values = ledger_values(parse_ocmf(sign_ocmf(key, body)))
    assert (values.meter_serial, values.seq, values.timestamp) == (SERIAL, 9, START + 540)
    assert (values.import_wh, values.export_wh, values.entries) == (2, 3, (1, 2))
    assert values.status == StatusFlag.METER_STATUS


def test_ledger_values_of_a_fiscal_record_raise_ocmf_unmappable() -> None:
    record = parse_ocmf(sign_ocmf(ec.generate_private_key(ec.SECP256R1()), payload(1, PG="F3")))
    with pytest.raises(OcmfUnmappable) as caught:
        ledger_values(record)
    assert caught.value.code == "ocmf_unmappable"


def test_rejected_ocmf_records_are_not_stored(
    ingestor: Ingestor, store: Store, meter_key: ec.EllipticCurvePrivateKey
) -> None:
    submit(
        ingestor,
        OcmfSubmission(SERIAL, "OCMF|{}|{}"),
        OcmfSubmission("MTR-OTHER", "not ocmf"),
    )
    assert store.count_readings(METER_ID) == 0
