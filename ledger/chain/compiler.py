"""Compiles the Solidity contracts with the one set of settings the whole project uses.

The settings (solc version, optimizer, EVM version, remappings) are read from the `compiler` block
of `brownie-config.yaml`, so `brownie compile`, the contract tests, slither and the gateway's
deployment all build the same bytecode. The compiler is solc-js from npm behind
`tools/solc-wrapper.js`, found by py-solc-x through `SOLCX_BINARY_PATH`: nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml

from ledger.errors import ToolchainError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = PROJECT_ROOT / "contracts"
# Test-only contracts (harnesses; the invariant tests' mutants are compiled under this path too):
# never part of the ledger's build, so the gateway cannot deploy them and its cached artifacts do
# not change when a test contract does. Tests compile them on their own.
TEST_CONTRACTS_DIR = CONTRACTS_DIR / "test"
SOLCX_DIR = PROJECT_ROOT / "tools" / "solcx"
BUILD_DIR = PROJECT_ROOT / "build"
ARTIFACTS_FILE = BUILD_DIR / "ledger-artifacts.json"
# The contracts the ledger deploys; interfaces and OpenZeppelin bases are compiled but not kept.
# In deployment order: EnergyMarket's constructor takes the addresses of the three before it,
# BillRegistry's the ReadingLedger's; ComplaintRegistry needs none. A contract added later goes
# last, so the contracts before it keep the addresses a deployer's nonces give them.
# Bumped when the cached artifact fields change, so an older cache is rebuilt rather than read.
_ARTIFACT_FORMAT = 3
DEPLOYABLE_CONTRACTS = (
    "MeterRegistry",
    "ReadingLedger",
    "SettlementToken",
    "EnergyMarket",
    "BillRegistry",
    "ComplaintRegistry",
)


@dataclass(frozen=True)
class CompilerSettings:
    """The compiler block of brownie-config.yaml, normalised."""

    solc_version: str
    optimizer_enabled: bool
    optimizer_runs: int
    evm_version: str
    remappings: tuple[str, ...]


@dataclass(frozen=True)
class ContractArtifact:
    """What deployment and tests need of one compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    # (byte offset, length) of each immutable in the runtime code: the compiler leaves zeros there
    # and the constructor fills them in, so on-chain code differs from `deployed_bytecode` there.
    immutable_ranges: tuple[tuple[int, int], ...] = ()
    # NatSpec `@notice` per ABI signature ("batchRoot(uint256)", "ReadingBatchAnchored(...)",
    # and "" for the contract itself), as the compiler's userdoc gives it: docs/contracts.md is
    # generated from the ABI and these.
    notices: tuple[tuple[str, str], ...] = ()

    def runtime_code_matches(self, code: bytes) -> bool:
        """Whether on-chain runtime `code` is this artifact's, its immutables' values aside."""
        expected = bytes.fromhex(self.deployed_bytecode)
        if len(code) != len(expected):
            return False
        masked = bytearray(code)
        for start, length in self.immutable_ranges:
            masked[start : start + length] = expected[start : start + length]
        return bytes(masked) == expected


def read_compiler_settings(
    config_path: Path = PROJECT_ROOT / "brownie-config.yaml",
) -> CompilerSettings:
    """Reads the compiler settings from brownie-config.yaml."""
    config = yaml.safe_load(config_path.read_text())
    compiler = config["compiler"]
    solc = compiler["solc"]
    return CompilerSettings(
        solc_version=str(solc["version"]),
        optimizer_enabled=bool(solc["optimizer"]["enabled"]),
        optimizer_runs=int(solc["optimizer"]["runs"]),
        evm_version=str(compiler["evm_version"]),
        remappings=tuple(solc.get("remappings", ())),
    )


def contract_sources(*, include_tests: bool = False) -> dict[str, str]:
    """Every Solidity source under contracts/, keyed by its path relative to the project root.

    contracts/test/ is left out unless `include_tests` is set (the contract tests set it).
    """
    return {
        path.relative_to(PROJECT_ROOT).as_posix(): path.read_text()
        for path in sorted(CONTRACTS_DIR.rglob("*.sol"))
        if include_tests or not path.is_relative_to(TEST_CONTRACTS_DIR)
    }


def standard_json_input(settings: CompilerSettings, sources: dict[str, str]) -> dict[str, Any]:
    """The solc standard-JSON input, laid out as brownie lays out its own."""
    return {
        "language": "Solidity",
        "sources": {path: {"content": text} for path, text in sources.items()},
        "settings": {
            "outputSelection": {
                "*": {
                    "*": ["abi", "devdoc", "evm.bytecode", "evm.deployedBytecode", "userdoc"],
                    "": ["ast"],
                }
            },
            "evmVersion": settings.evm_version,
            "remappings": list(settings.remappings),
            "optimizer": {
                "enabled": settings.optimizer_enabled,
                "runs": settings.optimizer_runs if settings.optimizer_enabled else 0,
            },
        },
    }


