"""Reading ingestion against a real temporary SQLite store and an in-memory key registry."""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric import utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import ChainUnavailable
from ledger.meters.keys import (
    KeyAlgorithm,
    MeterPrivateKey,
    algorithm_of,
    encode_public_key,
    generate_key,
)
from ledger.meters.registry import KeyEpochView, meter_id_bytes
from ledger.readings.checks import parse_hex
from ledger.readings.ingest import BatchTooLarge, Ingestor, ReadingNotFound
from ledger.readings.keys import BlockRef, KeyCache, KeyHistory, key_for_time
from ledger.readings.native import Reading, reading_leaf, sign_reading
from ledger.readings.results import IngestResult, Outcome, Rejection, Submission
from ledger.store.database import Store
from tests.fixtures.postgres import store_location

CHAIN_ID = 1337
NOW = 1_700_000_000
METER = "MTR-UNIT-1"
METER_ID = meter_id_bytes(METER)
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class FakeRegistry:
    """An in-memory MeterRegistry: key histories by meter id, and the latest block."""

    def __init__(self) -> None:
        self.block = BlockRef(number=10, timestamp=NOW)
        self.histories: dict[bytes, tuple[KeyEpochView, ...]] = {}
        self.history_calls = 0
        self.block_calls = 0
        self.down = False  # True: the chain does not answer

    def latest_block(self) -> BlockRef:
        self._answer()
        self.block_calls += 1
        return self.block

    def key_history(self, meter_id: bytes) -> tuple[KeyEpochView, ...] | None:
        self._answer()
        self.history_calls += 1
        return self.histories.get(meter_id)

    def _answer(self) -> None:
        if self.down:
            raise ChainUnavailable(rpc_url="http://127.0.0.1:1", reason="connection refused")

    def register(
        self, meter_id: bytes, key: MeterPrivateKey, valid_from: int = NOW - 10_000
    ) -> None:
        self.histories[meter_id] = (_epoch(0, key, valid_from),)

    def rotate(self, meter_id: bytes, key: MeterPrivateKey, valid_from: int) -> None:
        epochs = self.histories[meter_id]
        self.histories[meter_id] = (*epochs, _epoch(len(epochs), key, valid_from))

    def revoke(self, meter_id: bytes, epoch: int, at: int) -> None:
        epochs = list(self.histories[meter_id])
        epochs[epoch] = replace(epochs[epoch], revoked_at=at)
        self.histories[meter_id] = tuple(epochs)

    def mine(self, timestamp: int) -> None:
        self.block = BlockRef(self.block.number + 1, timestamp)


def _epoch(index: int, key: MeterPrivateKey, valid_from: int, revoked_at: int = 0) -> KeyEpochView:
    public = key.public_key()
    return KeyEpochView(
        index, algorithm_of(public), encode_public_key(public), valid_from, revoked_at
    )


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def meter_key(registry: FakeRegistry) -> MeterPrivateKey:
    key = generate_key(KeyAlgorithm.P256)
    registry.register(METER_ID, key)
    return key


@pytest.fixture
def monotonic() -> Clock:
    return Clock(1000.0)


@pytest.fixture
def ingestor(store: Store, registry: FakeRegistry, monotonic: Clock) -> Ingestor:
    return Ingestor(
        store,
        KeyCache(registry, monotonic=monotonic),
        chain_id=CHAIN_ID,
        max_batch=10,
        clock_skew_s=300,
        clock=Clock(NOW + 0.5),
    )


def reading(
    seq: int,
    timestamp: int | None = None,
    import_wh: int | None = None,
    export_wh: int = 0,
    *,
    meter_id: bytes = METER_ID,
    chain_id: int = CHAIN_ID,
) -> Reading:
    """Reading `seq`: by default one minute and 100 Wh after the one before."""
    return Reading(
        chain_id=chain_id,
        meter_id=meter_id,
        seq=seq,
        timestamp=NOW - 5_000 + 60 * seq if timestamp is None else timestamp,
        import_wh=100 * seq if import_wh is None else import_wh,
        export_wh=export_wh,
    )


