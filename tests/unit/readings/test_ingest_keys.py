"""Ingestion's key lookup: the pure lookup in a key history, and what the key cache reads from the
registry (and what it does not).
"""

from __future__ import annotations

from dataclasses import replace

from ledger.meters.keys import (
    KeyAlgorithm,
    MeterPrivateKey,
    encode_public_key,
    generate_key,
)
from ledger.meters.registry import KeyEpochView
from ledger.readings.ingest import Ingestor
from ledger.readings.keys import BlockRef, KeyCache, KeyHistory, key_for_time
from ledger.readings.results import Outcome, Rejection
from tests.unit.readings.ingest_support import (
    METER_ID,
    NOW,
    Clock,
    FakeRegistry,
    assert_rejected,
    key_epoch,
    reading,
    submission,
    submit_one,
)

# --- the pure key lookup from a cached history ------------------------------------------------


def _history() -> tuple[KeyEpochView, ...]:
    a, b = generate_key(KeyAlgorithm.P256), generate_key(KeyAlgorithm.ED25519)
    return (key_epoch(0, a, 100, revoked_at=150), key_epoch(1, b, 200))


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
    epoch = key_epoch(0, generate_key(KeyAlgorithm.P256), NOW)
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
