"""Fraud proofs: showing on chain that an anchored reading's signature is bad.

`ReadingLedger.proveBadReading` (contracts/interfaces/IReadingLedger.sol) is public: anyone, not
only the operator, may send an anchored reading with the bytes its meter signed, its signature and
its Merkle proof. The contract rebuilds the reading's version-2 leaf (which commits to the signed
bytes and the signature, so only the signature the operator anchored can be shown), checks it is
in the batch, looks up the key the MeterRegistry held for the meter at the reading's time and
checks the signature; a bad one marks the batch proven bad, and settlement never uses it again.

    claim = claim_for_reading(batch_id=7, canonical=..., signature=..., source="native",
                              raw=None, proof=[...], root=...)
    outcome = prove_bad_reading(chain, deployment.reading_ledger, claim)        # operator's sender
    outcome = prove_bad_reading(chain, deployment.reading_ledger, claim, sender=account)  # anyone

`ledger prove-bad-reading` (ledger/cli.py) and `ledger audit --watch` use these two functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric import utils
from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.logs import DISCARD

from ledger.anchoring.anchorer import ProofService
from ledger.anchoring.bundle import BundleItem, BundleReading
from ledger.anchoring.merkle import process_proof
from ledger.chain.client import Chain
from ledger.errors import LedgerError
from ledger.readings.native import (
    SIGNATURE_LENGTH,
    Reading,
    anchored_leaf,
    decode,
    reading_leaf,
)
from ledger.readings.ocmf.record import parse_ocmf
from ledger.readings.ocmf.verify import ocmf_signature_form
from ledger.store.database import Store
from ledger.store.readings import StoredReading


class BadReadingReason(IntEnum):
    """Why a reading was proven bad (`IReadingLedger.BadReadingReason`)."""

    NONE = 0
    BAD_SIGNATURE = 1
    NO_KEY_AT_TIME = 2
    SIGNED_BYTES_MISMATCH = 3
    MALFORMED_SIGNATURE = 4


class FraudProofError(LedgerError):
    """The reading cannot be put in a fraud proof: no form of its signature gives a leaf under
    its batch's root (the bundle does not hold what was anchored)."""

    code = "fraud_proof_not_in_batch"
    http_status = 422


@dataclass(frozen=True)
class BadReadingClaim:
    """What `proveBadReading` takes: an anchored reading with what its leaf commits to.

    Attributes:
        batch_id: The batch the reading is anchored in.
        reading: The reading's fields.
        signed_bytes: The exact bytes the meter signed (native: the canonical bytes; OCMF: the
            record's payload).
        signature_form: The signature in its fixed form (ECDSA r || s, Ed25519 64 bytes).
        proof: The leaf's Merkle proof in the batch.
    """

    batch_id: int
    reading: Reading
    signed_bytes: bytes
    signature_form: bytes
    proof: tuple[bytes, ...]

    @property
    def leaf(self) -> bytes:
        """The reading's version-2 leaf."""
        return anchored_leaf(self.reading.encode(), self.signed_bytes, self.signature_form)

    def arguments(self) -> tuple[Any, ...]:
        """The arguments of `proveBadReading`, in ABI order."""
        r = self.reading
        fields = (r.meter_id, r.seq, r.timestamp, r.import_wh, r.export_wh, r.status)
        return (self.batch_id, fields, self.signed_bytes, self.signature_form, list(self.proof))


@dataclass(frozen=True)
class FraudProofOutcome:
    """A fraud proof that was mined: the batch is proven bad from this transaction on."""

    batch_id: int
    reason: BadReadingReason
    transaction_hash: str
    gas_used: int


