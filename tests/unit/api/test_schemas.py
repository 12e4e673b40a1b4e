"""Each response schema turns the core's frozen dataclass into the JSON the API documents."""

from __future__ import annotations

from typing import Any

from api.schemas.market import OfferPublic, SettlementPublic, TradePublic
from api.schemas.meters import KeyEpochPublic, MeterChangePublic, MeterPublic
from api.schemas.readings import ReadingResultsPublic, StoredReadingPublic
from ledger.anchoring.anchorer import ReadingProof
from ledger.market.views import OfferView, Settlement, TradeState, TradeView
from ledger.meters.keys import KeyAlgorithm
from ledger.meters.registry import KeyEpochView, MeterView
from ledger.readings.results import IngestResult, Outcome, Receipt, Rejection
from ledger.store.batches import BatchRecord
from ledger.store.readings import StoredReading

METER = b"MTR-1".ljust(32, b"\0")
ALICE = "0x" + "aa" * 20
BOB = "0x" + "bb" * 20


def stored_reading(**changes: Any) -> StoredReading:
    fields: dict[str, Any] = {
        "meter_id": METER,
        "seq": 7,
        "timestamp": 1_700_000_000,
        "import_wh": 1500,
        "export_wh": 20,
        "status": 0,
        "canonical": b"\x01\x02",
        "signature": b"\xab" * 4,
        "key_epoch": 0,
        "leaf": b"\x11" * 32,
        "receipt_id": "r-7",
        "received_at": "2023-11-14T22:13:21Z",
        "batch_id": 3,
    }
    return StoredReading(**(fields | changes))


def anchored_proof() -> ReadingProof:
    batch = BatchRecord(
        batch_id=3,
        root=b"\x22" * 32,
        count=2,
        from_ts=1,
        to_ts=2,
        status="anchored",
        tx_hash=b"\x33" * 32,
        block_number=12,
        created_at="2023-11-14T22:13:30Z",
        anchored_at="2023-11-14T22:13:31Z",
    )
    return ReadingProof(batch=batch, leaf_index=1, proof=(b"\x44" * 32,), confirmations=0)


RECEIPT_JSON = {
    "receipt_id": "r-7",
    "meter_id": "MTR-1",
    "seq": 7,
    "timestamp": 1_700_000_000,
    "leaf": "0x" + "11" * 32,
    "key_epoch": 0,
    "received_at": "2023-11-14T22:13:21Z",
}


def test_a_stored_reading_with_its_proof_becomes_the_documented_json_in_its_field_order() -> None:
    shown = StoredReadingPublic.of(stored_reading(), anchored_proof()).model_dump(mode="json")
    assert list(shown.items()) == list(
        {
            "meter_id": "MTR-1",
            "seq": 7,
            "timestamp": 1_700_000_000,
            "import_wh": 1500,
            "export_wh": 20,
            "status": 0,
            "canonical": "0x0102",
            "signature": "0xabababab",
            "source": "native",
            "raw": None,
            "key_epoch": 0,
            "leaf": "0x" + "11" * 32,
            "receipt": RECEIPT_JSON,
            "batch_id": 3,
            "anchor": {
                "batch_id": 3,
                "status": "anchored",
                "root": "0x" + "22" * 32,
                "leaf_index": 1,
                "proof": ["0x" + "44" * 32],
                "tx_hash": "0x" + "33" * 32,
                "block_number": 12,
                "anchored_at": "2023-11-14T22:13:31Z",
                "confirmations": 0,
                "final": False,
                "final_at": None,
            },
        }.items()
    )


def test_an_ocmf_reading_shows_its_raw_record_as_text() -> None:
    stored = stored_reading(source="ocmf", raw=b"OCMF|{}|{}", batch_id=None)
    shown = StoredReadingPublic.of(stored, None).model_dump(mode="json")
    assert (shown["raw"], shown["batch_id"], shown["anchor"]) == ("OCMF|{}|{}", None, None)


def test_ingest_results_become_one_result_each_and_the_counts() -> None:
    results = [
        IngestResult(
            0, Outcome.ACCEPTED, None, "accepted", "MTR-1", 7, Receipt.of(stored_reading())
        ),
        IngestResult(1, Outcome.REJECTED, Rejection.BAD_SIGNATURE, "no", None, None),
    ]
    assert ReadingResultsPublic.of(results).model_dump(mode="json") == {
        "results": [
            {
                "index": 0,
                "status": "accepted",
                "code": None,
                "message": "accepted",
                "meter_id": "MTR-1",
                "seq": 7,
                "receipt": RECEIPT_JSON,
            },
            {
                "index": 1,
                "status": "rejected",
                "code": "bad_signature",
                "message": "no",
                "meter_id": None,
                "seq": None,
                "receipt": None,
            },
        ],
        "accepted": 1,
        "duplicates": 0,
        "rejected": 1,
    }


