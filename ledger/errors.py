"""The ledger's exceptions, one root for all of them.

Every class carries a stable machine-readable `code` and the HTTP status the gateway answers it
with (`http_status`; `api/errors.py` reads both, and adds `Retry-After` when `retry_after_s` is
set). Defined here unless another module is named:

    LedgerError                500  root: an error nobody foresaw is the server's fault
     +-- ConfigError           500  settings that cannot work (bad URL, missing directory)
     +-- ToolchainError        503  the compiler or a chain process could not be used
     +-- ChainUnavailable      503  the JSON-RPC endpoint does not answer (its URL shown redacted)
     +-- DeploymentError       503  recorded contracts are missing or differ from the build
     +-- ContractRevert        409  a contract call reverted; keeps the decoded custom error, whose
     |                              name gives the code and the status (404, 409 or 422) by
     |                              the rules of `revert_status` below
     +-- MeterError            422  meter-registry input that cannot be sent (bad key, unknown
     |                              meter)
     +-- ReadingFormatError    422  not a canonical native reading               (ledger.readings)
     +-- ReadingSignatureError 422  a reading's signature does not verify       (ledger.readings)
     +-- OcmfError             422  OCMF input that cannot be used                (ledger.readings)
     |    +-- OcmfMalformed         not `OCMF|{payload}|{signature}` with valid JSON
     |    +-- OcmfBadValue          a reading's value, unit or time cannot be used
     |    +-- OcmfUnsupportedAlgorithm  `SA` names a method not implemented here
     |    +-- OcmfUnsupportedCurve  a curve that cannot be verified here
     |    +-- OcmfBadKey            a public key that cannot be decoded or is off its curve
     |    +-- OcmfBadSignature      a signature that does not verify over the payload
     |    +-- OcmfUnmappable        a valid record that is not one ledger reading
     +-- BatchTooLarge         413  a submission holds too many readings         (ledger.readings)
     +-- GatewaySaturated      429  this process handles its most reading batches at once
     |                              (Retry-After)                  (ledger.readings.admission)
     +-- AnchoringBacklog      503  too many readings wait for anchoring (Retry-After)
     |                                                             (ledger.readings.admission)
     +-- ReadingNotFound       404  no stored reading with that meter and seq    (ledger.readings)
     +-- MerkleError           500  a tree cannot be built or queried (a bug)   (ledger.anchoring)
     +-- AnchorStuck           500  the chain's batches do not match the database's intents: an
     |                              operator must look                           (ledger.anchoring)
     +-- BundleError           422  a reading bundle that cannot be written or read as asked
     |    |                                                   (ledger.anchoring.bundle)
     |    +-- InvalidBundleRange          from >= to, A > B, a bound out of range, not a range
     |    +-- UnknownBundleBatches   404  batch ids the gateway holds no batch under
     |    +-- BundleBatchesNotAnchored 409  batches held but not anchored (intent, foreign)
     |    +-- BundleMalformed             a bundle line not of the format (its number named)
     |    +-- BundleUnsupportedFormat     a header naming another format or version
     |    +-- BundleTruncated             a bundle that ends before its trailer
     +-- StoreError            500  the database refused an operation              (ledger.store)
     |    +-- StoreUnavailable 503  the database does not answer (Retry-After)    (ledger.store)
     +-- InvalidOrderSignature 422  an order not signed by its signer           (ledger.market)
     +-- EvidenceUnavailable   409  a boundary reading not stored or not anchored yet
     |                                                                        (ledger.anchoring)
     |    +-- EvidenceInChallenge   its batch is still in its challenge period
     |    +-- EvidenceProvenBad     its batch was proven bad on chain     (ledger.anchoring)
     +-- FraudProofError       422  a reading whose signature form gives no leaf under its
     |                              batch's root                          (ledger.readings)
     +-- RelayQuotaExceeded    429  the signer's relayed orders this hour are used up
     |                              (Retry-After)                                (ledger.market)
     +-- GatewayError          502  the customer's client: the gateway refused; `code` is the
     |                              gateway's own                                (ledger.market)
     +-- TariffError           422  a tariff file that cannot be used; names the field
     |                                                                (ledger.billing.tariff)
     +-- PeriodError           422  a billing period that cannot be billed (bad label, empty)
     |    |                                                         (ledger.billing.timeline)
     |    +-- PeriodTooLong    422  a consumption query or export over too long a period
     |                                                                 (ledger.billing.usage)
     +-- NoTariffError         409  a second of the period has no tariff on record
     |                                                              (ledger.billing.timeline)
     +-- BillInputError        422  inputs a bill cannot be computed from (ledger.billing.compute)
     |    +-- TariffCurrencyMismatch 409  a tariff in another currency or decimals than the token
     +-- BillDocumentError     422  a value with no place in a canonical bill document
     |                                                              (ledger.billing.document)
     +-- BillRegistryInputError 422  a BillRegistry argument that cannot be sent (not 32 bytes,
     |                              out of its type's range, not an address)
     |                                                              (ledger.billing.registry)
     +-- BillPackageError      422  a verification package file that is not JSON (`ledger
     |                              verify-bill`; a package's own faults are report findings)
     |                                                                (ledger.billing.verify)
     +-- BillingError          409  an issuing run or tariff change that cannot be done as asked
     |    |                                                          (ledger.billing.service)
     |    +-- PeriodNotOver         the period ends after the chain's latest block time
     |    +-- InvalidPeriod    422  an empty period, or neither a month nor a range given
     |    +-- BillRunConflict       the chain holds another root under a committed run's id
     +-- UnknownTariff         404  a tariff not published, or whose text this gateway lacks
     |                                                              (ledger.billing.issuing)
     +-- BillAlreadyIssued     409  a second current bill for a customer's period without a
     |                              correction link                            (ledger.store)
     +-- BillNotFound          404  no bill with that hash                (ledger.billing.evidence)
     +-- BillAnchorPending     409  the bill's run is committed, its root not yet seen mined
     |                                                              (ledger.billing.evidence)
     +-- InvalidAddress        422  not an account address (0x + 40 hex, EIP-55)
     |                                                                (ledger.billing_cli)
     +-- ComplaintInputError   422  a complaint request that cannot be sent (empty or long text,
     |                              unknown kind or step, bad reference or handler)
     |                                                              (ledger.complaints.service)
     +-- ComplaintNotFound     404  no such complaint, or another customer's
     |                                                              (ledger.complaints.service)
     +-- ComplaintInvalidSignature 422  a customer's step not signed by the customer
     |                                                              (ledger.complaints.service)
     +-- InvalidMonth          422  a statistics month that is not YYYY-MM (ledger.complaints.stats)
     +-- AuditInputError       422  an audit input that cannot be used (record, bundle, bills,
     |                              another chain or contracts); exit status 2    (ledger.audit)
     +-- SimulationError       500  the simulation cannot run, or the gateway broke its contract
          |                                                                      (ledger.sim)
          +-- MarketDayError        the simulated market day cannot run or went wrong
"""

