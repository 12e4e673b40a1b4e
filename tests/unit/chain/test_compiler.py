"""The one set of compiler settings, read from brownie-config.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ledger.chain.compiler
from ledger.chain.compiler import (
    DEPLOYABLE_CONTRACTS,
    cache_key,
    compile_contracts,
    contract_sources,
    read_compiler_settings,
    standard_json_input,
)


def test_settings_target_shanghai_with_the_openzeppelin_remapping() -> None:
    settings = read_compiler_settings()
    assert settings.evm_version == "shanghai"
    assert settings.optimizer_enabled and settings.optimizer_runs == 200
    assert "@openzeppelin/=node_modules/@openzeppelin/" in settings.remappings


def test_standard_json_carries_every_contract_source_and_the_settings() -> None:
    settings = read_compiler_settings()
    sources = contract_sources()
    request = standard_json_input(settings, sources)
    assert set(request["sources"]) >= {"contracts/MeterRegistry.sol", "contracts/ReadingLedger.sol"}
    assert request["settings"]["evmVersion"] == "shanghai"
    assert request["settings"]["optimizer"] == {"enabled": True, "runs": 200}


def test_compiled_artifacts_hold_abi_and_both_bytecodes() -> None:
    artifacts = compile_contracts()
    assert set(artifacts) == set(DEPLOYABLE_CONTRACTS)
    for artifact in artifacts.values():
        assert artifact.bytecode and artifact.deployed_bytecode
        assert artifact.bytecode != artifact.deployed_bytecode
        assert any(entry["type"] == "error" for entry in artifact.abi)


def test_runtime_code_uses_no_cancun_opcodes() -> None:
    # Ganache 7.9.2 stops at shanghai: TLOAD (0x5c), TSTORE (0x5d) and MCOPY (0x5e) would not run
    # there. Walk the instructions (skipping PUSH data) up to the CBOR metadata at the end.
    for artifact in compile_contracts().values():
        code = bytes.fromhex(artifact.deployed_bytecode)
        code = code[: -(int.from_bytes(code[-2:], "big") + 2)]
        i = 0
        while i < len(code):
            op = code[i]
            assert op not in (0x5C, 0x5D, 0x5E), f"{artifact.name}: cancun opcode {op:#x} at {i}"
            i += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)


def test_test_only_contracts_are_left_out_of_the_ledgers_build() -> None:
    # contracts/test/ holds harnesses (and is where the invariant tests compile their mutants):
    # the gateway's build, and so what it can deploy, never includes them.
    built = contract_sources()
    with_tests = contract_sources(include_tests=True)
    assert "contracts/test/ReadingLeafHarness.sol" in with_tests
    assert not any(path.startswith("contracts/test/") for path in built)
    assert set(with_tests) - set(built) == {
        path for path in with_tests if path.startswith("contracts/test/")
    }
    assert "contracts/libraries/ReadingLeaf.sol" in built


def test_the_cache_key_changes_when_a_contract_becomes_deployable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The cache keeps only the deployable contracts: a cache of the same sources written before
    # BillRegistry was deployable lacks it, and must be rebuilt rather than read.
    request = standard_json_input(read_compiler_settings(), contract_sources())
    now = cache_key(request)
    monkeypatch.setattr(ledger.chain.compiler, "DEPLOYABLE_CONTRACTS", DEPLOYABLE_CONTRACTS[:-1])

    assert cache_key(request) != now


def test_a_cache_file_cut_short_by_a_concurrent_writer_is_rebuilt_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    compile_contracts()  # the real cache, written whole
    good = ledger.chain.compiler.ARTIFACTS_FILE.read_text()
    cut = tmp_path / "ledger-artifacts.json"
    cut.write_text(good[: len(good) // 2])
    monkeypatch.setattr(ledger.chain.compiler, "ARTIFACTS_FILE", cut)
    monkeypatch.setattr(ledger.chain.compiler, "BUILD_DIR", tmp_path)
    artifacts = compile_contracts()
    assert set(artifacts) == set(DEPLOYABLE_CONTRACTS)
    assert json.loads(cut.read_text())["inputHash"] == json.loads(good)["inputHash"]
    assert list(tmp_path.glob("*.tmp")) == []
