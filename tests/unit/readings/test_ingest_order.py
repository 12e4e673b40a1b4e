"""Ingestion's sequence rules: duplicates, conflicts, seq jumps and gaps, late readings between
their neighbours, and readings in any order against a model.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.meters.keys import (
    KeyAlgorithm,
    MeterPrivateKey,
    generate_key,
)
from ledger.meters.registry import meter_id_bytes
from ledger.readings.ingest import Ingestor
from ledger.readings.native import sign_reading
from ledger.readings.results import IngestResult, Outcome, Rejection, Submission
from ledger.store.database import Store
from tests.unit.readings.ingest_support import (
    METER,
    METER_ID,
    P256_ORDER,
    FakeRegistry,
    assert_rejected,
    reading,
    submission,
    submit_one,
)

# --- sequence, duplicates and conflicts -------------------------------------------------------


def test_resent_identical_reading_is_a_duplicate_with_the_original_receipt(
    ingestor: Ingestor, store: Store, meter_key: MeterPrivateKey
) -> None:
    first = submit_one(ingestor, submission(meter_key, reading(1)))
    again = submit_one(ingestor, submission(meter_key, reading(1)))
    assert (again.status, again.code) == (Outcome.DUPLICATE, None)
    assert again.receipt == first.receipt
    assert store.count_readings(METER_ID) == 1


def test_same_reading_with_a_malleated_signature_is_a_duplicate(
    ingestor: Ingestor, store: Store, meter_key: MeterPrivateKey
) -> None:
    original = sign_reading(meter_key, reading(1))
    s = int.from_bytes(original[32:], "big")
    malleated = original[:32] + (P256_ORDER - s).to_bytes(32, "big")
    first = submit_one(ingestor, submission(meter_key, reading(1), signature=original))
    again = submit_one(ingestor, submission(meter_key, reading(1), signature=malleated))
    assert (again.status, again.code) == (Outcome.DUPLICATE, None)
    assert again.receipt == first.receipt
    assert ingestor.reading(METER, 1).signature == original


def test_same_seq_with_other_content_is_conflicting_reading(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    submit_one(ingestor, submission(meter_key, reading(1)))
    result = submit_one(ingestor, submission(meter_key, reading(1, import_wh=999)))
    assert_rejected(result, Rejection.CONFLICTING_READING)


def test_a_conflicting_reading_is_recorded_as_an_integrity_event(
    ingestor: Ingestor, store: Store, meter_key: MeterPrivateKey
) -> None:
    submit_one(ingestor, submission(meter_key, reading(1)))
    conflicting = submission(meter_key, reading(1, import_wh=999))
    submit_one(ingestor, conflicting)
    (event,) = store.integrity_events(METER_ID)
    assert (event.meter_id, event.seq, event.kind) == (METER_ID, 1, "conflicting_reading")
    assert event.stored_hash == hashlib.sha256(reading(1).encode()).digest()
    assert event.received_hash == hashlib.sha256(reading(1, import_wh=999).encode()).digest()
    assert event.received_canonical == reading(1, import_wh=999).encode()
    assert event.detected_at.endswith("Z")
    assert ingestor.reading(METER, 1).import_wh == 100


def test_a_seq_jump_is_accepted_and_the_gap_recorded(
    ingestor: Ingestor, store: Store, meter_key: MeterPrivateKey
) -> None:
    results = ingestor.submit([submission(meter_key, reading(s)) for s in (1, 5)])
    assert [r.status for r in results] == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    (gap,) = store.gaps(METER_ID)
    assert (gap.meter_id, gap.from_seq, gap.to_seq, gap.resolved_at) == (METER_ID, 2, 4, None)


def test_the_first_reading_of_a_meter_records_no_gap(
    ingestor: Ingestor, store: Store, meter_key: MeterPrivateKey
) -> None:
    submit_one(ingestor, submission(meter_key, reading(41)))
    assert store.gaps(METER_ID) == []


def test_a_late_reading_inside_a_gap_is_accepted_and_splits_it(
    ingestor: Ingestor, store: Store, meter_key: MeterPrivateKey
) -> None:
    ingestor.submit([submission(meter_key, reading(s)) for s in (1, 5)])
    result = submit_one(ingestor, submission(meter_key, reading(3)))
    assert result.status is Outcome.ACCEPTED
    spans = [(g.from_seq, g.to_seq) for g in store.gaps(METER_ID, open_only=True)]
    assert spans == [(2, 2), (4, 4)]
    assert store.gaps(METER_ID)[0].resolved_at is not None


def test_a_late_reading_that_fills_a_gap_closes_it(
    ingestor: Ingestor, store: Store, meter_key: MeterPrivateKey
) -> None:
    ingestor.submit([submission(meter_key, reading(s)) for s in (1, 3)])
    submit_one(ingestor, submission(meter_key, reading(2)))
    assert store.gaps(METER_ID, open_only=True) == []


def test_a_late_reading_below_the_first_stored_one_records_the_gap_above_it(
    ingestor: Ingestor, store: Store, meter_key: MeterPrivateKey
) -> None:
    submit_one(ingestor, submission(meter_key, reading(5)))
    assert submit_one(ingestor, submission(meter_key, reading(2))).status is Outcome.ACCEPTED
    assert [(g.from_seq, g.to_seq) for g in store.gaps(METER_ID)] == [(3, 4)]


def test_a_late_reading_with_registers_above_the_next_readings_is_register_decreased(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    ingestor.submit([submission(meter_key, reading(s)) for s in (1, 5)])
    result = submit_one(ingestor, submission(meter_key, reading(3, import_wh=501)))
    assert_rejected(result, Rejection.REGISTER_DECREASED)


def test_a_late_reading_timed_after_the_next_reading_is_timestamp_out_of_order(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    ingestor.submit([submission(meter_key, reading(s)) for s in (1, 5)])
    late = reading(3, timestamp=reading(5).timestamp)
    assert_rejected(
        submit_one(ingestor, submission(meter_key, late)), Rejection.TIMESTAMP_OUT_OF_ORDER
    )


def test_import_register_below_the_previous_readings_is_register_decreased(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    submit_one(ingestor, submission(meter_key, reading(1)))
    result = submit_one(ingestor, submission(meter_key, reading(2, import_wh=99)))
    assert_rejected(result, Rejection.REGISTER_DECREASED)


def test_export_register_below_the_previous_readings_is_register_decreased(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    submit_one(ingestor, submission(meter_key, reading(1, export_wh=50)))
    result = submit_one(ingestor, submission(meter_key, reading(2, export_wh=49)))
    assert_rejected(result, Rejection.REGISTER_DECREASED)


def test_timestamp_equal_to_the_previous_readings_is_timestamp_out_of_order(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    submit_one(ingestor, submission(meter_key, reading(1)))
    result = submit_one(ingestor, submission(meter_key, reading(2, timestamp=reading(1).timestamp)))
    assert_rejected(result, Rejection.TIMESTAMP_OUT_OF_ORDER)


def test_readings_of_one_batch_are_checked_against_each_other(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    items = [submission(meter_key, reading(1)), submission(meter_key, reading(2, import_wh=1))]
    results = ingestor.submit(items)
    assert results[0].status is Outcome.ACCEPTED
    assert_rejected(results[1], Rejection.REGISTER_DECREASED)


def test_concurrent_submissions_of_one_seq_accept_exactly_one(
    ingestor: Ingestor, store: Store, meter_key: MeterPrivateKey
) -> None:
    variants = [submission(meter_key, reading(1, import_wh=100 + i)) for i in range(8)]
    barrier = threading.Barrier(len(variants))
    outcomes: list[IngestResult] = []

    def send(item: Submission) -> None:
        barrier.wait()
        outcomes.extend(ingestor.submit([item]))

    threads = [threading.Thread(target=send, args=(v,)) for v in variants]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.status.value for r in outcomes) == ["accepted"] + ["rejected"] * 7
    assert {r.code for r in outcomes if r.status is Outcome.REJECTED} == {
        Rejection.CONFLICTING_READING
    }
    assert store.count_readings(METER_ID) == 1


def test_hex_with_a_trailing_newline_is_malformed_reading(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    good = submission(meter_key, reading(1))
    result = submit_one(ingestor, replace(good, canonical=good.canonical + "\n"))
    assert_rejected(result, Rejection.MALFORMED_READING)


_ORDER_METERS = itertools.count()


@settings(
    max_examples=20,
    deadline=None,
    # The store is the test's (one per backend); each example sequences a meter of its own.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    arrivals=st.lists(st.tuples(st.integers(1, 12), st.booleans()), min_size=1, max_size=24),
    sizes=st.lists(st.integers(1, 10), min_size=1, max_size=24),
)
def test_readings_in_any_order_get_the_results_and_gaps_of_the_model(
    ingestor: Ingestor,
    store: Store,
    registry: FakeRegistry,
    arrivals: list[tuple[int, bool]],
    sizes: list[int],
) -> None:
    """Readings of one meter in any order, resent, or changed (status 1 instead of 0), in
    requests of any size: in order or late, each is accepted, a duplicate or a conflict as the
    first arrival of its seq decides, and the open gaps are exactly the seqs missing between
    the lowest and the highest stored (registers and times grow with seq, so every seq fits)."""
    meter = f"MTR-ORDER-{next(_ORDER_METERS)}"
    meter_id = meter_id_bytes(meter)
    key = generate_key(KeyAlgorithm.P256)
    registry.register(meter_id, key)

    def item(seq: int, changed: bool) -> Submission:
        value = replace(reading(seq, meter_id=meter_id), status=int(changed))
        return submission(key, value, meter_id=meter)

    results: list[IngestResult] = []
    pending = list(arrivals)
    for size in itertools.cycle(sizes):
        if not pending:
            break
        batch, pending = pending[:size], pending[size:]
        results += ingestor.submit([item(seq, changed) for seq, changed in batch])

    first: dict[int, tuple[bool, IngestResult]] = {}
    for (seq, changed), result in zip(arrivals, results, strict=True):
        assert result.seq == seq
        if seq not in first:
            assert (result.status, result.code) == (Outcome.ACCEPTED, None), result.message
            first[seq] = (changed, result)
        elif first[seq][0] == changed:
            assert (result.status, result.code) == (Outcome.DUPLICATE, None), result.message
            assert result.receipt == first[seq][1].receipt
        else:
            assert_rejected(result, Rejection.CONFLICTING_READING)
    stored = sorted(first)
    missing = [s for s in range(stored[0], stored[-1] + 1) if s not in first]
    runs: list[tuple[int, int]] = []
    for s in missing:
        if runs and runs[-1][1] == s - 1:
            runs[-1] = (runs[-1][0], s)
        else:
            runs.append((s, s))
    open_gaps = sorted((g.from_seq, g.to_seq) for g in store.gaps(meter_id, open_only=True))
    assert open_gaps == runs
    assert store.count_readings(meter_id) == len(stored)
    assert len(store.integrity_events(meter_id)) == sum(
        r.code is Rejection.CONFLICTING_READING for r in results
    )
