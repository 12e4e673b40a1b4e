"""OCMF records through POST /v1/readings over real HTTP, on Ganache and Anvil: real records of
the interop corpus (tests/data/interop/ocmf) and one signed here, beside a native reading."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ledger.chain.client import connect
from ledger.chain.deployment import ensure_deployed
from ledger.meters.registry import MeterAdmin, meter_id_bytes
from ledger.readings.native import Reading, anchored_leaf, sign_reading
from ledger.readings.ocmf.record import parse_ocmf
from ledger.readings.ocmf.verify import load_ocmf_public_key, ocmf_signature_form, signature_method
from ledger.settings import DEV_OPERATOR_KEY
from tests.fixtures.chain import dev_account
from tests.fixtures.gateway import OPERATOR_HEADERS, Gateway
from tests.unit.readings.test_ocmf_corpus import CorpusRecord, load_records

CHAIN_ID = 1337
# 2021-01-01T00:00:00Z: the corpus meters' keys are registered as valid from then, before their
# records (August and October 2021).
CORPUS_KEYS_FROM = 1_609_459_200


def register(
    gateway: Gateway, meter_id: str, public_key: ec.EllipticCurvePublicKey, start: int
) -> None:
    """Registers a meter on the gateway's chain with `public_key` valid from `start`."""
    chain = connect(f"http://127.0.0.1:{gateway.env['LEDGER_CHAIN_PORT']}", DEV_OPERATOR_KEY)
    deployment = ensure_deployed(chain, Path(gateway.env["LEDGER_DATA_DIR"]))
    MeterAdmin(chain, deployment).register(
        meter_id, dev_account(1).address, public_key, valid_from=start
    )


def register_corpus_meter(gateway: Gateway, record: CorpusRecord) -> str:
    """Registers the record's meter (its serial `MS`) with the corpus key; returns the serial."""
    parsed = parse_ocmf(record.text)
    method = signature_method(parsed.signature.algorithm)
    assert parsed.meter_serial is not None
    register(
        gateway,
        parsed.meter_serial,
        load_ocmf_public_key(record.public_key, method),
        CORPUS_KEYS_FROM,
    )
    return parsed.meter_serial


