"""Deploying the contracts once per chain, and finding them again after a restart.

Addresses are recorded per chain id in `<data_dir>/deployments/<chain_id>.json`. On start the
record is re-used only after checking, with `eth_getCode`, that each address holds exactly the
runtime bytecode this build compiles to: a fresh chain (no code) gets a new deployment, and code
that differs (another build, or someone else's contract) is refused rather than silently used.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from web3.contract import Contract

from ledger.chain import Chain
from ledger.compiler import DEPLOYABLE_CONTRACTS, ContractArtifact, compile_contracts
from ledger.errors import DeploymentError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deployment:
    """The ledger's contracts on one chain."""

    chain_id: int
    addresses: dict[str, str]
    contracts: dict[str, Contract]
    deployed_now: bool

    @property
    def meter_registry(self) -> Contract:
        return self.contracts["MeterRegistry"]

    @property
    def reading_ledger(self) -> Contract:
        return self.contracts["ReadingLedger"]


def record_path(data_dir: Path, chain_id: int) -> Path:
    """Where the addresses for `chain_id` are recorded."""
    return data_dir / "deployments" / f"{chain_id}.json"


def ensure_deployed(chain: Chain, data_dir: Path, *, force: bool = False) -> Deployment:
    """Returns the recorded deployment if its code is on chain, deploying first when needed.

    Args:
        chain: The connected chain; its operator account deploys and receives the admin roles.
        data_dir: The data directory holding `deployments/`.
        force: Deploy anew even if a valid deployment is recorded.

    Raises:
        DeploymentError: recorded addresses hold code other than this build's.
    """
    artifacts = compile_contracts()
    for artifact in artifacts.values():
        chain.learn_errors(artifact.abi)
    path = record_path(data_dir, chain.chain_id)
    if path.exists() and not force:
        recorded: dict[str, Any] = json.loads(path.read_text())
        addresses = {name: recorded["contracts"][name] for name in DEPLOYABLE_CONTRACTS}
        state = _code_state(chain, artifacts, addresses)
        if state == "match":
            return _bind(chain, artifacts, addresses, deployed_now=False)
        if state == "differs":
            raise DeploymentError(
                f"the contracts recorded in {path} hold different code than this build: "
                "run `ledger deploy --force` to deploy this build (the old contracts stay on chain)"
            )
        log.warning("recorded contracts in %s are not on this chain (new chain?): deploying", path)
    return deploy(chain, data_dir, artifacts)


def deploy(chain: Chain, data_dir: Path, artifacts: dict[str, ContractArtifact]) -> Deployment:
    """Deploys every ledger contract and records the addresses."""
    admin = chain.operator.address
    addresses: dict[str, str] = {}
    for name in DEPLOYABLE_CONTRACTS:
        artifact = artifacts[name]
        factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = chain.transact(factory.constructor(admin))
        address = receipt["contractAddress"]
        if address is None:
            raise DeploymentError(f"deploying {name} created no contract")
        addresses[name] = address
    path = record_path(data_dir, chain.chain_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"chainId": chain.chain_id, "admin": admin, "contracts": addresses}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)  # atomic: a crash never leaves half a record
    log.info("deployed %s on chain %s", addresses, chain.chain_id)
    return _bind(chain, artifacts, addresses, deployed_now=True)


def _code_state(
    chain: Chain, artifacts: dict[str, ContractArtifact], addresses: dict[str, str]
) -> str:
    states = set()
    for name, address in addresses.items():
        code = chain.w3.eth.get_code(chain.w3.to_checksum_address(address)).hex()
        code = code.removeprefix("0x")
        if not code:
            states.add("missing")
        elif code == artifacts[name].deployed_bytecode:
            states.add("match")
        else:
            states.add("differs")
    if "differs" in states:
        return "differs"
    return "match" if states == {"match"} else "missing"


def _bind(
    chain: Chain,
    artifacts: dict[str, ContractArtifact],
    addresses: dict[str, str],
    *,
    deployed_now: bool,
) -> Deployment:
    contracts = {
        name: chain.w3.eth.contract(
            address=chain.w3.to_checksum_address(addr), abi=artifacts[name].abi
        )
        for name, addr in addresses.items()
    }
    return Deployment(
        chain_id=chain.chain_id, addresses=addresses, contracts=contracts, deployed_now=deployed_now
    )
