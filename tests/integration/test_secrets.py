"""The RPC URL's credentials stay out of what the gateway shows: /healthz, 503 bodies, the
start-up line and its error line; the data directory is its user's alone."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ledger.chain.client import LocalChain, free_port
from ledger.settings import DEV_OPERATOR_KEY
from tests.fixtures.gateway import LEDGER_BIN, Gateway, ledger_env, start_gateway

PASSWORD = "s3cret-pass"
API_KEY = "K3Y0123456789"
PATH_KEY = "0123456789abcdef0123456789abcdef"
SECRETS = ("rpcuser", PASSWORD, API_KEY, PATH_KEY)


def secret_url(port: int, *, path: str = "/") -> str:
    """A URL of the local chain carrying credentials as a hosted node's URL does (Ganache
    ignores the user, password and query)."""
    return f"http://rpcuser:{PASSWORD}@127.0.0.1:{port}{path}?apikey={API_KEY}"


def shown_secrets(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


@pytest.fixture(scope="module")
def external_chain() -> Iterator[LocalChain]:
    node = LocalChain(kind="ganache", port=free_port())
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def gateway(
    external_chain: LocalChain, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A gateway reaching its chain through a URL with credentials."""
    tmp = tmp_path_factory.mktemp("secrets")
    env = ledger_env(
        tmp / "data",
        "ganache",
        external_chain.port,
        LEDGER_RPC_URL=secret_url(external_chain.port),
        LEDGER_OPERATOR_KEY=DEV_OPERATOR_KEY,
    )
    running = start_gateway(env, tmp / "gateway.log")
    yield running
    running.stop()


def test_healthz_shows_the_rpc_url_without_its_credentials(
    gateway: Gateway, external_chain: LocalChain
) -> None:
    answer = httpx.get(f"{gateway.base_url}/healthz")

    assert answer.status_code == 200
    assert answer.json()["chain"]["rpc_url"] == (
        f"http://***@127.0.0.1:{external_chain.port}/?apikey=***"
    )
    assert shown_secrets(answer.text) == []


def test_the_start_up_line_shows_the_rpc_url_without_its_credentials(
    gateway: Gateway, external_chain: LocalChain
) -> None:
    log = gateway.log()

    assert f"at http://***@127.0.0.1:{external_chain.port}/?apikey=*** (external)" in log
    assert shown_secrets(log) == []


def test_the_data_directory_and_database_files_are_private(gateway: Gateway) -> None:
    data_dir = Path(gateway.env["LEDGER_DATA_DIR"])
    private = [p for p in data_dir.iterdir() if p.name.startswith("ledger.db")]

    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert len(private) >= 4  # the database, its WAL and the write, anchor and sender locks
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in private} == {
        p.name: 0o600 for p in private
    }


def test_serve_refusing_an_unanswering_chain_prints_no_credentials(
    external_chain: LocalChain, tmp_path: Path
) -> None:
    # Ganache answers 404 for this path, and the transport's message quotes the whole URL.
    url = secret_url(external_chain.port, path=f"/v3/{PATH_KEY}")
    env = ledger_env(
        tmp_path / "data",
        "ganache",
        external_chain.port,
        LEDGER_RPC_URL=url,
        LEDGER_OPERATOR_KEY=DEV_OPERATOR_KEY,
        LEDGER_PORT=str(free_port()),
    )

    result = subprocess.run(
        [str(LEDGER_BIN), "serve"], env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 1
    assert result.stderr.startswith("error [chain_unavailable]: chain at http://***@127.0.0.1:")
    assert shown_secrets(result.stdout + result.stderr) == []


@pytest.fixture
def stoppable_chain() -> Iterator[LocalChain]:
    node = LocalChain(kind="ganache", port=free_port())
    node.start()
    yield node
    node.stop()


def test_a_chain_unavailable_answer_carries_no_credentials(
    stoppable_chain: LocalChain, tmp_path: Path
) -> None:
    env = ledger_env(
        tmp_path / "data",
        "ganache",
        stoppable_chain.port,
        LEDGER_RPC_URL=secret_url(stoppable_chain.port),
        LEDGER_OPERATOR_KEY=DEV_OPERATOR_KEY,
        LEDGER_ANCHOR_ENABLED="false",
    )
    running = start_gateway(env, tmp_path / "gateway.log")
    try:
        stoppable_chain.stop()
        answer = httpx.get(f"{running.base_url}/healthz", timeout=30)
    finally:
        running.stop()

    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "chain_unavailable"
    assert f"chain at http://***@127.0.0.1:{stoppable_chain.port}/?apikey=***" in answer.text
    assert shown_secrets(answer.text) == []
