"""Fixtures of the ingestion tests: a fake registry with one P-256 meter, and an Ingestor over
the test's store (see ingest_support.py)."""

from __future__ import annotations

import pytest

from ledger.meters.keys import (
    KeyAlgorithm,
    MeterPrivateKey,
    generate_key,
)
from ledger.readings.ingest import Ingestor
from ledger.readings.keys import KeyCache
from ledger.store.database import Store
from tests.unit.readings.ingest_support import (
    CHAIN_ID,
    METER_ID,
    NOW,
    Clock,
    FakeRegistry,
)


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
