"""Fixtures for the API fuzzer: a managed Anvil chain, a LedgerNode on it, and the gateway's schema.

The fuzzer runs in its own virtualenv, `.venv-fuzz`: schemathesis 4 needs hypothesis >= 6.130,
while eth-brownie in the main `.venv` pins hypothesis 6.27.3, so the two cannot share one
environment. `.venv-fuzz` holds the runtime dependencies, schemathesis and pytest, and the project
installed editable; nothing here may import brownie or the fixtures under `tests/fixtures/`.

Everything runs in-process: schemathesis loads `/openapi.json` from the ASGI app returned by
`create_app(node)` and sends every generated request straight to it, without a network server.
Only the chain is a real process (Anvil from node_modules), on a free port with a temporary data
directory, and it is stopped when the session ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import strategies as st
from schemathesis import HookContext
from schemathesis.specs.openapi.schemas import OpenApiSchema

from api.auth import issue_session, session_secret, session_token
from api.main import create_app
from ledger.chain.client import free_port
from ledger.meters.keys import KeyAlgorithm, generate_key
from ledger.node import LedgerNode
from ledger.settings import Settings

# Bounded and reproducible, so CI is stable and fast: `max-examples` per operation and generation
# mode, a fixed `seed` for the per-operation seeds schemathesis derives, `deterministic` for
# Hypothesis' `derandomize`, and no example database (nothing is written to `.hypothesis/`).
FUZZ_CONFIG: dict[str, Any] = {
    "seed": 20240601,
    "generation": {"max-examples": 50, "deterministic": True, "database": "none"},
}

UINT64_MAX = 2**64 - 1
# The registrar routes are fuzzed with the token, so requests get past the 401 to the handlers.
REGISTRAR_TOKEN = "fuzz-registrar-token"


@dataclass(frozen=True)
class KnownMeter:
    """A meter registered before fuzzing, so meter routes also see an id that exists on chain."""

    meter_id: str
    valid_from: int


@pytest.fixture(scope="session")
def ledger_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerNode]:
    """A started LedgerNode on its own Anvil chain (free port, temporary data directory)."""
    data_dir = tmp_path_factory.mktemp("ledger")
    node = LedgerNode.start(
        Settings(
            chain="anvil",
            chain_port=free_port(),
            data_dir=data_dir,
            registrar_token=REGISTRAR_TOKEN,
        )
    )
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def known_meter(ledger_node: LedgerNode) -> KnownMeter:
    """Registers one P-256 meter, owned by the operator account."""
    meter_id = "FUZZ-METER-0001"
    public_key = generate_key(KeyAlgorithm.P256).public_key()
    ledger_node.meters.register(meter_id, ledger_node.chain.operator.address, public_key)
    (first_key,) = ledger_node.meters.show(meter_id).epochs
    return KnownMeter(meter_id=meter_id, valid_from=first_key.valid_from)


@pytest.fixture(scope="session")
def customer_token(ledger_node: LedgerNode, known_meter: KnownMeter) -> str:
    """A session token of the known meter's owner, as POST /v1/auth/sign-in gives one: the
    private routes then answer the fuzzer from their handlers, not with 401."""
    now = int(time.time())
    session = issue_session(
        ledger_node.chain.operator.address, "customer", now=now, ttl_s=24 * 3600
    )
    return session_token(session_secret(ledger_node.settings), session, now=now)


@pytest.fixture(scope="session")
def gateway(ledger_node: LedgerNode) -> FastAPI:
    """The gateway app exactly as production builds it."""
    return create_app(ledger_node)


@pytest.fixture(scope="session")
def api_schema(gateway: FastAPI, known_meter: KnownMeter) -> OpenApiSchema:
    """The gateway's live OpenAPI schema, loaded over ASGI: every route, including future ones.

    Two schema-level hooks steer part of the well-formed requests at real data; random strings
    and integers would almost never name the registered meter or a time at which it has a key:

    - a `meter_id` path parameter names the registered meter in about half the draws;
    - an `at` query parameter (Unix time) falls in the meter's key epoch in about half the draws.

    Negative-mode strategies draw wrapped values rather than plain dicts; the hooks leave those
    alone, so malformed requests stay malformed.
    """
    config = schemathesis.Config.from_dict(FUZZ_CONFIG)
    schema = schemathesis.openapi.from_asgi("/openapi.json", gateway, config=config)

    @schema.hook("before_generate_path_parameters")
    def _known_meter_id(_: HookContext, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy:
        def use_known(value: Any) -> Any:
            if isinstance(value, dict) and "meter_id" in value:
                return {**value, "meter_id": known_meter.meter_id}
            return value

        return st.one_of(strategy, strategy.map(use_known))

    @schema.hook("before_generate_query")
    def _time_with_a_key(_: HookContext, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy:
        def use_time(value: Any, at: int) -> Any:
            if isinstance(value, dict) and "at" in value:
                return {**value, "at": at}
            return value

        times = st.integers(min_value=known_meter.valid_from, max_value=UINT64_MAX)
        return st.one_of(strategy, st.builds(use_time, strategy, times))

    return schema