def submission(
    key: MeterPrivateKey, value: Reading, *, meter_id: str = METER, signature: bytes | None = None
) -> Submission:
    signed = sign_reading(key, value) if signature is None else signature
    return Submission(meter_id, "0x" + value.encode().hex(), "0x" + signed.hex())


def submit_one(ingestor: Ingestor, item: Submission) -> IngestResult:
    (result,) = ingestor.submit([item])
    return result


def assert_rejected(result: IngestResult, code: Rejection) -> None:
    assert (result.status, result.code) == (Outcome.REJECTED, code), result.message
    assert result.receipt is None


# --- accepted readings and what is stored -----------------------------------------------------


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_a_valid_reading_is_accepted_with_a_receipt(
    ingestor: Ingestor, registry: FakeRegistry, algorithm: KeyAlgorithm
) -> None:
    key = generate_key(algorithm)
    registry.register(METER_ID, key)
    result = submit_one(ingestor, submission(key, reading(1)))
    assert (result.status, result.code) == (Outcome.ACCEPTED, None)
    assert result.receipt is not None
    assert (result.receipt.meter_id, result.receipt.seq) == (METER, 1)
    assert result.receipt.timestamp == reading(1).timestamp
    assert result.receipt.leaf == reading_leaf(reading(1).encode())
    assert result.receipt.key_epoch == 0


def test_the_exact_canonical_bytes_and_der_signature_received_are_stored(
    ingestor: Ingestor, store: Store, meter_key: MeterPrivateKey
) -> None:
    raw = sign_reading(meter_key, reading(1))
    der = utils.encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
    result = submit_one(ingestor, submission(meter_key, reading(1), signature=der))
    stored = ingestor.reading(METER, 1)
    assert result.receipt is not None
    assert stored.canonical == reading(1).encode()
    assert stored.signature == der
    assert stored.receipt_id == result.receipt.receipt_id
    assert stored.batch_id is None


def test_accepted_readings_are_committed_when_submit_returns(
    ingestor: Ingestor, database_url: str, meter_key: MeterPrivateKey
) -> None:
    submit_one(ingestor, submission(meter_key, reading(1)))
    other = Store(store_location(database_url))  # another connection sees only committed rows
    try:
        count = other.count_readings()
    finally:
        other.close()
    assert count == 1


