"""Settlement evidence: a stored reading with the Merkle proof of its anchored batch, in the
shape the contracts check (`AnchoredReading` and `BoundaryEvidence` in
contracts/interfaces/IEnergyMarket.sol).

The market settles trades with it; bills, complaints and the audit will show the same evidence
for the readings they rely on. Only final proofs count (`ProofService.proof`): a batch whose block
a reorganisation may still drop is not evidence yet.

A boundary's evidence is the first stored reading at or after the boundary time (within the
boundary window) and the reading before it (seq - 1), each anchored; for seq 0 the contract
ignores the previous reading, and the boundary reading is given twice.
"""

from __future__ import annotations

from collections.abc import Callable

from ledger.anchoring.anchorer import ProofService
from ledger.anchoring.merkle import keccak256
from ledger.errors import LedgerError
from ledger.store.database import Store
from ledger.store.readings import StoredReading

AnchoredReading = tuple[tuple[bytes, int, int, int, int, int], bytes, bytes, int, list[bytes]]
"""(reading fields (meter, seq, timestamp, import Wh, export Wh, status), keccak256 of the signed
bytes, keccak256 of the signature's fixed form, batch id, proof): what the version-2 leaf hashes."""

Commitments = Callable[[StoredReading], tuple[bytes, bytes]]
"""(signed bytes, signature form) of a stored reading, as its leaf commits to them
(`ledger.readings.fraud_proof.leaf_commitments`: this stage does not parse readings)."""
BoundaryEvidence = tuple[int, AnchoredReading, AnchoredReading]
"""(boundary time, the boundary reading, the reading before it)."""


class EvidenceUnavailable(LedgerError):
    """A boundary reading needed for settlement is not stored, or not anchored yet."""

    code = "evidence_unavailable"
    http_status = 409


class EvidenceInChallenge(EvidenceUnavailable):
    """A boundary reading's batch is still in its challenge period: settling now would revert
    (`EnergyMarketBatchInChallenge`), so nothing is sent."""

    code = "evidence_in_challenge"


class EvidenceProvenBad(EvidenceUnavailable):
    """A boundary reading's batch was proven bad on chain: the trade cannot settle from it and is
    refunded once its settlement window closes."""

    code = "evidence_proven_bad"


def anchored_reading(
    proofs: ProofService, reading: StoredReading, commitments: Commitments
) -> AnchoredReading:
    """The reading's `AnchoredReading` tuple.

    Raises:
        EvidenceUnavailable: the reading's batch is not anchored, or not final yet.
    """
    proof = proofs.proof(reading)
    if proof is None:
        raise EvidenceUnavailable(
            f"meter {meter_text(reading.meter_id)} reading {reading.seq} is not anchored yet"
        )
    fields = (
        reading.meter_id,
        reading.seq,
        reading.timestamp,
        reading.import_wh,
        reading.export_wh,
        reading.status,
    )
    signed, signature_form = commitments(reading)
    return (
        fields,
        keccak256(signed),
        keccak256(signature_form),
        proof.batch.batch_id,
        list(proof.proof),
    )


def boundary_evidence(
    store: Store,
    proofs: ProofService,
    meter_id: bytes,
    time: int,
    *,
    window_s: int,
    commitments: Commitments,
) -> BoundaryEvidence:
    """The `BoundaryEvidence` of meter `meter_id` at boundary `time`.

    Args:
        window_s: The market's boundary window: the boundary reading must be taken before
            `time + window_s`.

    Raises:
        EvidenceUnavailable: no stored reading in `[time, time + window_s)`, its predecessor
            (seq - 1) is missing, or either is not anchored (final) yet.
    """
    reading = store.first_reading_at_or_after(meter_id, time)
    if reading is None or reading.timestamp >= time + window_s:
        raise EvidenceUnavailable(
            f"meter {meter_text(meter_id)} has no stored reading within {window_s} s from "
            f"the boundary {time}"
        )
    anchored = anchored_reading(proofs, reading, commitments)
    if reading.seq == 0:
        return (time, anchored, anchored)  # the previous reading is ignored for seq 0
    before = store.reading(meter_id, reading.seq - 1)
    if before is None:
        raise EvidenceUnavailable(
            f"meter {meter_text(meter_id)}: reading {reading.seq - 1}, the one before "
            f"the boundary reading {reading.seq}, is not stored (a gap)"
        )
    return (time, anchored, anchored_reading(proofs, before, commitments))


def meter_text(meter_id: bytes) -> str:
    """A meter id as its printable serial, or 0x-hex when it is not printable."""
    text = meter_id.rstrip(b"\x00")
    if text and all(32 <= b < 127 for b in text):
        return text.decode()
    return "0x" + meter_id.hex()
