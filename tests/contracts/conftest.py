"""Fixtures of the contract tests beyond the shared ones of tests/fixtures/chain.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contracts.market_machine import World, running_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One Anvil per module for the market's state machine, with the ledger deployed."""
    with running_world(tmp_path_factory.mktemp("invariants")) as started:
        yield started
