"""The key cache's bounds: chain calls per unknown meter, and how many entries it keeps."""

from __future__ import annotations

import pytest

from ledger.meters.keys import KeyAlgorithm, generate_key
from ledger.meters.registry import meter_id_bytes
from ledger.readings.keys import KeyCache
from tests.unit.readings.ingest_support import NOW, Clock, FakeRegistry, key_epoch

LIVE = NOW + 60  # a reading time after the registry's latest block: never covered by a history


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def monotonic() -> Clock:
    return Clock(1000.0)


def meter(n: int) -> bytes:
    return meter_id_bytes(f"MTR-CACHE-{n}")


def registered(registry: FakeRegistry, count: int) -> list[bytes]:
    meters = [meter(n) for n in range(count)]
    for meter_id in meters:
        registry.register(meter_id, generate_key(KeyAlgorithm.P256))
    return meters


def chain_calls(registry: FakeRegistry) -> int:
    return registry.block_calls + registry.history_calls


def look_up(cache: KeyCache, meter_id: bytes) -> None:
    """One request's lookup of a meter, for a live reading."""
    cache.history(meter_id, LIVE, set())


def warm(cache: KeyCache, registry: FakeRegistry) -> None:
    """The cache's first lookup reads a block once in its life; get that out of the way."""
    (known,) = registered(registry, 1)
    look_up(cache, known)


def test_an_unknown_meter_costs_one_chain_call_and_then_none_until_its_ttl_ends(
    registry: FakeRegistry, monotonic: Clock
) -> None:
    cache = KeyCache(registry, negative_ttl_s=5.0, monotonic=monotonic)
    warm(cache, registry)
    unknown = meter_id_bytes("MTR-NOBODY")
    before = chain_calls(registry)

    look_up(cache, unknown)
    first = chain_calls(registry) - before
    monotonic.now += 4.9
    look_up(cache, unknown)
    within_ttl = chain_calls(registry) - before
    monotonic.now += 0.2
    look_up(cache, unknown)
    after_ttl = chain_calls(registry) - before

    assert (first, within_ttl, after_ttl) == (1, 1, 2)


def test_the_cache_keeps_at_most_max_meters_histories(
    registry: FakeRegistry, monotonic: Clock
) -> None:
    cache = KeyCache(registry, max_meters=3, monotonic=monotonic)
    for meter_id in registered(registry, 10):
        look_up(cache, meter_id)
    assert cache.size.meters == 3


def test_the_least_recently_used_history_is_evicted_first(
    registry: FakeRegistry, monotonic: Clock
) -> None:
    cache = KeyCache(registry, max_meters=2, monotonic=monotonic)
    first, second, third = registered(registry, 3)
    look_up(cache, first)
    look_up(cache, second)
    cache.history(first, NOW - 1, set())  # covered by its history: used, no chain call
    look_up(cache, third)  # evicts `second`, the least recently used
    calls = registry.history_calls

    cache.history(first, NOW - 1, set())
    kept = registry.history_calls - calls
    cache.history(second, NOW - 1, set())
    evicted = registry.history_calls - calls - kept

    assert (kept, evicted) == (0, 1)


def test_the_cache_remembers_at_most_max_unknown_meters(
    registry: FakeRegistry, monotonic: Clock
) -> None:
    cache = KeyCache(registry, max_unknown=4, monotonic=monotonic)
    for n in range(50):
        look_up(cache, meter(n))
    assert cache.size.unknown_meters == 4


def test_expired_unknown_meters_are_dropped_when_another_is_remembered(
    registry: FakeRegistry, monotonic: Clock
) -> None:
    cache = KeyCache(registry, negative_ttl_s=5.0, monotonic=monotonic)
    for n in range(20):
        look_up(cache, meter(n))
    monotonic.now += 5.0
    look_up(cache, meter_id_bytes("MTR-LATECOMER"))
    assert cache.size.unknown_meters == 1


def test_a_flood_of_unknown_meters_does_not_evict_a_registered_meters_history(
    registry: FakeRegistry, monotonic: Clock
) -> None:
    cache = KeyCache(registry, max_meters=1, max_unknown=2, monotonic=monotonic)
    (known,) = registered(registry, 1)
    look_up(cache, known)
    for n in range(1, 100):
        look_up(cache, meter(n))
    calls = registry.history_calls
    cache.history(known, NOW - 1, set())
    assert registry.history_calls == calls


def test_the_cache_keeps_at_most_max_meters_parsed_keys(
    registry: FakeRegistry, monotonic: Clock
) -> None:
    cache = KeyCache(registry, max_meters=2, monotonic=monotonic)
    epochs = [key_epoch(0, generate_key(KeyAlgorithm.P256), NOW) for _ in range(3)]
    parsed = [cache.public_key(epoch) for epoch in epochs]
    assert cache.size.parsed_keys == 2
    assert cache.public_key(epochs[2]) is parsed[2]  # the most recent is kept
    assert cache.public_key(epochs[0]) is not parsed[0]  # the oldest was dropped, parsed again
