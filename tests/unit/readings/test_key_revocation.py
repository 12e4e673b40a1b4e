"""KeyCache and revocations from a compromise time: a cached history covering a reading's time
is dropped when its key is revoked back into that time, by this process at once (`forget`) and
by any other process at its next poll of the registry's revocation events."""

from __future__ import annotations

from dataclasses import replace

from ledger.meters.keys import KeyAlgorithm
from ledger.meters.registry import KeyEpochView, meter_id_bytes
from ledger.readings.keys import BlockRef, KeyCache, KeyHistory, key_for_time
from ledger.readings.results import Rejection

NOW = 1_700_000_000
METER_ID = meter_id_bytes("MTR-REVOKE-1")
COMPROMISED = NOW - 3_000
READING_TIME = NOW - 1_000  # after the compromise, before the revocation is sent


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeRegistry:
    """Key histories, the latest block and the blocks holding MeterKeyRevoked events."""

    def __init__(self) -> None:
        self.block = BlockRef(number=10, timestamp=NOW)
        self.epoch = KeyEpochView(0, KeyAlgorithm.P256, b"\x04" + b"\x01" * 64, NOW - 10_000, 0)
        self.revocation_blocks: dict[int, bytes] = {}
        self.log_queries: list[tuple[int, int]] = []

    def latest_block(self) -> BlockRef:
        return self.block

    def key_history(self, meter_id: bytes) -> tuple[KeyEpochView, ...] | None:
        return (self.epoch,) if meter_id == METER_ID else None

    def revoked_meters(self, from_block: int, to_block: int) -> set[bytes]:
        self.log_queries.append((from_block, to_block))
        return {m for b, m in self.revocation_blocks.items() if from_block <= b <= to_block}

    def revoke_since(self, compromised_since: int) -> None:
        """Mines a revocation from `compromised_since` in a new block (time does not advance)."""
        self.block = BlockRef(self.block.number + 1, self.block.timestamp)
        self.epoch = replace(self.epoch, revoked_at=compromised_since)
        self.revocation_blocks[self.block.number] = METER_ID


def cached_verdict(cache: KeyCache) -> KeyEpochView | Rejection:
    history: KeyHistory = cache.history(METER_ID, READING_TIME, set())
    assert history.epochs is not None
    return key_for_time(history.epochs, READING_TIME)


def test_forget_makes_a_past_dated_revocation_count_at_once() -> None:
    registry = FakeRegistry()
    cache = KeyCache(registry, monotonic=Clock())
    assert isinstance(cached_verdict(cache), KeyEpochView)
    registry.revoke_since(COMPROMISED)

    cache.forget(METER_ID)

    assert cached_verdict(cache) is Rejection.KEY_REVOKED


def test_without_forget_or_poll_the_covering_history_is_kept() -> None:
    # The reason for both mechanisms: a history covering the reading's time is never re-read.
    registry = FakeRegistry()
    cache = KeyCache(registry, monotonic=Clock())
    cached_verdict(cache)
    registry.revoke_since(COMPROMISED)

    assert isinstance(cached_verdict(cache), KeyEpochView)


def test_another_process_revocation_counts_after_the_poll_interval() -> None:
    registry = FakeRegistry()
    clock = Clock()
    cache = KeyCache(registry, revocations=registry, revocation_poll_s=5.0, monotonic=clock)
    cached_verdict(cache)
    registry.revoke_since(COMPROMISED)

    clock.now += 4.9
    before_interval = cached_verdict(cache)
    clock.now += 0.1
    after_interval = cached_verdict(cache)

    assert isinstance(before_interval, KeyEpochView)
    assert after_interval is Rejection.KEY_REVOKED


def test_the_poll_asks_only_for_blocks_it_has_not_seen() -> None:
    registry = FakeRegistry()
    clock = Clock()
    cache = KeyCache(registry, revocations=registry, revocation_poll_s=5.0, monotonic=clock)
    cached_verdict(cache)
    registry.revoke_since(COMPROMISED)

    for _ in range(3):
        clock.now += 5.0
        cached_verdict(cache)

    assert registry.log_queries == [(11, 11)]


def test_a_history_read_before_the_revocation_is_not_cached_after_forget() -> None:
    registry = FakeRegistry()
    cache = KeyCache(registry, monotonic=Clock())
    stale_block = registry.block
    registry.revoke_since(COMPROMISED)
    cache.forget(METER_ID)
    # A request that read the history before the revocation was mined stores it only now.
    old_epoch = replace(registry.epoch, revoked_at=0)
    cache._remember(METER_ID, KeyHistory((old_epoch,), stale_block, 100.0))

    assert cached_verdict(cache) is Rejection.KEY_REVOKED
