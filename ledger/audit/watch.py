"""`ledger audit --watch`: follow the chain's new batches, audit each as it is anchored, and prove
a bad reading on chain the moment one is found.

Each pass reads the chain's facts again, audits the batches anchored since the last pass (the
bundle of just those batches, from the gateway or the file), and for every reading the audit
finds unsigned by its meter's key (`PROVABLE`) builds the fraud proof from the bundle's line
(`ledger.readings.fraud_proof.claim_for_reading`: the signed bytes, the signature's anchored form
and the Merkle proof, checked against the chain's root) and sends `ReadingLedger.proveBadReading`
from the auditor's own account (`prove_bad_reading`). A batch proven bad once is not proven again;
a proof the contract refuses (an Ed25519 key it cannot check, say) is reported with the revert's
name. Without a key the watcher only reports what it would prove.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from eth_utils.address import to_checksum_address

from ledger.anchoring.bundle import BundleReading, parse_line
from ledger.audit.auditor import AuditOptions, bundle_source, run_audit
from ledger.audit.chain import ChainFacts
from ledger.audit.report import AuditReport
from ledger.chain.client import Chain, connect
from ledger.chain.compiler import compile_contracts
from ledger.errors import LedgerError
from ledger.readings.fraud_proof import claim_for_reading, prove_bad_reading

PROVABLE = frozenset(
    {
        "reading_signature_invalid",
        "reading_no_key_at_time",
        "reading_key_revoked",
        "reading_ocmf_mismatch",
    }
)
"""The audit's findings that `proveBadReading` can show on chain."""


@dataclass(frozen=True)
class ProofAttempt:
    """One fraud proof the watcher sent (or would have sent, without a key)."""

    batch_id: int
    leaf_index: int
    meter: str
    seq: int
    finding: str
    outcome: str
    """`proven` (mined), `refused` (`error` names the revert), `not_sent` (no key)."""
    transaction_hash: str | None = None
    gas_used: int | None = None
    reason: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class WatchPass:
    """What one pass audited and proved."""

    first_batch: int
    last_batch: int
    report: AuditReport | None
    proofs: tuple[ProofAttempt, ...]


class Watcher:
    """Follows the chain from `first_batch` on (see the module docstring)."""

    def __init__(
        self, options: AuditOptions, *, prover_key: str | None, first_batch: int = 1
    ) -> None:
        self.options = options
        self.next_batch = first_batch
        self._chain: Chain | None = None
        if prover_key is not None:
            self._chain = connect(options.rpc_url, prover_key)
            for artifact in compile_contracts().values():
                self._chain.learn_errors(artifact.abi)

    def run_once(self) -> WatchPass:
        """Audits the batches anchored since the last pass and proves what can be proven.

        Raises:
            AuditInputError, BundleError, ChainUnavailable: as `run_audit`.
        """
        facts = ChainFacts.read(self.options.rpc_url, self.options.deployment)
        last = max(facts.batches, default=0)
        first = self.next_batch
        if last < first:
            return WatchPass(first, last, None, ())
        options = replace(self.options, batches=(first, last), from_ts=None, to_ts=None)
        report = run_audit(options, facts=facts)
        proofs = [
            self._prove(options, facts, found.record, found.code)
            for found in report.errors
            if found.code in PROVABLE and found.record["batch_id"] not in facts.proven_bad
        ]
        self.next_batch = last + 1
        return WatchPass(first, last, report, tuple(proofs))

    def follow(self, poll_s: float, emit: Callable[[WatchPass], None]) -> None:
        """Passes every `poll_s` seconds until interrupted (Ctrl-C)."""
        while True:
            emit(self.run_once())
            time.sleep(poll_s)  # polling the chain for new batches

    def _prove(
        self, options: AuditOptions, facts: ChainFacts, record: dict[str, Any], finding: str
    ) -> ProofAttempt:
        batch_id, leaf_index = int(record["batch_id"]), int(record["leaf_index"])
        attempt = ProofAttempt(
            batch_id, leaf_index, str(record["meter"]), int(record["seq"]), finding, "not_sent"
        )
        if self._chain is None:
            return attempt
        if batch_id in facts.proven_bad:  # an earlier proof of this pass
            return replace(attempt, outcome="refused", error="ReadingLedgerBatchAlreadyProvenBad")
        reading = _bundle_reading(options, facts, batch_id, leaf_index)
        try:
            claim = claim_for_reading(
                batch_id=batch_id,
                canonical=reading.canonical,
                signature=reading.signature,
                source=reading.source,
                raw=None if reading.ocmf is None else reading.ocmf.encode(),
                proof=reading.proof,
                root=facts.batches[batch_id].root,
            )
            ledger = self._chain.w3.eth.contract(
                address=to_checksum_address(facts.addresses["ReadingLedger"]),
                abi=compile_contracts()["ReadingLedger"].abi,
            )
            outcome = prove_bad_reading(self._chain, ledger, claim)
        except LedgerError as error:
            name = getattr(error, "error_name", None) or error.code
            return replace(attempt, outcome="refused", error=f"{name}: {error}")
        facts.proven_bad[batch_id] = (reading.meter_id, reading.seq)
        return replace(
            attempt,
            outcome="proven",
            transaction_hash=outcome.transaction_hash,
            gas_used=outcome.gas_used,
            reason=outcome.reason.name.lower(),
        )


def _bundle_reading(
    options: AuditOptions, facts: ChainFacts, batch_id: int, leaf_index: int
) -> BundleReading:
    """The bundle's line of one reading (read again from the source: the audit keeps none)."""
    single = replace(options, batches=(batch_id, batch_id), from_ts=None, to_ts=None)
    with bundle_source(single, facts) as lines:
        for number, raw in enumerate(lines, start=1):
            if b'"reading"' not in raw:
                continue
            item = parse_line(number, raw)
            if isinstance(item, BundleReading) and (item.batch_id, item.leaf_index) == (
                batch_id,
                leaf_index,
            ):
                return item
    raise LedgerError(f"batch {batch_id} leaf {leaf_index} is no longer in the bundle")


def describe(attempt: ProofAttempt) -> str:
    """One line of the watcher's output about a proof."""
    where = (
        f"batch {attempt.batch_id} leaf {attempt.leaf_index} ({attempt.meter} seq {attempt.seq})"
    )
    if attempt.outcome == "proven":
        return f"PROVEN {where}: {attempt.reason}, tx {attempt.transaction_hash}"
    if attempt.outcome == "refused":
        return f"REFUSED {where}: {attempt.error}"
    return f"NOT SENT {where} ({attempt.finding}): no --prove-key-file"
