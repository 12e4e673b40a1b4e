"""Fixtures of the ComplaintRegistry tests."""

from __future__ import annotations

import pytest
from web3.contract import Contract

from ledger.chain.deployment import Deployment


@pytest.fixture
def complaints(deployment: Deployment) -> Contract:
    return deployment.complaint_registry
