"""Verifying one bill with nothing but a chain endpoint and the bill's verification package.

`verify_bill_package(package, rpc_url_or_web3)` is what `ledger verify-bill BILL.json --rpc URL`
runs. It trusts neither the operator nor the gateway that served the package: every item is
checked against the chain or recomputed, and the bill passes only when every check does. The
checks, in order (docs/bills.md, "Verifying a bill"), each failure with a stable code and the
record it concerns:

    package   the file is a verification package       package_malformed
    bill_hash keccak256(canonical bytes) == bill_hash   bill_not_canonical, bill_hash_mismatch
    chain     the RPC is the bill's chain, the          wrong_chain, contracts_mismatch
              package's contracts are the ledger's
    anchor    the bill's leaf is in an anchored run     bill_not_anchored, bill_period_outside_run
    tariffs   texts hash to their keys, on record,      tariff_text_mismatch, tariff_invalid,
              the customer's assignments in force       tariff_not_on_record
    readings  each named reading present, well-formed,  reading_missing, reading_malformed,
              the customer's meter, signed by the key   reading_not_customers,
              valid at its time, in its anchored batch  reading_signature_invalid,
                                                        reading_not_in_batch,
                                                        reading_values_mismatch
    trades    each netted trade as EnergyMarket holds it trade_mismatch
    lines     compute_bill over the verified inputs     bill_lines_mismatch
              gives the same document

The chain is only read (no key is needed). Contracts are bound to the addresses the package
names, and those are checked first: the code at each address must be the ledger's compiled
contract, the BillRegistry's and the EnergyMarket's links must point at the package's
ReadingLedger and MeterRegistry, and the BillRegistry must be the one the bill names (and the one
`bill_registry=` pins, when the verifier knows the ledger's address from elsewhere).

A meter's key at a reading's time is chosen from its key epochs (`keyEpochCount`/`keyEpoch`,
read once per meter) by `MeterRegistry.keyAt`'s own rule: the last epoch whose `validFrom` is at
or before the time, unless it is revoked at or before that time. Reading the epochs once costs
a few calls per meter instead of one call per reading (a month of 15-minute readings is 2,880).
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    BadFunctionCallOutput,
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
)

from ledger.anchoring.merkle import verify as merkle_verify
from ledger.billing.compute import BillInputs, BillReading, SettledTrade, compute_bill
from ledger.billing.document import BILL_FORMAT, BillDocumentError, canonical_json
from ledger.billing.tariff import Tariff, TariffError, parse_tariff, tariff_hash
from ledger.billing.timeline import Assignment
from ledger.chain.client import read_only_web3
from ledger.chain.compiler import ContractArtifact, compile_contracts
from ledger.errors import ChainUnavailable, LedgerError
from ledger.meters.keys import KeyAlgorithm, algorithm_of_curve
from ledger.meters.registry import meter_id_bytes
from ledger.readings.fraud_proof import candidate_leaves
from ledger.readings.native import Reading, decode, verify_reading_signature
from ledger.readings.ocmf.errors import OcmfError
from ledger.readings.ocmf.record import parse_ocmf
from ledger.readings.ocmf.values import ledger_values
from ledger.readings.ocmf.verify import signature_method, verify_ocmf

EVIDENCE_FORMAT = "energy-ledger/bill-evidence/v1"
REPORT_FORMAT = "energy-ledger/bill-verification/v1"

CHECKS = ("package", "bill_hash", "chain", "anchor", "tariffs", "readings", "trades", "lines")
"""Every check of the report, in the order it runs."""

REQUIRED_CONTRACTS = ("BillRegistry", "ReadingLedger", "MeterRegistry", "EnergyMarket")
TRADE_SETTLED = 2
"""`IEnergyMarket.TradeState.Settled`."""
MAX_LINE_FINDINGS = 10
"""Differing lines named one by one; beyond this many, one finding counts the rest."""
HASH_LENGTH = 32


class BillPackageError(LedgerError):
    """A verification package file that cannot be read as JSON (not a package at all)."""

    code = "invalid_bill_package"
    http_status = 422


# --- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One failure: its stable `code`, what is wrong, and the record it concerns (a line index,
    a reading's meter and seq, a tariff hash, a trade id, a field name)."""

    code: str
    message: str
    record: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "record": self.record}


@dataclass
class CheckResult:
    """One named check: `ok`, `failed` (with its findings) or `skipped` (why, in `note`)."""

    name: str
    status: str = "ok"
    findings: list[Finding] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    note: str | None = None

    def fail(self, code: str, message: str, **record: Any) -> None:
        self.status = "failed"
        self.findings.append(Finding(code, message, record))

    def skip(self, note: str) -> None:
        self.status = "skipped"
        self.note = note

    def as_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"check": self.name, "status": self.status}
        if self.note is not None:
            shown["note"] = self.note
        if self.details:
            shown["details"] = self.details
        shown["failures"] = [f.as_dict() for f in self.findings]
        return shown