def test_a_key_epoch_shows_its_label_hex_key_and_utc_times_with_null_for_not_revoked() -> None:
    epoch = KeyEpochView(0, KeyAlgorithm.ED25519, b"\x05" * 32, 0, 0)
    assert KeyEpochPublic.model_validate(epoch).model_dump(mode="json") == {
        "epoch": 0,
        "algorithm": "ed25519",
        "public_key": "0x" + "05" * 32,
        "valid_from": 0,
        "valid_from_utc": "1970-01-01T00:00:00Z",
        "revoked_at": None,
        "revoked_at_utc": None,
    }


def test_a_key_time_past_year_9999_has_no_utc_text() -> None:
    epoch = KeyEpochView(1, KeyAlgorithm.P256, b"\x04", 2**63, 2**63 + 1)
    shown = KeyEpochPublic.model_validate(epoch).model_dump(mode="json")
    assert (shown["valid_from_utc"], shown["revoked_at"], shown["revoked_at_utc"]) == (
        None,
        2**63 + 1,
        None,
    )


def test_a_meter_after_a_registrar_transaction_shows_its_keys_and_the_transaction() -> None:
    meter = MeterView("MTR-1", ALICE, (KeyEpochView(0, KeyAlgorithm.P256, b"\x04", 60, 120),))
    receipt = {"transactionHash": b"\x99" * 32, "blockNumber": 5}
    shown = MeterChangePublic.of(meter, receipt).model_dump(mode="json")
    assert shown["keys"][0]["revoked_at_utc"] == "1970-01-01T00:02:00Z"
    assert (shown["transaction_hash"], shown["block_number"]) == ("0x" + "99" * 32, 5)


def test_a_trade_shows_its_state_meters_and_the_ends_its_market_gives_it() -> None:
    trade = TradeView(
        trade_id=4,
        offer_id=2,
        seller=ALICE,
        buyer=BOB,
        seller_meter=METER,
        buyer_meter=b"\xff" * 32,
        delivery_start=900,
        quantity_wh=1000,
        price_per_kwh=250_000,
        escrow=250_000,
        state=TradeState.SETTLED,
        delivered_wh=600,
        paid=150_000,
    )
    shown = TradePublic.of(trade, slot_s=900, settlement_window_s=3600).model_dump(mode="json")
    assert shown == {
        "trade_id": 4,
        "offer_id": 2,
        "state": "settled",
        "seller": ALICE,
        "buyer": BOB,
        "seller_meter": "MTR-1",
        "buyer_meter": "0x" + "ff" * 32,
        "delivery_start": 900,
        "delivery_end": 1800,
        "settlement_deadline": 5400,
        "quantity_wh": 1000,
        "price_per_kwh": 250_000,
        "escrow": 250_000,
        "delivered_wh": 600,
        "paid": 150_000,
        "refunded": 100_000,
        "tx_hash": None,
    }


def test_an_offer_is_open_until_its_expiry_by_chain_time() -> None:
    offer = OfferView(1, ALICE, METER, 900, 600, 250_000, 1000, False)
    before = OfferPublic.of(offer, slot_s=900, now=599, tx_hash="0x01").model_dump(mode="json")
    at_expiry = OfferPublic.of(offer, slot_s=900, now=600).model_dump(mode="json")
    assert (before["open"], before["delivery_end"], before["tx_hash"]) == (True, 1800, "0x01")
    assert at_expiry["open"] is False


def test_a_settlement_is_shown_field_for_field() -> None:
    settlement = Settlement(4, 600, 150_000, 100_000, "0x" + "12" * 32, 30)
    assert SettlementPublic.model_validate(settlement).model_dump() == {
        "trade_id": 4,
        "delivered_wh": 600,
        "paid": 150_000,
        "refunded": 100_000,
        "tx_hash": "0x" + "12" * 32,
        "block_number": 30,
    }


def test_a_schema_reads_its_own_json_back_unchanged() -> None:
    meter = MeterView("MTR-1", ALICE, (KeyEpochView(0, KeyAlgorithm.P256, b"\x04", 60, 120),))
    shown = MeterPublic.model_validate(meter).model_dump(mode="json")
    reading = StoredReadingPublic.of(stored_reading(), anchored_proof()).model_dump(mode="json")
    assert MeterPublic.model_validate(shown).model_dump(mode="json") == shown
    assert StoredReadingPublic.model_validate(reading).model_dump(mode="json") == reading
