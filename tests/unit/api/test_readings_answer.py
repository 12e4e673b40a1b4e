"""The answer of `POST /v1/readings`, built without models (`readings_answer`), is the JSON the
documented response model (`ReadingResultsPublic`) gives for the same results."""

from __future__ import annotations

import json

from api.schemas.readings import ReadingResultsPublic, readings_answer
from ledger.readings.results import IngestResult, Outcome, Receipt, Rejection

RECEIPT = Receipt(
    receipt_id="9f" * 16,
    meter_id="MTR-1",
    seq=2**64 - 1,
    timestamp=1_700_000_000,
    leaf=bytes(range(32)),
    key_epoch=3,
    received_at="2026-11-26T15:00:00.000001Z",
)

EVERY_KIND = [
    IngestResult(0, Outcome.ACCEPTED, None, "stored", "MTR-1", 2**64 - 1, RECEIPT),
    IngestResult(1, Outcome.DUPLICATE, None, "already stored", "MTR-1", 7, RECEIPT),
    IngestResult(2, Outcome.REJECTED, Rejection.BAD_SIGNATURE, "bad (key epoch 0)", "MTR-1", 8),
    IngestResult(3, Outcome.REJECTED, Rejection.MALFORMED_READING, "not hex", "Zähler-ü", None),
    IngestResult(4, Outcome.REJECTED, Rejection.METER_MISMATCH, 'quote " \\ and \n', None, None),
]


def test_the_answer_is_the_json_of_the_response_model_for_every_kind_of_result() -> None:
    documented = ReadingResultsPublic.of(EVERY_KIND).model_dump(mode="json")

    answer = json.loads(readings_answer(EVERY_KIND))

    assert answer == documented
    assert list(answer) == list(documented)
    assert [list(item) for item in answer["results"]] == [
        list(item) for item in documented["results"]
    ]
    assert list(answer["results"][0]["receipt"]) == list(documented["results"][0]["receipt"])


def test_the_answer_counts_each_outcome() -> None:
    answer = json.loads(readings_answer(EVERY_KIND))

    assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (1, 1, 3)


def test_the_answer_to_no_readings_is_empty_results_and_zero_counts() -> None:
    assert json.loads(readings_answer([])) == {
        "results": [],
        "accepted": 0,
        "duplicates": 0,
        "rejected": 0,
    }
