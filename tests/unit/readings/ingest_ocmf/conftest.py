"""Fixtures of the OCMF ingestion tests: the registry and the Ingestor are those of
tests/unit/readings/conftest.py; the meter's key is a P-256 key registered under the id of the
records' serial `MS`, which is not the meter of the native ingestion tests."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.unit.readings.ingest_ocmf.ingest_ocmf_support import METER_ID
from tests.unit.readings.ingest_support import FakeRegistry


@pytest.fixture
def meter_key(registry: FakeRegistry) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    registry.register(METER_ID, key)
    return key
