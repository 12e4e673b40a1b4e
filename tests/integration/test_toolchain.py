"""The offline toolchain: solc-js behind the wrapper, one compile path for brownie and the ledger,
and clear messages when `ledger serve` cannot get its ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.chain import client
from ledger.chain.client import LocalChain, answers_rpc, free_port, listens_on
from ledger.chain.compiler import PROJECT_ROOT, SOLCX_DIR, compile_contracts, read_compiler_settings
from ledger.errors import ToolchainError
from tests.fixtures.gateway import LEDGER_BIN, ledger_env

SOLC = SOLCX_DIR / f"solc-v{read_compiler_settings().solc_version}"


def test_wrapper_answers_version_like_native_solc() -> None:
    out = subprocess.run([str(SOLC), "--version"], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == "solc, the solidity compiler commandline interface"
    assert lines[1].startswith(f"Version: {read_compiler_settings().solc_version}+commit.")


def test_wrapper_prints_only_json_for_standard_json() -> None:
    source = "pragma solidity ^0.8.0; contract Tiny { function f() external pure {} }"
    request = {
        "language": "Solidity",
        "sources": {"Tiny.sol": {"content": source}},
        "settings": {"outputSelection": {"*": {"*": ["evm.bytecode.object"]}}},
    }
    out = subprocess.run(
        [str(SOLC), "--standard-json"], input=json.dumps(request),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    parsed = json.loads(out.stdout)  # fails on any banner line before the JSON
    assert parsed["contracts"]["Tiny.sol"]["Tiny"]["evm"]["bytecode"]["object"]


def test_wrapper_reports_compile_errors_in_json() -> None:
    request = {"language": "Solidity", "sources": {"Bad.sol": {"content": "contract {"}}}
    out = subprocess.run(
        [str(SOLC), "--standard-json"], input=json.dumps(request),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    errors = json.loads(out.stdout)["errors"]
    assert errors[0]["severity"] == "error"


# With test_brownie_scripts.py on one xdist worker: both write brownie's build/ in the project.
@pytest.mark.xdist_group("brownie-build")
def test_brownie_builds_the_same_bytecode_as_the_ledger() -> None:
    env = {**os.environ, "SOLCX_BINARY_PATH": str(SOLCX_DIR)}
    subprocess.run(
        [str(Path(sys.executable).parent / "brownie"), "compile"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    ours = compile_contracts()
    for name, artifact in ours.items():
        built = json.loads((PROJECT_ROOT / "build" / "contracts" / f"{name}.json").read_text())
        assert built["bytecode"] == artifact.bytecode, name
        assert built["deployedBytecode"] == artifact.deployed_bytecode, name


@pytest.fixture
def occupied_port() -> Iterator[int]:
    """A port that a plain TCP listener (not a chain, not HTTP) holds."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def test_serve_refuses_a_taken_http_port_clearly(tmp_path: Path, occupied_port: int) -> None:
    env = ledger_env(tmp_path, "ganache", free_port(), LEDGER_PORT=str(occupied_port))
    result = subprocess.run(
        [str(LEDGER_BIN), "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert f"port {occupied_port}" in result.stderr and "already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_chain_port_held_by_something_else(
    tmp_path: Path, occupied_port: int
) -> None:
    env = ledger_env(tmp_path, "ganache", occupied_port, LEDGER_PORT=str(free_port()))
    result = subprocess.run(
        [str(LEDGER_BIN), "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert f"port {occupied_port} is taken by something that is not a chain" in result.stderr
    assert "Traceback" not in result.stderr


def test_listens_on_names_the_process_that_holds_a_port(anvil: LocalChain) -> None:
    assert anvil.process is not None
    assert listens_on(anvil.process.pid, anvil.port) is True
    assert listens_on(os.getpid(), anvil.port) is False


@pytest.mark.parametrize("kind", ["ganache", "anvil"])
def test_a_chain_whose_port_another_chain_took_meanwhile_is_refused_not_shared(
    monkeypatch: pytest.MonkeyPatch, anvil: LocalChain, kind: str
) -> None:
    # The race seen in CI: the port was free when checked, and another process's chain bound it
    # before ours did; that chain answered, and the ledger deployed into it. The check before
    # the start is made to pass here, as it did there.
    checks = iter([True])
    real_port_is_free = client.port_is_free

    def port_is_free_once(host: str, port: int) -> bool:
        return next(checks, None) or real_port_is_free(host, port)

    monkeypatch.setattr(client, "port_is_free", port_is_free_once)
    late = LocalChain(kind=kind, port=anvil.port)
    with pytest.raises(ToolchainError, match=f"port {anvil.port} is already in use"):
        late.start()
    assert late.process is not None and late.process.poll() is not None  # ours is stopped
    assert answers_rpc(anvil.rpc_url)  # the other one is untouched