@dataclass
class VerificationReport:
    """The outcome of every check on one bill; `ok` only when each check passed."""

    bill_hash: str | None
    chain_id: int | None
    checks: list[CheckResult]

    @property
    def ok(self) -> bool:
        return all(check.status == "ok" for check in self.checks)

    def check(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)

    @property
    def failures(self) -> list[tuple[str, Finding]]:
        """(check name, finding) of every failure, in check order."""
        return [(c.name, f) for c in self.checks for f in c.findings]

    @property
    def codes(self) -> set[str]:
        return {finding.code for _, finding in self.failures}

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "ok": self.ok,
            "bill_hash": self.bill_hash,
            "chain_id": self.chain_id,
            "checks": [c.as_dict() for c in self.checks],
            "failures": [{"check": name, **f.as_dict()} for name, f in self.failures],
        }


# --- the package, parsed --------------------------------------------------------------------------


class _Malformed(Exception):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class _PackageReading:
    meter_id: bytes
    seq: int
    batch_id: int
    proof: tuple[bytes, ...]
    canonical: bytes
    signature: bytes | None
    ocmf: str | None


@dataclass(frozen=True)
class _Package:
    bill: dict[str, Any]
    bill_hash: bytes
    run_id: int
    proof: tuple[bytes, ...]
    contracts: dict[str, str]
    tariff_texts: dict[bytes, str]
    readings: tuple[_PackageReading, ...]
    # From the bill document:
    chain_id: int
    bill_registry: str
    customer: str
    period_start: int
    period_end: int
    period_label: str | None
    tariffs: tuple[bytes, ...]
    meters: tuple[bytes, ...]
    reading_batches: tuple[tuple[bytes, int, int, int], ...]
    trade_ids: tuple[int, ...]
    pending_trades: tuple[int, ...]
    replaces: bytes | None


def load_package(path: Path) -> dict[str, Any]:
    """Reads a verification package file (what `ledger bills show HASH --evidence` writes).

    Raises:
        BillPackageError: the file cannot be read or is not a JSON object.
    """
    try:
        loaded = json.loads(path.read_bytes())
    except OSError as error:
        raise BillPackageError(f"cannot read {path}: {error.strerror or error}") from error
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise BillPackageError(f"{path} is not JSON: {error}") from error
    if not isinstance(loaded, dict):
        raise BillPackageError(f"{path} holds a JSON {type(loaded).__name__}, not an object")
    return loaded


