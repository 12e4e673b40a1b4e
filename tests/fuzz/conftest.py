"""Fixtures for the API fuzzer: a managed Anvil chain, a LedgerNode on it, and the gateway's schema.

The fuzzer runs in its own virtualenv, `.venv-fuzz`: schemathesis 4 needs hypothesis >= 6.130,
while eth-brownie in the main `.venv` pins hypothesis 6.27.3, so the two cannot share one
environment. `.venv-fuzz` holds the runtime dependencies, schemathesis and pytest, and the project
installed editable; nothing here may import brownie or the fixtures under `tests/fixtures/`.

Everything runs in-process: schemathesis loads `/openapi.json` from the ASGI app returned by
`create_app(node)` and sends every generated request straight to it, without a network server.
Only the chain is a real process (Anvil from node_modules), on a free port and a temporary data
directory, stopped when the session ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import strategies as st
from schemathesis import HookContext
from schemathesis.specs.openapi.schemas import OpenApiSchema

from api.main import create_app
from ledger.chain import free_port
from ledger.meters import KeyAlgorithm, generate_key
from ledger.node import LedgerNode
from ledger.settings import Settings

# A meter registered before fuzzing, so the meter routes also see ids that exist on chain.
KNOWN_METER_ID = "FUZZ-METER-0001"

# Bounded and reproducible: the same inputs on every run, so CI is stable and fast. `seed` fixes
# the per-operation seeds schemathesis derives, `deterministic` is Hypothesis' `derandomize`,
# and `database = "none"` keeps Hypothesis from writing `.hypothesis/` into the working tree.
FUZZ_CONFIG: dict[str, Any] = {
    "seed": 20240601,
    "generation": {"max-examples": 50, "deterministic": True, "database": "none"},
}


@pytest.fixture(autouse=True)
def _lazy_schema_node_id(request: pytest.FixtureRequest) -> None:
    """Compatibility shim: schemathesis 4.32.5 lazy schemas vs pytest 9.2.

    `schemathesis.pytest.from_fixture` reads and rewrites `item._nodeid` to name each operation's
    subtest, but pytest 9.2 replaced that attribute with a structured id, so every lazy-schema test
    dies with AttributeError before it sends a request. Giving the item the attribute back keeps
    the test working (subtests are still labelled by operation). A no-op on pytest < 9.2, which
    still has the attribute; remove it once schemathesis supports pytest 9.2.
    """
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@pytest.fixture(scope="session")
def ledger_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerNode]:
    """A started LedgerNode on its own Anvil chain, with one registered P-256 meter."""
    data_dir: Path = tmp_path_factory.mktemp("ledger")
    node = LedgerNode.start(Settings(chain="anvil", chain_port=free_port(), data_dir=data_dir))
    try:
        key = generate_key(KeyAlgorithm.P256)
        node.meters.register(KNOWN_METER_ID, node.chain.operator.address, key.public_key())
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def gateway(ledger_node: LedgerNode) -> FastAPI:
    """The gateway app exactly as production builds it."""
    return create_app(ledger_node)


@pytest.fixture(scope="session")
def api_schema(gateway: FastAPI) -> OpenApiSchema:
    """The gateway's live OpenAPI schema, loaded over ASGI: every route, including future ones."""
    config = schemathesis.Config.from_dict(FUZZ_CONFIG)
    schema = schemathesis.openapi.from_asgi("/openapi.json", gateway, config=config)

    @schema.hook("before_generate_path_parameters")
    def _also_known_meter(_: HookContext, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy:
        """Half of the drawn path parameters name the registered meter when they have `meter_id`.

        Negative-mode strategies draw wrapped values rather than plain dicts; those are left
        alone, so only well-formed requests are redirected to the existing meter.
        """
        return st.one_of(strategy, strategy.map(_with_known_meter))

    return schema


def _with_known_meter(value: Any) -> Any:
    if isinstance(value, dict) and "meter_id" in value:
        return {**value, "meter_id": KNOWN_METER_ID}
    return value