def post(gateway: Gateway, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{gateway.base_url}/v1/readings", json=body, timeout=30)


def results(response: httpx.Response) -> list[tuple[str, str | None, int | None]]:
    assert response.status_code == 202, response.text
    return [(r["status"], r["code"], r["seq"]) for r in response.json()["results"]]


def test_real_corpus_records_are_accepted_then_duplicates_and_served_as_readings(
    gateway: Gateway,
) -> None:
    # DZG meter behind an ebee charger: P-256, Wh values, pagination T28 (begin) and T29 (end).
    ebee = load_records("test_ocmf_ebee_01.xml")
    # DZG meter: secp256k1, kWh values as space-padded strings, T198 and T199.
    dzg = load_records("OCMF_Test_Data_00.xml")
    ebee_meter = register_corpus_meter(gateway, ebee[0])
    dzg_meter = register_corpus_meter(gateway, dzg[0])
    batch = {
        "readings": [{"meter_id": ebee_meter, "ocmf": r.text} for r in ebee]
        + [{"meter_id": dzg_meter, "ocmf": r.text} for r in dzg]
    }

    first = post(gateway, batch)
    again = post(gateway, batch)
    stored = httpx.get(
        f"{gateway.base_url}/v1/meters/{ebee_meter}/readings/29",
        headers=OPERATOR_HEADERS,
        timeout=30,
    )
    padded = httpx.get(
        f"{gateway.base_url}/v1/meters/{dzg_meter}/readings/198",
        headers=OPERATOR_HEADERS,
        timeout=30,
    )

    assert results(first) == [
        ("accepted", None, 28),
        ("accepted", None, 29),
        ("accepted", None, 198),
        ("accepted", None, 199),
    ]
    assert [status for status, _, _ in results(again)] == ["duplicate"] * 4
    assert [r["receipt"] for r in again.json()["results"]] == [
        r["receipt"] for r in first.json()["results"]
    ]
    assert stored.status_code == 200, stored.text
    reading = stored.json()
    # "2021-08-25T10:01:09,000+0200 R": 08:01:09 UTC; status bit 0x20 = relative time.
    assert (reading["timestamp"], reading["import_wh"], reading["export_wh"]) == (
        1629878469,
        7753,
        0,
    )
    assert reading["status"] == 0x20
    expected = Reading(
        chain_id=CHAIN_ID,
        meter_id=meter_id_bytes(ebee_meter),
        seq=29,
        timestamp=1629878469,
        import_wh=7753,
        export_wh=0,
        status=0x20,
    ).encode()
    assert reading["canonical"] == "0x" + expected.hex()
    record = parse_ocmf(ebee[1].text)
    v2_leaf = anchored_leaf(expected, record.payload_bytes, ocmf_signature_form(record))
    assert reading["leaf"] == "0x" + v2_leaf.hex()
    assert reading["signature"] == "0x" + parse_ocmf(ebee[1].text).signature.data.hex()
    assert (padded.json()["import_wh"], padded.json()["timestamp"]) == (9038, 1635236452)


def test_altered_corpus_record_is_rejected_with_bad_signature(gateway: Gateway) -> None:
    # The first record of this file had its value changed after signing (7753 -> 7763 Wh).
    altered, _ = load_records("test_ocmf_ebee_02.xml")
    meter = register_corpus_meter(gateway, altered)

    response = post(gateway, {"meter_id": meter, "ocmf": altered.text})
    missing = httpx.get(
        f"{gateway.base_url}/v1/meters/{meter}/readings/28", headers=OPERATOR_HEADERS, timeout=30
    )

    assert results(response) == [("rejected", "bad_signature", 28)]
    assert missing.status_code == 404


def test_generated_ocmf_records_mix_with_native_readings_in_one_batch(gateway: Gateway) -> None:
    meter = "OCMF-HTTP-0001"
    key = ec.generate_private_key(ec.SECP256R1())
    start = int(time.time()) - 3_600
    register(gateway, meter, key.public_key(), start)
    native = Reading(
        chain_id=CHAIN_ID,
        meter_id=meter_id_bytes(meter),
        seq=2,
        timestamp=start + 120,
        import_wh=2_000,
        export_wh=0,
    )
    record = signed_record(key, meter, seq=1, timestamp=start + 60, kwh="1.0004")
    tampered = signed_record(key, meter, seq=3, timestamp=start + 180, kwh="3").replace(
        '"RV":"3"', '"RV":"4"'
    )
    body = {
        "readings": [
            {"meter_id": meter, "ocmf": record},
            {
                "meter_id": meter,
                "canonical": "0x" + native.encode().hex(),
                "signature": "0x" + sign_reading(key, native).hex(),
            },
            {"meter_id": meter, "ocmf": tampered},
            {"meter_id": "OCMF-HTTP-OTHER", "ocmf": record},
            {"meter_id": meter, "ocmf": "OCMF|{}|{}"},
        ]
    }

    response = post(gateway, body)
    stored = httpx.get(
        f"{gateway.base_url}/v1/meters/{meter}/readings/1", headers=OPERATOR_HEADERS, timeout=30
    )

    assert results(response) == [
        ("accepted", None, 1),
        ("accepted", None, 2),
        ("rejected", "bad_signature", 3),
        ("rejected", "meter_mismatch", 1),
        ("rejected", "ocmf_malformed", None),
    ]
    assert stored.json()["import_wh"] == 1_000  # 1.0004 kWh is 1000.4 Wh, rounded down
    assert stored.json()["timestamp"] == start + 60


def test_an_item_with_both_native_and_ocmf_fields_is_an_invalid_request(gateway: Gateway) -> None:
    response = post(
        gateway, {"meter_id": "OCMF-HTTP-0001", "ocmf": "OCMF|{}|{}", "canonical": "0x00"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"


def signed_record(
    key: ec.EllipticCurvePrivateKey, meter: str, *, seq: int, timestamp: int, kwh: str
) -> str:
    """An OCMF transaction record T<seq> of `meter` with one import value in kWh."""
    moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp))
    payload = {
        "FV": "1.0",
        "GI": "HTTP-TEST",
        "PG": f"T{seq}",
        "MS": meter,
        "RD": [
            {
                "TM": f"{moment},000+0000 S",
                "TX": "E",
                "RV": kwh,
                "RI": "1-0:1.8.0",
                "RU": "kWh",
                "ST": "G",
            }
        ],
    }
    text = json.dumps(payload, separators=(",", ":"))
    signature = key.sign(text.encode(), ec.ECDSA(hashes.SHA256()))
    return f'OCMF|{text}|{{"SA":"ECDSA-secp256r1-SHA256","SD":"{signature.hex()}"}}'