def _object(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Malformed(path, "must be an object")
    return value


def _array(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Malformed(path, "must be an array")
    return value


def _integer(value: object, path: str) -> int:
    if type(value) is not int or value < 0:
        raise _Malformed(path, "must be a non-negative integer")
    return value


def _hex(value: object, path: str, length: int | None = None) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise _Malformed(path, "must be a 0x-prefixed hex string")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise _Malformed(path, "is not hex") from None
    if length is not None and len(raw) != length:
        raise _Malformed(path, f"must be {length} bytes, not {len(raw)}")
    return raw


def _account(value: object, path: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise _Malformed(path, "must be an account address")
    return str(to_checksum_address(value))


def _parse(package: Mapping[str, Any]) -> _Package:
    if package.get("format") != EVIDENCE_FORMAT:
        raise _Malformed("format", f"must be {EVIDENCE_FORMAT!r}")
    bill = _object(package.get("bill"), "bill")
    if bill.get("format") != BILL_FORMAT:
        raise _Malformed("bill.format", f"must be {BILL_FORMAT!r}")
    anchor = _object(package.get("anchor"), "anchor")
    contracts = _object(package.get("contracts"), "contracts")
    for name in REQUIRED_CONTRACTS:
        if name not in contracts:
            raise _Malformed(f"contracts.{name}", "is missing")
    tariff_texts: dict[bytes, str] = {}
    for key, text in _object(package.get("tariffs"), "tariffs").items():
        if not isinstance(text, str):
            raise _Malformed(f"tariffs.{key}", "must be the tariff file's text")
        tariff_texts[_hex(key, f"tariffs.{key}", HASH_LENGTH)] = text
    readings = tuple(
        _reading(_object(item, f"readings[{i}]"), f"readings[{i}]")
        for i, item in enumerate(_array(package.get("readings"), "readings"))
    )
    period = _object(bill.get("period"), "bill.period")
    label = period.get("label")
    if label is not None and not isinstance(label, str):
        raise _Malformed("bill.period.label", "must be a string or null")
    lines = _array(bill.get("lines"), "bill.lines")
    trade_ids: set[int] = set()
    for i, line in enumerate(lines):
        evidence = _object(
            _object(line, f"bill.lines[{i}]").get("evidence"), f"lines[{i}].evidence"
        )
        for j, trade in enumerate(_array(evidence.get("trades"), f"bill.lines[{i}].trades")):
            trade_ids.add(_integer(trade, f"bill.lines[{i}].evidence.trades[{j}]"))
    batches = []
    for i, run in enumerate(_array(bill.get("reading_batches"), "bill.reading_batches")):
        where = f"bill.reading_batches[{i}]"
        if not isinstance(run, list) or len(run) != 4:
            raise _Malformed(where, "must be [meter, first_seq, last_seq, batch_id]")
        batches.append(
            (
                _hex(run[0], where, HASH_LENGTH),
                _integer(run[1], where),
                _integer(run[2], where),
                _integer(run[3], where),
            )
        )
    replaces = bill.get("replaces")
    return _Package(
        bill=bill,
        bill_hash=_hex(package.get("bill_hash"), "bill_hash", HASH_LENGTH),
        run_id=_integer(anchor.get("run_id"), "anchor.run_id"),
        proof=tuple(
            _hex(p, f"anchor.proof[{i}]", HASH_LENGTH)
            for i, p in enumerate(_array(anchor.get("proof"), "anchor.proof"))
        ),
        contracts={
            str(name): _account(address, f"contracts.{name}") for name, address in contracts.items()
        },
        tariff_texts=tariff_texts,
        readings=readings,
        chain_id=_integer(bill.get("chain_id"), "bill.chain_id"),
        bill_registry=_account(bill.get("bill_registry"), "bill.bill_registry"),
        customer=_account(bill.get("customer"), "bill.customer"),
        period_start=_integer(period.get("start"), "bill.period.start"),
        period_end=_integer(period.get("end"), "bill.period.end"),
        period_label=label,
        tariffs=tuple(
            _hex(t, f"bill.tariffs[{i}]", HASH_LENGTH)
            for i, t in enumerate(_array(bill.get("tariffs"), "bill.tariffs"))
        ),
        meters=tuple(
            _hex(m, f"bill.meters[{i}]", HASH_LENGTH)
            for i, m in enumerate(_array(bill.get("meters"), "bill.meters"))
        ),
        reading_batches=tuple(batches),
        trade_ids=tuple(sorted(trade_ids)),
        pending_trades=tuple(
            _integer(t, f"bill.pending_trades[{i}]")
            for i, t in enumerate(_array(bill.get("pending_trades"), "bill.pending_trades"))
        ),
        replaces=None if replaces is None else _hex(replaces, "bill.replaces", HASH_LENGTH),
    )


def _reading(item: dict[str, Any], path: str) -> _PackageReading:
    signature = item.get("signature")
    ocmf = item.get("ocmf")
    if (signature is None) == (ocmf is None):
        raise _Malformed(path, "needs exactly one of signature (native) and ocmf (an OCMF record)")
    if ocmf is not None and not isinstance(ocmf, str):
        raise _Malformed(f"{path}.ocmf", "must be the OCMF record's text")
    return _PackageReading(
        meter_id=_hex(item.get("meter_id"), f"{path}.meter_id", HASH_LENGTH),
        seq=_integer(item.get("seq"), f"{path}.seq"),
        batch_id=_integer(item.get("batch_id"), f"{path}.batch_id"),
        proof=tuple(
            _hex(p, f"{path}.proof[{i}]", HASH_LENGTH)
            for i, p in enumerate(_array(item.get("proof"), f"{path}.proof"))
        ),
        canonical=_hex(item.get("canonical"), f"{path}.canonical"),
        signature=None if signature is None else _hex(signature, f"{path}.signature"),
        ocmf=ocmf,
    )


# --- the chain, read-only ------------------------------------------------------------------------


class _Reverted(Exception):
    """A view call the contract refused (or an address without the expected code)."""


class _ChainView:
    """The ledger's contracts at the package's addresses, read through a bare Web3."""

    def __init__(
        self, w3: Web3, addresses: Mapping[str, str], artifacts: Mapping[str, ContractArtifact]
    ) -> None:
        self.w3 = w3
        self.contracts: dict[str, Contract] = {
            name: w3.eth.contract(address=to_checksum_address(address), abi=artifacts[name].abi)
            for name, address in addresses.items()
            if name in artifacts
        }
        self._errors: dict[bytes, str] = {
            keccak(text=f"{e['name']}({','.join(i['type'] for i in e['inputs'])})")[:4]: str(
                e["name"]
            )
            for artifact in artifacts.values()
            for e in artifact.abi
            if e.get("type") == "error"
        }

    def read(self, call: ContractFunction) -> Any:
        try:
            return call.call()
        except (ContractCustomError, ContractLogicError, ContractPanicError) as error:
            raise _Reverted(self._revert_name(error)) from error
        except BadFunctionCallOutput as error:
            raise _Reverted(f"no contract answers {call.fn_name}") from error

    def _revert_name(self, error: Exception) -> str:
        data = getattr(error, "data", None)
        if isinstance(data, dict):
            data = data.get("result") or data.get("data")
        if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
            name = self._errors.get(bytes.fromhex(data[2:10]))
            if name is not None:
                return name
        return str(error)

    def fn(self, contract: str) -> Any:
        return self.contracts[contract].functions


def _connect(chain: Web3 | str) -> Web3:
    if isinstance(chain, Web3):
        return chain
    return read_only_web3(chain, timeout_s=30)


def _chain_id(w3: Web3, rpc_url: str) -> int:
    try:
        return int(w3.eth.chain_id)
    except Exception as error:  # noqa: BLE001 - any transport failure means unreachable
        raise ChainUnavailable(rpc_url=rpc_url, reason=str(error)) from error


# --- the checks ----------------------------------------------------------------------------------


@dataclass
class _Verified:
    """What the checks established, for the recomputation."""

    tariffs: dict[bytes, Tariff] = field(default_factory=dict)
    assignments: list[Assignment] = field(default_factory=list)
    readings: dict[bytes, list[BillReading]] = field(default_factory=dict)
    trades: list[SettledTrade] = field(default_factory=list)
    currency: tuple[str, int] | None = None


def verify_bill_package(
    package: Mapping[str, Any],
    chain: Web3 | str,
    *,
    bill_registry: str | None = None,
    artifacts: Mapping[str, ContractArtifact] | None = None,
    verified_leaves: Callable[[bytes, int], bytes | None] | None = None,
) -> VerificationReport:
    """Checks a bill's verification package against the chain (see the module docstring).

    Args:
        package: the package as `ledger/billing/evidence.py` builds it (parsed JSON).
        chain: a JSON-RPC URL, or a connected Web3.
        bill_registry: the ledger's BillRegistry address as the verifier knows it from elsewhere;
            None: the package's (still checked against the bill and the other contracts).
        artifacts: the compiled contracts (ABIs and runtime code); None: `compile_contracts()`.
        verified_leaves: given a reading's (meter id, seq), the leaf of that reading when the
            caller has itself checked its signature under the meter's key at its time (the
            audit, which has checked every reading of its bundle): a package reading whose proof
            gives that very leaf is not verified a second time (the leaf commits to the signed
            bytes and the signature). None: every signature is verified here.

    Raises:
        ChainUnavailable: the endpoint does not answer.
    """
    checks = {name: CheckResult(name) for name in CHECKS}
    report = VerificationReport(None, None, list(checks.values()))
    w3 = _connect(chain)
    rpc_url = chain if isinstance(chain, str) else "the given Web3"
    report.chain_id = _chain_id(w3, rpc_url)

    try:
        parsed = _parse(package)
    except _Malformed as error:
        checks["package"].fail("package_malformed", str(error))
        for name in CHECKS[1:]:
            checks[name].skip("the package is malformed")
        return report
    report.bill_hash = "0x" + parsed.bill_hash.hex()

    document_hash = _check_bill_hash(parsed, checks["bill_hash"])
    view = _check_chain(
        parsed,
        w3,
        report.chain_id,
        bill_registry,
        dict(artifacts) if artifacts is not None else compile_contracts(),
        checks["chain"],
    )
    if view is None:
        for name in CHECKS[3:]:
            checks[name].skip("the package's contracts are not the ledger's on this chain")
        return report
    verified = _Verified()
    _check_anchor(parsed, document_hash, view, checks["anchor"])
    _check_tariffs(parsed, view, verified, checks["tariffs"])
    _check_readings(parsed, view, verified, checks["readings"], verified_leaves)
    _check_trades(parsed, view, verified, checks["trades"])
    _check_lines(parsed, view, verified, checks["lines"])
    return report


def _check_bill_hash(parsed: _Package, check: CheckResult) -> bytes:
    """The hash of the document as it is (the package's claim when it has no canonical bytes)."""
    try:
        recomputed = keccak(canonical_json(parsed.bill))
    except BillDocumentError as error:
        check.fail("bill_not_canonical", str(error))
        return parsed.bill_hash
    check.details["recomputed"] = "0x" + recomputed.hex()
    if recomputed != parsed.bill_hash:
        check.fail(
            "bill_hash_mismatch",
            f"the bill's canonical bytes hash to 0x{recomputed.hex()}, the package claims "
            f"0x{parsed.bill_hash.hex()}",
            bill_hash="0x" + parsed.bill_hash.hex(),
        )
    return recomputed


def _check_chain(
    parsed: _Package,
    w3: Web3,
    chain_id: int,
    pinned_registry: str | None,
    artifacts: dict[str, ContractArtifact],
    check: CheckResult,
) -> _ChainView | None:
    """Whether the RPC and the package's contracts are the bill's ledger; the contracts' view
    when they can be read at all."""
    if chain_id != parsed.chain_id:
        check.fail(
            "wrong_chain",
            f"the RPC serves chain {chain_id}, the bill is for chain {parsed.chain_id}",
            chain_id=chain_id,
        )
    registry = parsed.contracts["BillRegistry"]
    if registry != parsed.bill_registry:
        check.fail(
            "wrong_chain",
            f"the package's BillRegistry {registry} is not the bill's {parsed.bill_registry}",
            contract="BillRegistry",
        )
    if pinned_registry is not None and (
        not is_address(pinned_registry) or to_checksum_address(pinned_registry) != registry
    ):
        check.fail(
            "wrong_chain",
            f"the package's BillRegistry {registry} is not the ledger's {pinned_registry}",
            contract="BillRegistry",
        )
    if check.status != "ok":
        return None
    for name, address in sorted(parsed.contracts.items()):
        artifact = artifacts.get(name)
        if artifact is None:
            continue
        if not artifact.runtime_code_matches(bytes(w3.eth.get_code(to_checksum_address(address)))):
            check.fail(
                "contracts_mismatch",
                f"the code at {address} is not the ledger's {name}",
                contract=name,
            )
    if check.status != "ok":
        return None
    view = _ChainView(w3, parsed.contracts, artifacts)
    market = view.fn("EnergyMarket")
    links = {
        ("BillRegistry", "ReadingLedger"): view.read(view.fn("BillRegistry").readingLedger()),
        ("EnergyMarket", "ReadingLedger"): view.read(market.readingLedger()),
        ("EnergyMarket", "MeterRegistry"): view.read(market.meterRegistry()),
        ("EnergyMarket", "SettlementToken"): view.read(market.settlementToken()),
    }
    for (holder, name), linked in links.items():
        expected = parsed.contracts.get(name)
        if expected is None and name == "SettlementToken":
            # The package may leave the token out: the market's own link names it.
            view.contracts[name] = w3.eth.contract(
                address=to_checksum_address(linked), abi=artifacts[name].abi
            )
            continue
        if to_checksum_address(linked) != expected:
            check.fail(
                "contracts_mismatch",
                f"{holder} uses the {name} at {linked}, the package names {expected}",
                contract=name,
            )
    return view if check.status == "ok" else None


def _check_anchor(
    parsed: _Package, document_hash: bytes, view: _ChainView, check: CheckResult
) -> None:
    registry = view.fn("BillRegistry")
    check.details["run_id"] = parsed.run_id
    anchored = parsed.run_id <= 2**64 - 1 and bool(
        view.read(registry.verifyBill(parsed.run_id, document_hash, list(parsed.proof)))
    )
    if not anchored:
        check.fail(
            "bill_not_anchored",
            f"BillRegistry.verifyBill(run {parsed.run_id}, 0x{document_hash.hex()}, proof) is "
            "false: this bill is not in that run's root",
            run_id=parsed.run_id,
            bill_hash="0x" + document_hash.hex(),
        )
        return
    run = view.read(registry.run(parsed.run_id))
    run_start, run_end = int(run[2]), int(run[3])
    check.details["run_period"] = {"start": run_start, "end": run_end}
    if not run_start <= parsed.period_start < parsed.period_end <= run_end:
        check.fail(
            "bill_period_outside_run",
            f"the bill's period [{parsed.period_start}, {parsed.period_end}) is not inside run "
            f"{parsed.run_id}'s [{run_start}, {run_end})",
            run_id=parsed.run_id,
        )


def _assignments_in_force(
    assignments: Sequence[Assignment], start: int, end: int
) -> list[Assignment]:
    """The assignment in force at `start` and those starting before `end` (timeline's rule)."""
    ordered = sorted(assignments, key=lambda a: a.valid_from)
    current = bisect_right([a.valid_from for a in ordered], start) - 1
    first = max(current, 0)
    return [a for i, a in enumerate(ordered) if i >= first and (i == current or a.valid_from < end)]


def _check_tariffs(
    parsed: _Package, view: _ChainView, verified: _Verified, check: CheckResult
) -> None:
    registry = view.fn("BillRegistry")
    for digest, text in sorted(parsed.tariff_texts.items()):
        data = text.encode("utf-8")
        actual = tariff_hash(data)
        if actual != digest:
            check.fail(
                "tariff_text_mismatch",
                f"the text given for tariff 0x{digest.hex()} hashes to 0x{actual.hex()}",
                tariff="0x" + digest.hex(),
            )
            continue
        try:
            verified.tariffs[digest] = parse_tariff(data)
        except TariffError as error:
            check.fail("tariff_invalid", str(error), tariff="0x" + digest.hex())
    for digest in parsed.tariffs:
        if digest not in parsed.tariff_texts:
            check.fail(
                "tariff_text_mismatch",
                f"the package holds no text for tariff 0x{digest.hex()}",
                tariff="0x" + digest.hex(),
            )
        _valid_from, published_at = view.read(registry.tariff(digest))
        if int(published_at) == 0:
            check.fail(
                "tariff_not_on_record",
                f"tariff 0x{digest.hex()} is not published on the BillRegistry",
                tariff="0x" + digest.hex(),
            )

    count = int(view.read(registry.assignmentCount(parsed.customer)))
    for index in range(count):
        digest, valid_from = view.read(registry.assignment(parsed.customer, index))
        verified.assignments.append(Assignment(bytes(digest), int(valid_from)))
    in_force = _assignments_in_force(verified.assignments, parsed.period_start, parsed.period_end)
    on_record = {a.tariff_hash for a in in_force}
    check.details["assignments_in_force"] = [
        {"tariff": "0x" + a.tariff_hash.hex(), "valid_from": a.valid_from} for a in in_force
    ]
    named = set(parsed.tariffs)
    for digest in sorted(named - on_record):
        check.fail(
            "tariff_not_on_record",
            f"the bill names tariff 0x{digest.hex()}, which is not assigned to "
            f"{parsed.customer} during the period on chain",
            tariff="0x" + digest.hex(),
        )
    for digest in sorted(on_record - named):
        check.fail(
            "tariff_not_on_record",
            f"tariff 0x{digest.hex()} is assigned to {parsed.customer} during the period on "
            "chain, but the bill does not name it",
            tariff="0x" + digest.hex(),
        )
    for index, line in enumerate(parsed.bill["lines"]):
        tariff = line.get("tariff") if isinstance(line, dict) else None
        if tariff is None:
            continue
        if not isinstance(tariff, str) or _maybe_bytes32(tariff) not in on_record:
            check.fail(
                "tariff_not_on_record",
                f"line {index} prices with tariff {tariff}, not one in force for "
                f"{parsed.customer} during the period",
                line=index,
                tariff=tariff,
            )


def _maybe_bytes32(text: str) -> bytes | None:
    try:
        return _hex(text, "", HASH_LENGTH)
    except _Malformed:
        return None


@dataclass
class _MeterKeys:
    """A meter's key epochs (algorithm, validFrom, revokedAt, publicKey), or why there are none."""

    epochs: list[tuple[int, int, int, bytes]]
    valid_froms: list[int]
    problem: str | None = None

    def at(self, timestamp: int) -> tuple[int, tuple[int, int, int, bytes]] | None:
        """`MeterRegistry.keyAt`'s rule: the last epoch started at `timestamp`, unless revoked."""
        started = bisect_right(self.valid_froms, timestamp)
        if started == 0:
            return None
        key = self.epochs[started - 1]
        if key[2] != 0 and timestamp >= key[2]:
            return None
        return started - 1, key


def _meter_keys(view: _ChainView, meter: bytes) -> _MeterKeys:
    registry = view.fn("MeterRegistry")
    try:
        count = int(view.read(registry.keyEpochCount(meter)))
        epochs = []
        for index in range(count):
            algorithm, valid_from, revoked_at, public_key = view.read(
                registry.keyEpoch(meter, index)
            )
            epochs.append((int(algorithm), int(valid_from), int(revoked_at), bytes(public_key)))
    except _Reverted as error:
        return _MeterKeys([], [], problem=str(error))
    return _MeterKeys(epochs, [e[1] for e in epochs])


def _check_readings(
    parsed: _Package,
    view: _ChainView,
    verified: _Verified,
    check: CheckResult,
    verified_leaves: Callable[[bytes, int], bytes | None] | None = None,
) -> None:
    meter_registry = view.fn("MeterRegistry")
    reading_ledger = view.fn("ReadingLedger")

    # Every bill meter must be the customer's, whether or not it has readings.
    owned: set[bytes] = set()
    for meter in parsed.meters:
        try:
            owner = to_checksum_address(view.read(meter_registry.ownerOf(meter)))
        except _Reverted as error:
            check.fail(
                "reading_not_customers",
                f"meter 0x{meter.hex()} is not registered ({error})",
                meter="0x" + meter.hex(),
            )
            continue
        if owner != parsed.customer:
            check.fail(
                "reading_not_customers",
                f"meter 0x{meter.hex()} is owned by {owner}, not by {parsed.customer}",
                meter="0x" + meter.hex(),
            )
        else:
            owned.add(meter)

    named: dict[tuple[bytes, int], int] = {}
    for meter, first, last, batch in parsed.reading_batches:
        for seq in range(first, last + 1):
            named[(meter, seq)] = batch
    given: dict[tuple[bytes, int], _PackageReading] = {}
    for supplied in parsed.readings:
        given.setdefault((supplied.meter_id, supplied.seq), supplied)
    for meter, seq in sorted(named.keys() - given.keys()):
        check.fail(
            "reading_missing",
            f"the bill uses reading {seq} of meter 0x{meter.hex()} (batch {named[(meter, seq)]}), "
            "the package does not hold it",
            meter="0x" + meter.hex(),
            seq=seq,
            batch_id=named[(meter, seq)],
        )

    keys: dict[bytes, _MeterKeys] = {}
    roots: dict[int, bytes | None] = {}
    checked = 0
    for (meter, seq), batch in sorted(named.items()):
        item = given.get((meter, seq))
        if item is None:
            continue
        checked += 1
        record = {"meter": "0x" + meter.hex(), "seq": seq, "batch_id": item.batch_id}

        def fail(code: str, message: str, record: dict[str, Any] = record) -> None:
            check.fail(code, message, **record)

        try:
            reading = decode(item.canonical)
        except LedgerError as error:
            fail("reading_malformed", f"the canonical bytes are not a reading: {error}")
            continue
        if (reading.meter_id, reading.seq, reading.chain_id) != (meter, seq, parsed.chain_id):
            fail(
                "reading_values_mismatch",
                f"the signed bytes are reading {reading.seq} of meter 0x{reading.meter_id.hex()} "
                f"on chain {reading.chain_id}, not the one the package names",
            )
        if meter not in parsed.meters:
            fail("reading_not_customers", f"meter 0x{meter.hex()} is not one of the bill's meters")
        # In its anchored batch: the leaf of these bytes under the root the chain holds.
        if item.batch_id != batch:
            fail(
                "reading_not_in_batch",
                f"the bill names batch {batch} for this reading, the package proves batch "
                f"{item.batch_id}",
            )
        elif item.batch_id not in roots:
            try:
                roots[item.batch_id] = bytes(view.read(reading_ledger.batchRoot(item.batch_id)))
            except _Reverted:
                roots[item.batch_id] = None
        root = roots.get(item.batch_id)
        proven = (
            None
            if item.batch_id != batch or root is None
            else next(
                (
                    leaf
                    for leaf in candidate_leaves(
                        item.canonical,
                        item.signature,
                        "native" if item.ocmf is None else "ocmf",
                        item.ocmf,
                    )
                    if merkle_verify(item.proof, root, leaf)
                ),
                None,
            )
        )
        if item.batch_id == batch and proven is None:
            fail(
                "reading_not_in_batch",
                "its leaf and proof do not give the root of batch "
                f"{item.batch_id} on the ReadingLedger"
                if root is not None
                else f"batch {item.batch_id} is not anchored on the ReadingLedger",
            )
        # Signed by the key valid at its time (unless the caller checked this very leaf).
        if (
            proven is not None
            and verified_leaves is not None
            and verified_leaves(meter, seq) == proven
        ):
            problem = None
        else:
            meter_keys = keys.get(meter)
            if meter_keys is None:
                meter_keys = keys[meter] = _meter_keys(view, meter)
            problem = _signature_problem(item, reading, meter_keys, parsed.chain_id)
        if problem is not None:
            fail("reading_signature_invalid", problem)
        verified.readings.setdefault(meter, []).append(
            BillReading(
                meter, seq, reading.timestamp, reading.import_wh, reading.export_wh, item.batch_id
            )
        )
    check.details["readings_checked"] = checked


def _signature_problem(
    item: _PackageReading, reading: Reading, keys: _MeterKeys, chain_id: int
) -> str | None:
    """Why the reading is not signed by the meter's key at its time; None when it is."""
    if keys.problem is not None:
        return f"the meter's keys cannot be read: {keys.problem}"
    found = keys.at(reading.timestamp)
    if found is None:
        return f"the meter had no valid key at {reading.timestamp} (MeterRegistry.keyAt)"
    epoch, (algorithm_code, _valid_from, _revoked_at, public_key) = found
    try:
        algorithm = KeyAlgorithm(algorithm_code)
    except ValueError:
        return f"key epoch {epoch} has an unknown algorithm {algorithm_code}"
    if item.signature is not None:
        try:
            verify_reading_signature(algorithm, public_key, item.canonical, item.signature)
        except LedgerError as error:
            return f"{error} (key epoch {epoch})"
        return None
    assert item.ocmf is not None
    try:
        record = parse_ocmf(item.ocmf)
        values = ledger_values(record)
        mapped = Reading(
            chain_id=chain_id,
            meter_id=meter_id_bytes(values.meter_serial),
            seq=values.seq,
            timestamp=values.timestamp,
            import_wh=values.import_wh,
            export_wh=values.export_wh,
            status=int(values.status),
        ).encode()
    except LedgerError as error:
        return f"the OCMF record does not map onto a reading: {error}"
    if mapped != item.canonical:
        return "the OCMF record maps onto other canonical bytes than the package's (other values)"
    try:
        method = signature_method(record.signature.algorithm)
        if algorithm_of_curve(method.curve) is not algorithm:
            return (
                f"the record is signed with {method.identifier}, the meter's key (epoch {epoch}) "
                f"is {algorithm.label}"
            )
        verify_ocmf(record, public_key)
    except OcmfError as error:
        return f"{error} (key epoch {epoch})"
    return None


def _check_trades(
    parsed: _Package, view: _ChainView, verified: _Verified, check: CheckResult
) -> None:
    market = view.fn("EnergyMarket")
    slot_s = int(view.read(market.slotSeconds()))
    meters = set(parsed.meters)
    lines_of: dict[int, list[dict[str, Any]]] = {}
    for line in parsed.bill["lines"]:
        if line.get("kind") in ("p2p_purchase", "p2p_sale"):
            for trade_id in line["evidence"]["trades"]:
                lines_of.setdefault(trade_id, []).append(line)
    for trade_id in parsed.trade_ids:
        try:
            trade = view.read(market.trade(trade_id))
        except _Reverted as error:
            check.fail(
                "trade_mismatch", f"trade {trade_id} is not on the market ({error})", trade=trade_id
            )
            continue
        delivery_start, seller_meter, buyer_meter = int(trade[2]), bytes(trade[5]), bytes(trade[6])
        delivered, state, paid = int(trade[8]), int(trade[9]), int(trade[11])
        problems = []
        if state != TRADE_SETTLED:
            problems.append(f"its state on chain is {state}, not Settled ({TRADE_SETTLED})")
        if buyer_meter not in meters and seller_meter not in meters:
            problems.append("neither its buyer's nor its seller's meter is one of the bill's")
        if not parsed.period_start <= delivery_start < parsed.period_end:
            problems.append(f"its slot starts at {delivery_start}, outside the bill's period")
        for line in lines_of.get(trade_id, []):
            purchase = line["kind"] == "p2p_purchase"
            meter = buyer_meter if purchase else seller_meter
            amount = paid if purchase else -paid
            if meter not in meters:
                problems.append(f"its {line['kind']} line is for a meter that is not the bill's")
            if line.get("quantity") != delivered:
                problems.append(
                    f"its {line['kind']} line says {line.get('quantity')} Wh, the chain "
                    f"{delivered} Wh delivered"
                )
            if line.get("amount_minor") != amount:
                problems.append(
                    f"its {line['kind']} line says {line.get('amount_minor')}, the chain paid "
                    f"{paid}"
                )
        for problem in problems:
            check.fail("trade_mismatch", f"trade {trade_id}: {problem}", trade=trade_id)
        if state == TRADE_SETTLED:
            verified.trades.append(
                SettledTrade(
                    trade_id=trade_id,
                    seller_meter=seller_meter,
                    buyer_meter=buyer_meter,
                    slot_start=delivery_start,
                    slot_end=delivery_start + slot_s,
                    delivered_wh=delivered,
                    paid=paid,
                )
            )


_LINE_KEYS = ("kind", "band", "tariff", "estimated")


def _check_lines(
    parsed: _Package, view: _ChainView, verified: _Verified, check: CheckResult
) -> None:
    unverified = sorted(
        {
            a.tariff_hash
            for a in _assignments_in_force(
                verified.assignments, parsed.period_start, parsed.period_end
            )
        }
        - verified.tariffs.keys()
    )
    if unverified:
        # Named here rather than left to compute_bill: without the text there is nothing to
        # price with, and the tariffs check has said why.
        check.fail(
            "bill_lines_mismatch",
            "the bill cannot be recomputed: no verified text for the tariff(s) in force "
            + ", ".join(f"0x{t.hex()}" for t in unverified),
        )
        return
    token = view.fn("SettlementToken")
    verified.currency = (str(view.read(token.symbol())), int(view.read(token.decimals())))
    inputs = BillInputs(
        chain_id=parsed.chain_id,
        bill_registry=parsed.bill_registry,
        customer=parsed.customer,
        period_start=parsed.period_start,
        period_end=parsed.period_end,
        period_label=parsed.period_label,
        meters=parsed.meters,
        readings={m: sorted(r, key=lambda x: x.seq) for m, r in verified.readings.items()},
        tariffs=verified.tariffs,
        assignments=tuple(sorted(verified.assignments, key=lambda a: a.valid_from)),
        trades=tuple(verified.trades),
        pending_trades=parsed.pending_trades,
        replaces=parsed.replaces,
        currency=verified.currency,
    )
    try:
        recomputed = compute_bill(inputs)
    except LedgerError as error:
        check.fail(
            "bill_lines_mismatch",
            f"the bill cannot be recomputed from the verified inputs: [{error.code}] {error}",
        )
        return
    bill = parsed.bill
    _compare_lines(bill["lines"], recomputed["lines"], check)
    for key in sorted(set(bill) | set(recomputed)):
        if key != "lines" and bill.get(key) != recomputed.get(key):
            check.fail(
                "bill_lines_mismatch",
                f"{key}: the bill says {_short(bill.get(key))}, recomputed "
                f"{_short(recomputed.get(key))}",
                field=key,
            )


def _compare_lines(
    billed: Sequence[Any], recomputed: Sequence[dict[str, Any]], check: CheckResult
) -> None:
    differing = 0
    for index in range(max(len(billed), len(recomputed))):
        ours = billed[index] if index < len(billed) else None
        theirs = recomputed[index] if index < len(recomputed) else None
        if ours == theirs:
            continue
        differing += 1
        if differing > MAX_LINE_FINDINGS:
            continue
        shown = ours if isinstance(ours, dict) else theirs or {}
        record = {"line": index, **{k: shown.get(k) for k in _LINE_KEYS}}
        if ours is None:
            message = f"line {index} is missing from the bill; recomputed: {_short(theirs)}"
        elif theirs is None or not isinstance(ours, dict):
            message = f"line {index} is not in the recomputed bill: {_short(ours)}"
        else:
            fields = [
                f"{k}: bill {_short(ours.get(k))}, recomputed {_short(theirs.get(k))}"
                for k in sorted(set(ours) | set(theirs))
                if ours.get(k) != theirs.get(k)
            ]
            message = f"line {index} differs: " + "; ".join(fields)
        check.fail("bill_lines_mismatch", message, **record)
    if differing > MAX_LINE_FINDINGS:
        check.fail(
            "bill_lines_mismatch",
            f"{differing - MAX_LINE_FINDINGS} more lines differ",
            lines=differing,
        )


def _short(value: object, limit: int = 200) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."
