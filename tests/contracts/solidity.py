"""Compiles Solidity the contract tests need beside the ledger's build: the test-only contracts of
contracts/test/ (harnesses) and sources made in memory (the invariant tests' mutants, an old
SettlementToken), with the project's one set of compiler settings (brownie-config.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledger.chain.compiler import (
    PROJECT_ROOT,
    contract_sources,
    read_compiler_settings,
    standard_json_input,
    use_bundled_solc,
)

Compiled = tuple[list[dict[str, Any]], str]
"""(abi, creation bytecode) of one contract."""


def compile_sources(sources: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, Compiled]:
    """Compiles `sources` with every project source beside them (so any import resolves).

    Args:
        sources: Extra sources by path relative to the project root; a path under contracts/
            replaces the project's file of that path.
        wanted: Source path -> name of the contract wanted from it.

    Returns:
        Source path -> (abi, bytecode) of the contract wanted from it.
    """
    settings = read_compiler_settings()
    input_json = standard_json_input(settings, {**contract_sources(include_tests=True), **sources})
    # Code is generated for the wanted contracts only: compiling ten mutants stays one quick run.
    input_json["settings"]["outputSelection"] = {
        path: {name: ["abi", "evm.bytecode.object"]} for path, name in wanted.items()
    }
    use_bundled_solc()
    import solcx  # imported late: it reads SOLCX_BINARY_PATH when first used

    output = solcx.compile_standard(
        input_json,
        solc_binary=solcx.install.get_executable(settings.solc_version),
        base_path=str(PROJECT_ROOT),
        allow_paths=str(PROJECT_ROOT),
    )
    return {
        path: (
            output["contracts"][path][name]["abi"],
            output["contracts"][path][name]["evm"]["bytecode"]["object"],
        )
        for path, name in wanted.items()
    }


def compile_test_contract(path: str, name: str) -> Compiled:
    """(abi, bytecode) of a test-only contract of contracts/test/, e.g. a library harness."""
    return compile_sources({}, {path: name})[path]
