"""What the OCMF ingestion tests share: the meter (its serial `MS` is its registered id),
signed OCMF records built for it, and the reading the gateway must make of them.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ledger.meters.registry import meter_id_bytes
from ledger.readings.ingest import Ingestor
from ledger.readings.native import Reading
from ledger.readings.results import IngestResult, OcmfSubmission, Submission
from tests.unit.readings.ingest_support import CHAIN_ID, NOW

SERIAL = "1EBZ0300099001"  # the meter serial `MS`, which is the meter's registered id
METER_ID = meter_id_bytes(SERIAL)
START = NOW - 5_000  # reading `seq` is taken one minute after START per seq
CET = 60  # minutes east of UTC of the meters' local time


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