def test_results_come_one_per_reading_in_request_order(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    items = [
        submission(meter_key, reading(1)),
        Submission(METER, "0xzz", "0x00"),
        submission(meter_key, reading(2)),
    ]
    results = ingestor.submit(items)
    assert [r.index for r in results] == [0, 1, 2]
    assert [r.status for r in results] == [Outcome.ACCEPTED, Outcome.REJECTED, Outcome.ACCEPTED]


def test_rejected_readings_are_not_stored(
    ingestor: Ingestor, store: Store, meter_key: MeterPrivateKey
) -> None:
    other = generate_key(KeyAlgorithm.P256)
    submit_one(ingestor, submission(other, reading(1)))
    assert store.count_readings(METER_ID) == 0


def test_more_readings_than_max_batch_raise_batch_too_large_and_store_nothing(
    ingestor: Ingestor, store: Store, meter_key: MeterPrivateKey
) -> None:
    items = [submission(meter_key, reading(seq)) for seq in range(1, 12)]
    with pytest.raises(BatchTooLarge) as caught:
        ingestor.submit(items)
    assert caught.value.code == "batch_too_large"
    assert store.count_readings(METER_ID) == 0


def test_a_reading_that_is_not_stored_raises_reading_not_found(ingestor: Ingestor) -> None:
    with pytest.raises(ReadingNotFound) as caught:
        ingestor.reading(METER, 7)
    assert caught.value.code == "reading_not_found"


# --- format, identity, chain and clock --------------------------------------------------------


def test_canonical_that_is_not_hex_is_malformed_reading(ingestor: Ingestor) -> None:
    result = submit_one(ingestor, Submission(METER, "0xnot-hex", "0x00"))
    assert_rejected(result, Rejection.MALFORMED_READING)


def test_canonical_bytes_of_the_wrong_length_are_malformed_reading(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    good = submission(meter_key, reading(1))
    result = submit_one(ingestor, replace(good, canonical=good.canonical[:-2]))
    assert_rejected(result, Rejection.MALFORMED_READING)


def test_signature_that_is_not_hex_is_malformed_reading(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    good = submission(meter_key, reading(1))
    result = submit_one(ingestor, replace(good, signature="0x12 34"))
    assert_rejected(result, Rejection.MALFORMED_READING)


def test_body_meter_id_other_than_the_readings_is_meter_mismatch(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    result = submit_one(ingestor, submission(meter_key, reading(1), meter_id="MTR-OTHER"))
    assert_rejected(result, Rejection.METER_MISMATCH)
    assert (result.meter_id, result.seq) == (METER, 1)


def test_body_meter_id_that_is_no_valid_id_is_meter_mismatch(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    result = submit_one(ingestor, submission(meter_key, reading(1), meter_id="x" * 40))
    assert_rejected(result, Rejection.METER_MISMATCH)


def test_body_meter_id_in_hex_form_matches_the_serial(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    hex_id = "0x" + METER_ID.hex()
    result = submit_one(ingestor, submission(meter_key, reading(1), meter_id=hex_id))
    assert result.status is Outcome.ACCEPTED


def test_reading_for_another_chain_is_wrong_chain(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    result = submit_one(ingestor, submission(meter_key, reading(1, chain_id=1)))
    assert_rejected(result, Rejection.WRONG_CHAIN)


def test_reading_more_than_the_allowed_skew_ahead_is_clock_skew(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    result = submit_one(ingestor, submission(meter_key, reading(1, timestamp=NOW + 301)))
    assert_rejected(result, Rejection.CLOCK_SKEW)


def test_reading_exactly_at_the_skew_limit_is_accepted(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    result = submit_one(ingestor, submission(meter_key, reading(1, timestamp=NOW + 300)))
    assert result.status is Outcome.ACCEPTED


# --- keys -------------------------------------------------------------------------------------


def test_unregistered_meter_is_unknown_meter(ingestor: Ingestor) -> None:
    key = generate_key(KeyAlgorithm.P256)
    result = submit_one(ingestor, submission(key, reading(1)))
    assert_rejected(result, Rejection.UNKNOWN_METER)


def test_reading_before_the_first_key_is_no_key_at_time(
    ingestor: Ingestor, registry: FakeRegistry
) -> None:
    key = generate_key(KeyAlgorithm.P256)
    registry.register(METER_ID, key, valid_from=NOW - 100)
    result = submit_one(ingestor, submission(key, reading(1, timestamp=NOW - 101)))
    assert_rejected(result, Rejection.NO_KEY_AT_TIME)


def test_reading_at_the_revocation_time_is_key_revoked(
    ingestor: Ingestor, registry: FakeRegistry, meter_key: MeterPrivateKey
) -> None:
    registry.revoke(METER_ID, 0, at=NOW - 1_000)
    result = submit_one(ingestor, submission(meter_key, reading(1, timestamp=NOW - 1_000)))
    assert_rejected(result, Rejection.KEY_REVOKED)


def test_reading_signed_before_the_revocation_is_accepted(
    ingestor: Ingestor, registry: FakeRegistry, meter_key: MeterPrivateKey
) -> None:
    registry.revoke(METER_ID, 0, at=NOW - 1_000)
    result = submit_one(ingestor, submission(meter_key, reading(1, timestamp=NOW - 1_001)))
    assert result.status is Outcome.ACCEPTED


def test_signature_by_another_key_is_bad_signature(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    intruder = generate_key(KeyAlgorithm.P256)
    result = submit_one(ingestor, submission(intruder, reading(1)))
    assert_rejected(result, Rejection.BAD_SIGNATURE)


def test_signature_over_other_bytes_is_bad_signature(
    ingestor: Ingestor, meter_key: MeterPrivateKey
) -> None:
    signature = sign_reading(meter_key, reading(2))
    result = submit_one(ingestor, submission(meter_key, reading(1), signature=signature))
    assert_rejected(result, Rejection.BAD_SIGNATURE)


def test_reading_after_a_rotation_verifies_under_the_new_epoch(
    ingestor: Ingestor, registry: FakeRegistry, meter_key: MeterPrivateKey
) -> None:
    new_key = generate_key(KeyAlgorithm.ED25519)
    registry.rotate(METER_ID, new_key, valid_from=NOW - 2_000)
    result = submit_one(ingestor, submission(new_key, reading(1, timestamp=NOW - 1_500)))
    assert result.receipt is not None and result.receipt.key_epoch == 1


def test_reading_from_before_a_rotation_still_needs_the_old_key(
    ingestor: Ingestor, registry: FakeRegistry, meter_key: MeterPrivateKey
) -> None:
    new_key = generate_key(KeyAlgorithm.ED25519)
    registry.rotate(METER_ID, new_key, valid_from=NOW - 2_000)
    result = submit_one(ingestor, submission(new_key, reading(1, timestamp=NOW - 2_001)))
    assert_rejected(result, Rejection.BAD_SIGNATURE)


# --- the pure key lookup from a cached history ------------------------------------------------


def _history() -> tuple[KeyEpochView, ...]:
    a, b = generate_key(KeyAlgorithm.P256), generate_key(KeyAlgorithm.ED25519)
    return (_epoch(0, a, 100, revoked_at=150), _epoch(1, b, 200))


def test_key_lookup_before_the_first_epoch_is_no_key_at_time() -> None:
    assert key_for_time(_history(), 99) is Rejection.NO_KEY_AT_TIME


def test_key_lookup_with_no_epochs_is_no_key_at_time() -> None:
    assert key_for_time((), NOW) is Rejection.NO_KEY_AT_TIME


def test_key_lookup_at_valid_from_is_that_epoch() -> None:
    found = key_for_time(_history(), 100)
    assert isinstance(found, KeyEpochView) and found.index == 0


def test_key_lookup_one_second_before_revocation_is_the_epoch() -> None:
    found = key_for_time(_history(), 149)
    assert isinstance(found, KeyEpochView) and found.index == 0


def test_key_lookup_at_revocation_is_key_revoked() -> None:
    assert key_for_time(_history(), 150) is Rejection.KEY_REVOKED


def test_key_lookup_between_revocation_and_next_epoch_is_key_revoked() -> None:
    assert key_for_time(_history(), 199) is Rejection.KEY_REVOKED


def test_key_lookup_from_the_next_epoch_on_is_the_next_epoch() -> None:
    found = key_for_time(_history(), 200)
    assert isinstance(found, KeyEpochView) and found.index == 1


def test_a_history_is_final_only_for_times_before_its_block() -> None:
    history = KeyHistory(epochs=(), block=BlockRef(5, 1_000), read_at=0.0)
    assert history.covers(999)
    assert not history.covers(1_000)


# --- the key cache ----------------------------------------------------------------------------


def test_a_reading_before_the_cached_block_time_costs_no_chain_call(
    ingestor: Ingestor, registry: FakeRegistry, meter_key: MeterPrivateKey
) -> None:
    submit_one(ingestor, submission(meter_key, reading(1)))
    calls = (registry.block_calls, registry.history_calls)
    submit_one(ingestor, submission(meter_key, reading(2)))
    assert (registry.block_calls, registry.history_calls) == calls == (1, 1)


def test_a_batch_of_one_meter_reads_its_history_once(
    ingestor: Ingestor, registry: FakeRegistry, meter_key: MeterPrivateKey
) -> None:
    # Times after the latest block: each would need a refresh, but one per request is enough.
    items = [submission(meter_key, reading(s, timestamp=NOW + s)) for s in range(1, 9)]
    results = ingestor.submit(items)
    assert all(r.status is Outcome.ACCEPTED for r in results)
    assert (registry.block_calls, registry.history_calls) == (1, 1)


def test_a_reading_after_the_cached_block_time_refreshes_and_sees_a_revocation(
    ingestor: Ingestor, registry: FakeRegistry, meter_key: MeterPrivateKey
) -> None:
    submit_one(ingestor, submission(meter_key, reading(1)))
    registry.revoke(METER_ID, 0, at=NOW + 10)
    registry.mine(NOW + 10)
    result = submit_one(ingestor, submission(meter_key, reading(2, timestamp=NOW + 20)))
    assert_rejected(result, Rejection.KEY_REVOKED)


def test_a_refresh_without_a_new_block_does_not_reread_the_history(
    ingestor: Ingestor, registry: FakeRegistry, meter_key: MeterPrivateKey
) -> None:
    submit_one(ingestor, submission(meter_key, reading(1, timestamp=NOW + 1)))
    submit_one(ingestor, submission(meter_key, reading(2, timestamp=NOW + 2)))
    assert (registry.block_calls, registry.history_calls) == (2, 1)


def test_an_unknown_meter_is_remembered_for_five_seconds(
    ingestor: Ingestor, registry: FakeRegistry, monotonic: Clock
) -> None:
    key = generate_key(KeyAlgorithm.P256)
    submit_one(ingestor, submission(key, reading(1)))
    registry.register(METER_ID, key)
    monotonic.now += 4.9
    assert_rejected(submit_one(ingestor, submission(key, reading(1))), Rejection.UNKNOWN_METER)
    monotonic.now += 0.2
    assert submit_one(ingestor, submission(key, reading(1))).status is Outcome.ACCEPTED


def test_a_key_is_parsed_once_and_kept(registry: FakeRegistry, monotonic: Clock) -> None:
    cache = KeyCache(registry, monotonic=monotonic)
    epoch = _epoch(0, generate_key(KeyAlgorithm.P256), NOW)
    parsed = cache.public_key(epoch)
    assert encode_public_key(parsed) == epoch.public_key
    assert cache.public_key(replace(epoch)) is parsed  # an equal epoch, as a refresh reads it


def test_a_registry_key_that_does_not_parse_is_bad_signature_every_time(
    ingestor: Ingestor, registry: FakeRegistry, meter_key: MeterPrivateKey
) -> None:
    (epoch,) = registry.histories[METER_ID]
    registry.histories[METER_ID] = (replace(epoch, public_key=b"\x04" + b"\x01" * 64),)
    for seq in (1, 2):  # a key that failed to parse is not cached as if it had
        result = submit_one(ingestor, submission(meter_key, reading(seq)))
        assert_rejected(result, Rejection.BAD_SIGNATURE)
        assert "not a valid" in result.message
        assert result.message.endswith("(key epoch 0)")


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


_REGEX_HEX = re.compile(r"(0x)?((?:[0-9a-fA-F]{2})*)")


def regex_hex(text: str) -> bytes | None:
    """What `parse_hex` accepted when it was a regular expression: the reference it must match."""
    match = _REGEX_HEX.fullmatch(text)
    return None if match is None else bytes.fromhex(match.group(2))


@settings(max_examples=500, deadline=None)
@given(
    prefix=st.sampled_from(["", "0x", "0X", "x", " 0x", "0x0x", "00x", "\n"]),
    body=st.one_of(
        st.binary(max_size=8).map(bytes.hex),
        st.binary(max_size=8).map(lambda b: b.hex().upper()),
        st.text(
            alphabet="0123456789abcdefABCDEFxg \t\n\r\x0b\x0c\x00+-_\u0660\uff10\u00e9", max_size=10
        ),
    ),
    suffix=st.sampled_from(["", "\n", " ", "0", "00", "\u0661"]),
)
def test_hex_decoding_accepts_exactly_what_the_former_regular_expression_did(
    prefix: str, body: str, suffix: str
) -> None:
    text = prefix + body + suffix
    assert parse_hex(text) == regex_hex(text)


# --- chain outage -----------------------------------------------------------------------------


def test_during_a_chain_outage_readings_verify_against_the_last_known_keys(
    ingestor: Ingestor, registry: FakeRegistry, meter_key: MeterPrivateKey
) -> None:
    assert submit_one(ingestor, submission(meter_key, reading(1))).status is Outcome.ACCEPTED
    registry.down = True
    later = reading(2, timestamp=NOW + 100)  # after the cached block: would need a refresh
    assert submit_one(ingestor, submission(meter_key, later)).status is Outcome.ACCEPTED


def test_during_a_chain_outage_a_meter_never_seen_is_keys_unavailable(
    ingestor: Ingestor, registry: FakeRegistry, meter_key: MeterPrivateKey
) -> None:
    registry.down = True
    assert_rejected(
        submit_one(ingestor, submission(meter_key, reading(1))), Rejection.KEYS_UNAVAILABLE
    )
