"""Fixtures of the MeterRegistry tests."""

from __future__ import annotations

import pytest
from web3.contract import Contract

from ledger.chain.deployment import Deployment


@pytest.fixture
def registry(deployment: Deployment) -> Contract:
    return deployment.meter_registry
