"""The ledger's exceptions, one root for all of them.

    LedgerError
     +-- ConfigError          settings that cannot work (bad URL, missing directory)
     +-- ToolchainError       the compiler or a chain process could not be used
     +-- ChainUnavailable     the JSON-RPC endpoint does not answer (its URL shown redacted)
     +-- DeploymentError      recorded contracts are missing or differ from the build
     +-- ContractRevert       a contract call reverted; keeps the decoded custom error
     +-- MeterError           meter-registry input that cannot be sent (bad key, unknown meter)
     +-- ReadingFormatError   not a canonical native reading          (ledger/readings/native.py)
     +-- ReadingSignatureError  a reading's signature does not verify (ledger/readings/native.py)
     +-- MerkleError          a tree cannot be built or queried        (ledger/anchoring/merkle.py)
     +-- BatchTooLarge        a submission holds too many readings  (ledger/readings/ingest.py)
     +-- ReadingNotFound      no stored reading with that meter and seq (ledger/readings/ingest.py)
     +-- StoreError           the database refused an operation       (ledger/store/backend.py)
     |    +-- StoreUnavailable  the database does not answer (503, Retry-After)
     +-- OcmfError            OCMF input: malformed, bad value, unsupported curve or algorithm,
                              bad key, bad signature                   (ledger/readings/ocmf.py)

Each carries a stable machine-readable `code`, which the HTTP layer returns to clients.
"""

from __future__ import annotations

from typing import Any

from ledger.redaction import redact_text, redact_url


class LedgerError(Exception):
    """Root of every error the ledger raises on purpose."""

    code = "ledger_error"


class ConfigError(LedgerError):
    """The settings cannot work."""

    code = "config_error"


class ToolchainError(LedgerError):
    """The compiler or a local chain process could not be used."""

    code = "toolchain_error"


class ChainUnavailable(LedgerError):
    """The chain's JSON-RPC endpoint does not answer.

    The message reaches HTTP clients (503 bodies) and logs, so the URL's credentials are
    redacted, in the URL and wherever the transport's reason quotes them.
    """

    code = "chain_unavailable"

    def __init__(self, *, rpc_url: str, reason: str) -> None:
        self.rpc_url = redact_url(rpc_url)
        super().__init__(f"chain at {self.rpc_url} is unreachable: {redact_text(reason, rpc_url)}")


class DeploymentError(LedgerError):
    """Recorded contract addresses do not hold the expected code."""

    code = "deployment_error"


class ContractRevert(LedgerError):
    """A contract call reverted. `error_name` is the decoded custom error, if any."""

    code = "contract_revert"

    def __init__(self, *, error_name: str, args: tuple[Any, ...] = (), raw: str = "") -> None:
        self.error_name = error_name
        self.args_decoded = args
        self.raw = raw
        shown = ", ".join("0x" + a.hex() if isinstance(a, bytes) else str(a) for a in args)
        super().__init__(f"{error_name}({shown})")


class MeterError(LedgerError):
    """Meter input that cannot be sent to the registry."""

    code = "invalid_meter"