from __future__ import annotations

import re
from typing import Any

from ledger.redaction import redact_text, redact_url


class LedgerError(Exception):
    """Root of every error the ledger raises on purpose."""

    code = "ledger_error"
    http_status = 500
    retry_after_s: int | None = None
    """Seconds after which the same request may succeed (sent as `Retry-After`), if known."""


class ConfigError(LedgerError):
    """The settings cannot work."""

    code = "config_error"
    http_status = 500


class ToolchainError(LedgerError):
    """The compiler or a local chain process could not be used."""

    code = "toolchain_error"
    http_status = 503


class ChainUnavailable(LedgerError):
    """The chain's JSON-RPC endpoint does not answer.

    The message reaches HTTP clients (503 bodies) and logs, so the URL's credentials are
    redacted, in the URL and wherever the transport's reason quotes them.
    """

    code = "chain_unavailable"
    http_status = 503

    def __init__(self, *, rpc_url: str, reason: str) -> None:
        self.rpc_url = redact_url(rpc_url)
        super().__init__(f"chain at {self.rpc_url} is unreachable: {redact_text(reason, rpc_url)}")


class DeploymentError(LedgerError):
    """Recorded contract addresses do not hold the expected code."""

    code = "deployment_error"
    http_status = 503


class ContractRevert(LedgerError):
    """A contract call reverted. `error_name` is the decoded custom error, if any.

    Its code is the error's name in snake case (`MeterRegistryUnknownMeter` ->
    `meter_registry_unknown_meter`), its status what `revert_status` reads in that name.
    """

    code = "contract_revert"
    http_status = 409

    def __init__(self, *, error_name: str, args: tuple[Any, ...] = (), raw: str = "") -> None:
        self.error_name = error_name
        self.args_decoded = args
        self.raw = raw
        self.code = snake_case(error_name)
        self.http_status = revert_status(error_name)
        shown = ", ".join("0x" + a.hex() if isinstance(a, bytes) else str(a) for a in args)
        super().__init__(f"{error_name}({shown})")


