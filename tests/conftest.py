"""Shared fixtures live in tests/fixtures/ and are loaded here for every test directory.

`make test` runs the suite on several pytest-xdist workers (`-n`; `--dist loadgroup` in
pyproject.toml; README "Tests"). The hooks here keep that safe and short:
- the contracts are compiled once, before any worker starts: otherwise on a fresh checkout every
  worker (and every gateway they start) compiles at once and writes build/ledger-artifacts.json
  while others read it;
- the tests of a module that share a module-scoped fixture (a chain, a gateway, a market day) run
  on one worker, in their order, so the fixture is set up once; other tests are handed out one by
  one;
- each worker picks the ports of the chains and gateways it starts from a range of its own;
- modules marked `slow` are collected, and so handed out, first: the longest work starts at once
  instead of being the last thing left running on one worker while the others idle. Those marked
  `slow(minutes=N)` come first of all, longest first: xdist gives every worker one unit of work,
  then one more to each worker with at most two tests pending, and again after each test it
  finishes. Two single five-minute tests next to each other in the queue (the durability test's
  two databases) could otherwise both land on one worker, one behind the other; at the head of
  the queue they go to different workers.
"""

from __future__ import annotations

import os

import pytest

from ledger.chain.client import PORT_RANGE_ENV

pytest_plugins = ["tests.fixtures.chain", "tests.fixtures.gateway", "tests.fixtures.postgres"]


PORT_RANGE = (20_000, 32_000)
"""Below the system's ephemeral ports (32768-60999 on Linux), which it gives to outgoing
connections as well as to bind(0)."""


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        # Each xdist worker picks ports from a range of its own (ledger.chain.client.free_port):
        # with the system's picks, two workers' chains or gateways got the same port now and then.
        count = max(int(workerinput.get("workercount", 1)), 1)
        number = int(str(workerinput["workerid"]).removeprefix("gw")) % count
        size = (PORT_RANGE[1] - PORT_RANGE[0]) // count
        low = PORT_RANGE[0] + number * size
        os.environ[PORT_RANGE_ENV] = f"{low}-{low + size - 1}"
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