def use_bundled_solc() -> None:
    """Points py-solc-x at the npm solc wrapper (never a download)."""
    os.environ.setdefault("SOLCX_BINARY_PATH", str(SOLCX_DIR))


def cache_key(input_json: dict[str, Any]) -> str:
    """The key of the artifact cache: the compiler input, the artifact format and the names of
    the deployable contracts (the cache keeps only those, so a contract added to the list is not
    looked for in a cache written for the same sources before)."""
    keyed = {
        "input": input_json,
        "artifactFormat": _ARTIFACT_FORMAT,
        "deployable": list(DEPLOYABLE_CONTRACTS),
    }
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()


def compile_contracts(*, use_cache: bool = True) -> dict[str, ContractArtifact]:
    """Compiles the contracts (or loads the cached result of the same inputs).

    The cache key is a hash of the settings and every source, so an edited contract is always
    recompiled and an unchanged tree is not.
    """
    settings = read_compiler_settings()
    sources = contract_sources()
    input_json = standard_json_input(settings, sources)
    input_hash = cache_key(input_json)
    if use_cache and ARTIFACTS_FILE.exists():
        try:
            cached = json.loads(ARTIFACTS_FILE.read_text())
        except json.JSONDecodeError:
            cached = {}  # not a cache this code wrote: compile and replace it
        if cached.get("inputHash") == input_hash:
            return _artifacts_from_json(cached["contracts"])

    use_bundled_solc()
    import solcx  # imported late: it reads SOLCX_BINARY_PATH when first used

    try:
        solc_binary = solcx.install.get_executable(settings.solc_version)
        output = solcx.compile_standard(
            input_json,
            solc_binary=solc_binary,
            base_path=str(PROJECT_ROOT),
            allow_paths=str(PROJECT_ROOT),
        )
    except (solcx.exceptions.SolcNotInstalled, solcx.exceptions.SolcError) as error:
        raise ToolchainError(f"solc {settings.solc_version} failed: {error}") from error

    compiled: dict[str, dict[str, Any]] = {}
    for by_name in output["contracts"].values():
        for name, contract in by_name.items():
            if name in DEPLOYABLE_CONTRACTS:
                compiled[name] = {
                    "abi": contract["abi"],
                    "bytecode": contract["evm"]["bytecode"]["object"],
                    "deployedBytecode": contract["evm"]["deployedBytecode"]["object"],
                    "notices": _notices(contract.get("userdoc", {})),
                    "immutableRanges": sorted(
                        [ref["start"], ref["length"]]
                        for refs in contract["evm"]["deployedBytecode"]
                        .get("immutableReferences", {})
                        .values()
                        for ref in refs
                    ),
                }
    missing = set(DEPLOYABLE_CONTRACTS) - compiled.keys()
    if missing:
        raise ToolchainError(f"compiler output lacks contracts: {sorted(missing)}")
    BUILD_DIR.mkdir(exist_ok=True)
    # Written aside and renamed: processes starting at the same time (gateway workers, tests)
    # read the cache while one writes it, and must see the old file or the new one, never half.
    partial = ARTIFACTS_FILE.with_name(f"{ARTIFACTS_FILE.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps({"inputHash": input_hash, "contracts": compiled}))
    os.replace(partial, ARTIFACTS_FILE)
    return _artifacts_from_json(compiled)


def _artifacts_from_json(contracts: dict[str, Any]) -> dict[str, ContractArtifact]:
    return {
        name: ContractArtifact(
            name=name,
            abi=cast(list[dict[str, Any]], entry["abi"]),
            bytecode=entry["bytecode"],
            deployed_bytecode=entry["deployedBytecode"],
            immutable_ranges=tuple(
                (int(start), int(length)) for start, length in entry.get("immutableRanges", ())
            ),
            notices=tuple((str(k), str(v)) for k, v in entry.get("notices", ())),
        )
        for name, entry in contracts.items()
    }


def _notices(userdoc: dict[str, Any]) -> list[tuple[str, str]]:
    """(signature, notice) pairs from a solc userdoc (functions, events, errors, the contract)."""
    found: list[tuple[str, str]] = []
    if isinstance(userdoc.get("notice"), str):
        found.append(("", userdoc["notice"]))
    for section in ("methods", "events", "errors"):
        for signature, doc in userdoc.get(section, {}).items():
            # errors map to a list (one per declaration site); the first one is enough.
            entries = doc if isinstance(doc, list) else [doc]
            notice = next((e["notice"] for e in entries if isinstance(e.get("notice"), str)), None)
            if notice is not None:
                found.append((signature, notice))
    return sorted(found)
