"""The statements a batch costs in its write transaction: the inserts of a request go to the
database as one `executemany`, and the reads of the same transaction still see them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from ledger.meters.keys import MeterPrivateKey
from ledger.readings.ingest import Ingestor
from ledger.readings.results import IngestResult, Outcome, Rejection, Submission
from ledger.store.database import Store
from tests.unit.readings.ingest_support import reading, submission


@dataclass
class Statements:
    """The statements sent to the store's connection: (sql, number of rows) in order."""

    sent: list[tuple[str, int]] = field(default_factory=list)

    def inserts_of_readings(self) -> list[int]:
        return [rows for sql, rows in self.sent if sql.startswith("INSERT INTO readings")]

    def latest_lookups(self) -> int:
        return sum(
            "ORDER BY seq DESC LIMIT 1" in sql and "seq <" not in sql for sql, _ in self.sent
        )


@pytest.fixture
def statements(store: Store, monkeypatch: pytest.MonkeyPatch) -> Statements:
    seen = Statements()
    backend = store._backend
    execute, executemany = backend.execute, backend.executemany

    def counted_execute(sql: str, params: Sequence[Any] = ()) -> Any:
        seen.sent.append((sql, 1))
        return execute(sql, params)

    def counted_executemany(sql: str, rows: Sequence[Sequence[Any]]) -> None:
        seen.sent.append((sql, len(rows)))
        executemany(sql, rows)

    monkeypatch.setattr(backend, "execute", counted_execute)
    monkeypatch.setattr(backend, "executemany", counted_executemany)
    return seen


def test_a_batch_of_in_order_readings_is_inserted_by_one_statement_with_one_latest_lookup(
    ingestor: Ingestor, meter_key: MeterPrivateKey, store: Store, statements: Statements
) -> None:
    results = ingestor.submit([submission(meter_key, reading(seq)) for seq in range(1, 7)])

    assert [r.status for r in results] == [Outcome.ACCEPTED] * 6
    assert statements.inserts_of_readings() == [6]
    assert statements.latest_lookups() == 1
    assert store.count_readings() == 6


def _outcomes(results: Sequence[IngestResult]) -> list[tuple[Outcome, Rejection | None]]:
    return [(r.status, r.code) for r in results]


def test_a_batch_whose_readings_depend_on_each_other_gets_the_answers_of_one_request_each(
    ingestor: Ingestor, meter_key: MeterPrivateKey, store: Store
) -> None:
    # Each item's answer depends on a reading earlier in the same batch, still held back.
    items: list[Submission] = [
        submission(meter_key, reading(1)),
        submission(meter_key, reading(4)),  # a gap 2..3 after seq 1
        submission(meter_key, reading(1)),  # duplicate of the first
        submission(meter_key, reading(3)),  # fills part of the gap
        submission(meter_key, reading(3, import_wh=310)),  # conflicts with the one before
        submission(meter_key, reading(2, import_wh=350)),  # above the later seq 3's register
        submission(meter_key, reading(5)),
    ]

    results = ingestor.submit(items)

    assert _outcomes(results) == [
        (Outcome.ACCEPTED, None),
        (Outcome.ACCEPTED, None),
        (Outcome.DUPLICATE, None),
        (Outcome.ACCEPTED, None),
        (Outcome.REJECTED, Rejection.CONFLICTING_READING),
        (Outcome.REJECTED, Rejection.REGISTER_DECREASED),
        (Outcome.ACCEPTED, None),
    ]
    duplicate_receipt = results[2].receipt
    assert duplicate_receipt is not None and results[0].receipt is not None
    assert duplicate_receipt.receipt_id == results[0].receipt.receipt_id
    assert store.count_readings() == 4
    assert [
        (g.from_seq, g.to_seq, g.resolved_at is None) for g in store.gaps(reading(1).meter_id)
    ] == [
        (2, 3, False),
        (2, 2, True),
    ]
