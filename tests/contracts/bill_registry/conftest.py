"""Fixtures of the BillRegistry tests."""

from __future__ import annotations

import pytest
from web3.contract import Contract

from ledger.chain.deployment import Deployment


@pytest.fixture
def bills(deployment: Deployment) -> Contract:
    return deployment.bill_registry
