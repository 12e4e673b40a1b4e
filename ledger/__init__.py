"""The verifiable energy ledger's Python core, usable without the HTTP layer."""

from __future__ import annotations

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
