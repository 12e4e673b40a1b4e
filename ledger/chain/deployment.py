"""Deploying the contracts once per chain, and finding them again after a restart.

Addresses are recorded per chain id in `<data_dir>/deployments/<chain_id>.json`. On start the
record is re-used only after checking, with `eth_getCode`, that each address holds exactly the
runtime bytecode this build compiles to (immutables aside: their values are constructor
arguments): a fresh chain (no code) gets a new deployment, and code that differs (another build,
or someone else's contract) is refused rather than silently used. A record from an older build
that lacks a contract keeps the contracts it has and gets the missing ones deployed beside them,
so the anchored batches of an existing ReadingLedger stay where they are.

The record also keeps the block each contract was deployed in (`blocks`), where the event
indexer starts. A record written before it had them is still read: its contracts then count as
deployed in block 0 (the indexer reads their logs from the chain's start, in bounded ranges).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3.contract import Contract

from ledger.chain.client import Chain
from ledger.chain.compiler import DEPLOYABLE_CONTRACTS, ContractArtifact, compile_contracts
from ledger.errors import DeploymentError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MarketParameters:
    """The EnergyMarket's constructor parameters (fixed for the life of a deployment).

    Attributes:
        slot_s: Length of a delivery slot, seconds.
        boundary_window_s: A slot's boundary reading must be taken less than this after the
            boundary (at most `slot_s`).
        settlement_window_s: How long after its slot a trade can be settled before it can only
            be refunded.
        min_trade_value: The least value of an offer or take, floor(quantity * price / 1000)
            minor units of the settlement token (6 decimals: 10,000 is 0.01). Rounding moves
            less than one unit per trade, so it costs at most 1 / min_trade_value of a trade.
        challenge_period_s: The ReadingLedger's challenge period (its constructor's, deployed
            with the market): seconds after its anchoring before a batch's readings may settle a
            trade, in which anyone may prove one of them forged. Must be shorter than
            `settlement_window_s` (the market's constructor refuses it otherwise).
    """

    slot_s: int = 3600
    boundary_window_s: int = 900
    settlement_window_s: int = 7 * 86_400
    min_trade_value: int = 10_000
    challenge_period_s: int = 300


@dataclass(frozen=True)
class Deployment:
    """The ledger's contracts on one chain."""

    chain_id: int
    addresses: dict[str, str]
    contracts: dict[str, Contract]
    deployed_now: bool
    # The block each contract was deployed in (absent from records written before it was kept).
    blocks: dict[str, int] = field(default_factory=dict)

    @property
    def start_block(self) -> int:
        """The first block that can hold a log of these contracts (0 when not recorded)."""
        if any(name not in self.blocks for name in self.addresses):
            return 0
        return min(self.blocks.values(), default=0)

    @property
    def meter_registry(self) -> Contract:
        return self.contracts["MeterRegistry"]

    @property
    def reading_ledger(self) -> Contract:
        return self.contracts["ReadingLedger"]

    @property
    def settlement_token(self) -> Contract:
        return self.contracts["SettlementToken"]

    @property
    def energy_market(self) -> Contract:
        return self.contracts["EnergyMarket"]

    @property
    def bill_registry(self) -> Contract:
        return self.contracts["BillRegistry"]

    @property
    def complaint_registry(self) -> Contract:
        return self.contracts["ComplaintRegistry"]


def record_path(data_dir: Path, chain_id: int) -> Path:
    """Where the addresses for `chain_id` are recorded."""
    return data_dir / "deployments" / f"{chain_id}.json"


def ensure_deployed(
    chain: Chain,
    data_dir: Path,
    *,
    force: bool = False,
    market: MarketParameters | None = None,
) -> Deployment:
    """Returns the recorded deployment if its code is on chain, deploying first when needed.

    Args:
        chain: The connected chain; its operator account deploys and receives the admin roles.
        data_dir: The data directory holding `deployments/`.
        force: Deploy anew even if a valid deployment is recorded.
        market: Parameters for a newly deployed EnergyMarket (a recorded one keeps its own).

    Raises:
        DeploymentError: recorded addresses hold code other than this build's.
    """
    artifacts = compile_contracts()
    for artifact in artifacts.values():
        chain.learn_errors(artifact.abi)
    path = record_path(data_dir, chain.chain_id)
    market = market or MarketParameters()
    if path.exists() and not force:
        recorded: dict[str, Any] = json.loads(path.read_text())
        addresses = {
            name: recorded["contracts"][name]
            for name in DEPLOYABLE_CONTRACTS
            if name in recorded["contracts"]
        }
        blocks = {
            name: int(block)
            for name, block in recorded.get("blocks", {}).items()
            if name in addresses
        }
        state = _code_state(chain, artifacts, addresses)
        if state == "match" and len(addresses) == len(DEPLOYABLE_CONTRACTS):
            return _bind(chain, artifacts, addresses, deployed_now=False, blocks=blocks)
        if state == "differs":
            raise DeploymentError(
                f"the contracts recorded in {path} hold different code than this build: "
                "run `ledger deploy --force` to deploy this build (the old contracts stay on chain)"
            )
        if state == "match":
            log.warning("%s lacks contracts of this build: deploying the missing ones", path)
            return deploy(chain, data_dir, artifacts, market, keep=addresses, keep_blocks=blocks)
        log.warning("recorded contracts in %s are not on this chain (new chain?): deploying", path)
    return deploy(chain, data_dir, artifacts, market)


def deploy(
    chain: Chain,
    data_dir: Path,
    artifacts: dict[str, ContractArtifact],
    market: MarketParameters,
    *,
    keep: dict[str, str] | None = None,
    keep_blocks: dict[str, int] | None = None,
) -> Deployment:
    """Deploys every ledger contract not in `keep` and records all addresses (and the blocks
    they were deployed in, those of `keep` as far as `keep_blocks` knows them)."""
    admin = chain.operator.address
    addresses: dict[str, str] = dict(keep or {})
    blocks: dict[str, int] = dict(keep_blocks or {})
    for name in DEPLOYABLE_CONTRACTS:
        if name in addresses:
            continue
        artifact = artifacts[name]
        factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        args = _constructor_args(name, admin, addresses, market)
        receipt = chain.transact(factory.constructor(*args))
        address = receipt["contractAddress"]
        if address is None:
            raise DeploymentError(f"deploying {name} created no contract")
        addresses[name] = address
        blocks[name] = int(receipt["blockNumber"])
    path = record_path(data_dir, chain.chain_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"chainId": chain.chain_id, "admin": admin, "contracts": addresses, "blocks": blocks}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)  # atomic: a crash never leaves half a record
    log.info("deployed %s on chain %s", addresses, chain.chain_id)
    return _bind(chain, artifacts, addresses, deployed_now=True, blocks=blocks)