def _native_signature_forms(signature: bytes) -> list[bytes]:
    """The forms a stored native signature may have been anchored in: itself when 64 bytes
    (raw r || s, or Ed25519), and r || s of its DER reading when it is strict DER."""
    forms: list[bytes] = []
    if len(signature) == SIGNATURE_LENGTH:
        forms.append(signature)
    if signature[:1] == b"\x30":
        try:
            r, s = utils.decode_dss_signature(signature)
        except ValueError:
            return forms
        if utils.encode_dss_signature(r, s) == signature and r < 2**256 and s < 2**256:
            forms.append(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    return forms


def _commitment_candidates(
    canonical: bytes, signature: bytes, source: str, raw: bytes | None
) -> list[tuple[bytes, bytes]]:
    """(signed bytes, signature form) pairs a stored reading's leaf may commit to."""
    if source == "ocmf":
        if raw is None:
            raise FraudProofError("an OCMF reading needs its raw record")
        record = parse_ocmf(raw)
        return [(record.payload_bytes, ocmf_signature_form(record))]
    return [(bytes(canonical), form) for form in _native_signature_forms(signature)]


def candidate_leaves(
    canonical: bytes, signature: bytes | None, source: str, raw: str | bytes | None
) -> list[bytes]:
    """Every leaf a reading may be anchored under: its version-2 leaves (one per reading of its
    signature's bytes) and its version-1 leaf (batches anchored before version 2).

    For a verifier holding a reading, its signature and a Merkle proof: the proof verifies
    against the batch's root with one of these, or the reading is not in the batch. Trying the
    version-1 leaf too weakens nothing: its preimage (256 bytes) cannot be a version-2 one (320
    bytes), and the signature is checked off chain anyway.
    """
    leaves = [reading_leaf(canonical)]
    encoded = raw.encode() if isinstance(raw, str) else raw
    try:
        pairs = _commitment_candidates(canonical, signature or b"", source, encoded)
    except (LedgerError, ValueError):
        return leaves
    return [anchored_leaf(canonical, signed, form) for signed, form in pairs] + leaves


def commitments_for_leaf(
    canonical: bytes, signature: bytes, source: str, raw: bytes | None, leaf: bytes
) -> tuple[bytes, bytes] | None:
    """The (signed bytes, signature form) whose version-2 leaf is `leaf`, or None (a version-1
    leaf, or bytes that are not the ones anchored)."""
    try:
        candidates = _commitment_candidates(canonical, signature, source, raw)
    except (LedgerError, ValueError):
        return None
    for signed, form in candidates:
        if anchored_leaf(canonical, signed, form) == leaf:
            return signed, form
    return None


def leaf_commitments(reading: StoredReading) -> tuple[bytes, bytes]:
    """The (signed bytes, signature form) a stored reading's version-2 leaf commits to: the one
    candidate whose leaf is the stored leaf (a 64-byte native signature may also be strict DER).

    Raises:
        FraudProofError: No candidate gives the stored leaf (a version-1 leaf, or a changed row).
    """
    found = commitments_for_leaf(
        reading.canonical, reading.signature, reading.source, reading.raw, reading.leaf
    )
    if found is not None:
        return found
    raise FraudProofError(
        f"reading {reading.meter_id.hex()}/{reading.seq}: its stored leaf is not the version-2 "
        "leaf of its bytes and signature"
    )


def claim_for_reading(
    *,
    batch_id: int,
    canonical: bytes,
    signature: bytes,
    source: str,
    raw: bytes | None,
    proof: Sequence[bytes],
    root: bytes,
) -> BadReadingClaim:
    """The claim for a stored (or bundled) reading, in the form its batch's root holds.

    A native signature's form is read from the bytes (raw or DER); where both readings of the
    bytes are possible, the one whose leaf leads to `root` is taken, so no key is needed.

    Raises:
        FraudProofError: No form of the signature gives a leaf leading to `root` with `proof`.
    """
    reading = decode(canonical)
    for signed_bytes, form in _commitment_candidates(canonical, signature, source, raw):
        claim = BadReadingClaim(batch_id, reading, signed_bytes, form, tuple(proof))
        if process_proof(claim.leaf, proof) == root:
            return claim
    raise FraudProofError(
        f"reading {reading.meter_id.hex()}/{reading.seq}: no form of its signature gives a leaf "
        f"under the root of batch {batch_id} with the proof given"
    )


def prove_bad_reading(
    chain: Chain,
    reading_ledger: Contract,
    claim: BadReadingClaim,
    *,
    sender: LocalAccount | None = None,
) -> FraudProofOutcome:
    """Sends the fraud proof and returns what it proved.

    Args:
        chain: The chain; without `sender`, its operator account sends, through the operator's one
            transaction sender (no nonce race with the anchorer).
        reading_ledger: The ReadingLedger contract.
        claim: The anchored reading (`claim_for_reading`).
        sender: Any funded account: the function is public, an auditor needs no role.

    Raises:
        ContractRevert: Refused, by name: `ReadingLedgerReadingValid` (the signature verifies),
            `ReadingLedgerReadingNotInBatch`, `ReadingLedgerUnknownBatch`,
            `ReadingLedgerBatchAlreadyProvenBad`, `ReadingLedgerKeyNotCheckable` (Ed25519),
            `ReadingLedgerSignatureNotCheckable`. A refused proof mines nothing (the gas
            estimate refuses it first).
    """
    receipt = chain.transact(
        reading_ledger.functions.proveBadReading(*claim.arguments()), sender=sender
    )
    (event,) = reading_ledger.events.ReadingBatchProvenBad().process_receipt(
        receipt, errors=DISCARD
    )
    return FraudProofOutcome(
        batch_id=int(event["args"]["batchId"]),
        reason=BadReadingReason(int(event["args"]["reason"])),
        transaction_hash="0x" + bytes(receipt["transactionHash"]).hex(),
        gas_used=int(receipt["gasUsed"]),
    )


def claim_from_bundle(
    items: Iterable[BundleItem], *, batch_id: int, meter_id: bytes, seq: int, root: bytes
) -> BadReadingClaim:
    """The claim for reading (`meter_id`, `seq`) of batch `batch_id` in a reading bundle
    (`ledger.anchoring.bundle.read_bundle`), read line by line until it is found.

    Raises:
        FraudProofError: The bundle holds no such reading, or its leaf is not under `root`.
    """
    for item in items:
        if isinstance(item, BundleReading) and (item.batch_id, item.meter_id, item.seq) == (
            batch_id,
            meter_id,
            seq,
        ):
            raw = None if item.ocmf is None else item.ocmf.encode("utf-8", "surrogateescape")
            return claim_for_reading(
                batch_id=batch_id,
                canonical=item.canonical,
                signature=item.signature,
                source=item.source,
                raw=raw,
                proof=item.proof,
                root=root,
            )
    raise FraudProofError(
        f"the bundle holds no reading {seq} of meter 0x{meter_id.hex()} in batch {batch_id}"
    )


def claim_from_store(
    store: Store, *, batch_id: int, meter_id: bytes, seq: int, root: bytes
) -> BadReadingClaim:
    """The claim for a reading the gateway's database holds, with the proof of its batch.

    Raises:
        FraudProofError: No such reading stored in batch `batch_id`, or its leaf is not under
            `root`.
    """
    stored = store.reading(meter_id, seq)
    anchoring = None if stored is None else ProofService(store).anchoring(stored)
    if stored is None or anchoring is None or anchoring.batch.batch_id != batch_id:
        raise FraudProofError(
            f"the database holds no reading {seq} of meter 0x{meter_id.hex()} anchored in "
            f"batch {batch_id}"
        )
    return claim_for_reading(
        batch_id=batch_id,
        canonical=stored.canonical,
        signature=stored.signature,
        source=stored.source,
        raw=stored.raw,
        proof=anchoring.proof,
        root=root,
    )