class MeterError(LedgerError):
    """Meter input that cannot be sent to the registry."""

    code = "invalid_meter"
    http_status = 422


def snake_case(name: str) -> str:
    """CamelCase to snake_case, keeping acronyms whole: ERC20InsufficientBalance ->
    erc20_insufficient_balance."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


# The contracts name their custom errors <Contract><Subject><Problem> (STYLE.md), OpenZeppelin's
# libraries <Library><Problem>; what a name says decides its status, so an error added to a
# contract gets one without a list to update (tests/unit/test_errors.py checks every error in
# every compiled ABI).
_CONTRACT_FAMILIES = (
    "MeterRegistry",
    "ReadingLedger",
    "EnergyMarket",
    "SettlementToken",
    "BillRegistry",
    "ComplaintRegistry",
)
"""The prefixes of the ledger's own contracts' errors (their names are the contracts')."""
_NOT_FOUND = re.compile(r"(?:Unknown|No)[A-Z]")
"""What the request names does not exist: `...UnknownMeter`, `...UnknownTrade`, `...NoKeyAt`."""
_BAD_VALUE = re.compile(
    r"Zero|Unsupported|Weak|Unaligned|Same|TooSmall|TooLate|InPast|InFuture|Before"
    r"|Expiry|PublicKey|Signature|Signer|Rating|SubjectKind"
)
"""The request's own value is wrong whatever the chain holds: a zero, unsupported, weak,
unaligned or repeated value, one too small or too late, in the past or future or before its key;
a bad expiry or public key; a signature that is bad or expired; a complaint's rating or subject
kind outside its range."""
_OPERATOR_ONLY = "ReadingLedger"
"""Only the gateway's anchorer calls it, never a client's request: its refusals are state."""
_REQUEST_VALUE_LIBRARIES = ("SafeCast",)
"""A request's value overflowed the field the contract keeps it in."""


def revert_status(error_name: str) -> int:
    """The HTTP status of a decoded custom error: 404 when it says the thing asked for does not
    exist, 422 when it says the request's own values are wrong, else 409 (the chain's state
    refuses the request: already registered, not open, not over yet, too little allowance, ...).
    """
    family = next((f for f in _CONTRACT_FAMILIES if error_name.startswith(f)), "")
    problem = error_name[len(family) :]
    if family and _NOT_FOUND.match(problem):
        return 404
    if family == _OPERATOR_ONLY:
        return 409
    if error_name.startswith(_REQUEST_VALUE_LIBRARIES) or _BAD_VALUE.search(problem):
        return 422
    return 409
