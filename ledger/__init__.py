"""The verifiable energy ledger's Python core, usable without the HTTP layer.

The names below are imported on first use (PEP 562), not with the package: every process that
imports any part of `ledger` runs this file first, and billing's worker processes need none of
web3 or the node (importing them all took ~1.2 s of each worker's start).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.chain.client import Chain, LocalChain, connect
    from ledger.chain.compiler import compile_contracts
    from ledger.chain.deployment import Deployment, ensure_deployed
    from ledger.errors import (
        ChainUnavailable,
        ConfigError,
        ContractRevert,
        DeploymentError,
        LedgerError,
        MeterError,
        ToolchainError,
    )
    from ledger.meters.keys import KeyAlgorithm
    from ledger.meters.registry import MeterAdmin, MeterView
    from ledger.node import LedgerNode
    from ledger.settings import Settings

_HOMES = {
    "Chain": "ledger.chain.client",
    "LocalChain": "ledger.chain.client",
    "connect": "ledger.chain.client",
    "compile_contracts": "ledger.chain.compiler",
    "Deployment": "ledger.chain.deployment",
    "ensure_deployed": "ledger.chain.deployment",
    "ChainUnavailable": "ledger.errors",
    "ConfigError": "ledger.errors",
    "ContractRevert": "ledger.errors",
    "DeploymentError": "ledger.errors",
    "LedgerError": "ledger.errors",
    "MeterError": "ledger.errors",
    "ToolchainError": "ledger.errors",
    "KeyAlgorithm": "ledger.meters.keys",
    "MeterAdmin": "ledger.meters.registry",
    "MeterView": "ledger.meters.registry",
    "LedgerNode": "ledger.node",
    "Settings": "ledger.settings",
}

__all__ = [
    "Chain",
    "ChainUnavailable",
    "ConfigError",
    "ContractRevert",
    "Deployment",
    "DeploymentError",
    "KeyAlgorithm",
    "LedgerError",
    "LedgerNode",
    "LocalChain",
    "MeterAdmin",
    "MeterError",
    "MeterView",
    "Settings",
    "ToolchainError",
    "compile_contracts",
    "connect",
    "ensure_deployed",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ledger' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value  # once: later lookups find it without this function
    return value
