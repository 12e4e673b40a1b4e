"""Shared fixtures live in tests/fixtures/ and are loaded here for every test directory.

`make test` runs the suite on several pytest-xdist workers (`-n`; `--dist loadgroup` in
pyproject.toml; README "Tests"). The hooks here keep that safe and short:
- the contracts are compiled once, before any worker starts: otherwise on a fresh checkout every
  worker (and every gateway they start) compiles at once and writes build/ledger-artifacts.json
  while others read it;
- the tests of a module that share a module-scoped fixture (a chain, a gateway, a market day) run
  on one worker, in their order, so the fixture is set up once; other tests are handed out one by
  one;
- modules marked `slow` are collected, and so handed out, first: the longest work starts at once
  instead of being the last thing left running on one worker while the others idle. Those marked
  `slow(minutes=N)` come first of all, longest first: xdist gives every worker one unit of work,
  then one more to each worker with at most two tests pending, and again after each test it
  finishes. Two single five-minute tests next to each other in the queue (the durability test's
  two databases) could otherwise both land on one worker, one behind the other; at the head of
  the queue they go to different workers.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.fixtures.chain", "tests.fixtures.gateway", "tests.fixtures.postgres"]


def pytest_configure(config: pytest.Config) -> None:
    distributing = bool(config.getoption("numprocesses", None))
    if distributing and not hasattr(config, "workerinput"):  # the controller, before workers
        from ledger.chain.compiler import compile_contracts
        from ledger.errors import ToolchainError

        try:
            compile_contracts()
        except ToolchainError:
            pass  # every test that needs the contracts reports the compiler's error itself


def shares_module_fixture(item: pytest.Item) -> bool:
    """Whether the test uses a fixture set up once per module (or package or class)."""
    fixture_info = getattr(item, "_fixtureinfo", None)
    if fixture_info is None:
        return False
    # The last definition of a name is the one the test gets (a closer one overrides the rest).
    return any(
        definitions[-1].scope not in ("function", "session")
        for definitions in fixture_info.name2fixturedefs.values()
        if definitions
    )


def expected_minutes(item: pytest.Item) -> float:
    """The `minutes` of the test's `slow` marker (0 without one)."""
    marker = item.get_closest_marker("slow")
    return float(marker.kwargs.get("minutes", 0)) if marker is not None else 0.0


# tryfirst: xdist's own hook turns the groups into node ids and must see them.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    slow_modules = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    # A stable sort: each module keeps the order of its tests (a module's marker gives all of
    # them the same minutes).
    items.sort(
        key=lambda item: (item.nodeid.split("::")[0] not in slow_modules, -expected_minutes(item))
    )
    for item in items:
        if item.get_closest_marker("xdist_group") is None and shares_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
