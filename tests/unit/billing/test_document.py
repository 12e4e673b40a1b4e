"""The bill document: canonical bytes, hash, leaf, and the worked example of docs/bills.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak

from ledger.anchoring.merkle import keccak256
from ledger.billing.compute import BillInputs, BillReading, SettledTrade, compute_bill
from ledger.billing.document import (
    BILL_FORMAT,
    BillDocumentError,
    bill_hash,
    bill_leaf,
    canonical_json,
)
from ledger.billing.tariff import parse_tariff
from ledger.billing.timeline import Assignment

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "bills"
# docs/bills.md, "Worked example": the hash of tests/data/bills/example-bill.json
EXAMPLE_BILL_HASH = "0x307c2e8d673886ccff6d7b271f56fc685f80b6a3ca92d32ee5280e217a5681b0"
EXAMPLE_TARIFF_HASH = "0x256804e7ea3e948e5a3d5d86ecc8f97c347902e442b4143b196434f8081d9267"


def example_inputs() -> BillInputs:
    """tests/data/bills/example-inputs.json as BillInputs (the format docs/bills.md shows)."""
    raw: dict[str, Any] = json.loads((EXAMPLES / "example-inputs.json").read_text())
    tariffs = {name: parse_tariff((EXAMPLES / name).read_bytes()) for name in raw["tariff_files"]}
    readings: dict[bytes, list[BillReading]] = {}
    for reading in raw["readings"]:
        meter = bytes.fromhex(reading["meter_id"][2:])
        readings.setdefault(meter, []).append(BillReading(**{**reading, "meter_id": meter}))
    return BillInputs(
        chain_id=raw["chain_id"],
        bill_registry=raw["bill_registry"],
        customer=raw["customer"],
        period_start=raw["period_start"],
        period_end=raw["period_end"],
        period_label=raw["period_label"],
        meters=tuple(bytes.fromhex(m[2:]) for m in raw["meters"]),
        readings=readings,
        tariffs={t.hash: t for t in tariffs.values()},
        assignments=[
            Assignment(tariffs[a["tariff_file"]].hash, a["valid_from"]) for a in raw["assignments"]
        ],
        trades=[
            SettledTrade(
                **{
                    **trade,
                    "seller_meter": bytes.fromhex(trade["seller_meter"][2:]),
                    "buyer_meter": bytes.fromhex(trade["buyer_meter"][2:]),
                }
            )
            for trade in raw["trades"]
        ],
        pending_trades=raw["pending_trades"],
        replaces=raw["replaces"],
        currency=(raw["currency"][0], raw["currency"][1]),
    )


def test_canonical_bytes_sort_keys_and_drop_whitespace() -> None:
    assert canonical_json({"b": [1, True, None], "a": {"d": "x", "c": -2}}) == (
        b'{"a":{"c":-2,"d":"x"},"b":[1,true,null]}'
    )


def test_canonical_bytes_keep_non_ascii_text_as_utf8() -> None:
    assert canonical_json({"name": "Zähler"}) == '{"name":"Zähler"}'.encode()


def test_a_float_is_refused_with_its_path() -> None:
    with pytest.raises(BillDocumentError, match=r"\$\.lines\[0\]\.quantity: a float") as caught:
        canonical_json({"lines": [{"quantity": 1.0}]})
    assert caught.value.code == "invalid_bill_document"


def test_bytes_are_refused() -> None:
    with pytest.raises(BillDocumentError, match="a bytes"):
        canonical_json({"customer": b"\x01"})


def test_a_non_string_key_is_refused() -> None:
    with pytest.raises(BillDocumentError, match="is not a string"):
        canonical_json({"lines": {1: "a"}})


def test_the_bill_hash_is_keccak256_of_the_canonical_bytes() -> None:
    document = {"format": BILL_FORMAT, "total_minor": 5}
    assert bill_hash(document) == keccak256(canonical_json(document))


def test_the_leaf_is_openzeppelins_standard_leaf_of_the_abi_encoded_hash() -> None:
    digest = keccak256(b"a bill")
    assert encode(["bytes32"], [digest]) == digest  # abi.encode(bytes32) is the 32 bytes
    assert bill_leaf(digest) == keccak(keccak(encode(["bytes32"], [digest])))


def test_a_leaf_of_a_hash_that_is_not_32_bytes_is_refused() -> None:
    with pytest.raises(BillDocumentError, match="32 bytes"):
        bill_leaf(b"\x01" * 31)


def test_the_worked_example_has_the_hash_the_docs_give() -> None:
    document = json.loads((EXAMPLES / "example-bill.json").read_text())
    assert "0x" + bill_hash(document).hex() == EXAMPLE_BILL_HASH


def test_the_worked_example_is_what_compute_bill_makes_of_its_inputs() -> None:
    document = json.loads((EXAMPLES / "example-bill.json").read_text())
    assert compute_bill(example_inputs()) == document


def test_the_example_tariff_has_the_hash_the_docs_give() -> None:
    data = (EXAMPLES / "example-tariff.toml").read_bytes()
    assert "0x" + parse_tariff(data).hash.hex() == EXAMPLE_TARIFF_HASH


def test_the_worked_example_canonical_bytes_are_the_canonical_file() -> None:
    document = json.loads((EXAMPLES / "example-bill.json").read_text())
    assert canonical_json(document) == (EXAMPLES / "example-bill.canonical.json").read_bytes()