def _constructor_args(
    name: str, admin: str, addresses: dict[str, str], market: MarketParameters
) -> tuple[Any, ...]:
    if name == "EnergyMarket":
        return (
            addresses["MeterRegistry"],
            addresses["ReadingLedger"],
            addresses["SettlementToken"],
            market.slot_s,
            market.boundary_window_s,
            market.settlement_window_s,
            market.min_trade_value,
        )
    if name == "ReadingLedger":
        return (admin, addresses["MeterRegistry"], market.challenge_period_s)
    if name == "BillRegistry":
        return (admin, addresses["ReadingLedger"])
    return (admin,)


def _code_state(
    chain: Chain, artifacts: dict[str, ContractArtifact], addresses: dict[str, str]
) -> str:
    states = set()
    for name, address in addresses.items():
        code = bytes(chain.w3.eth.get_code(chain.w3.to_checksum_address(address)))
        if not code:
            states.add("missing")
        elif artifacts[name].runtime_code_matches(code):
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
    blocks: dict[str, int],
) -> Deployment:
    contracts = {
        name: chain.w3.eth.contract(
            address=chain.w3.to_checksum_address(addr), abi=artifacts[name].abi
        )
        for name, addr in addresses.items()
    }
    return Deployment(
        chain_id=chain.chain_id,
        addresses=addresses,
        contracts=contracts,
        deployed_now=deployed_now,
        blocks=blocks,
    )
