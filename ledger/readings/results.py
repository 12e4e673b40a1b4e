"""The result of each submitted reading: what a client sends (`Submission`, `OcmfSubmission`),
the stable codes of a rejection (`Rejection`, in the order the checks run: see
`ledger.readings.ingest`), and what the gateway answers (`IngestResult`, `Receipt`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ledger.meters.registry import meter_id_text
from ledger.store.readings import StoredReading


class Rejection(StrEnum):
    """Stable codes of a rejected reading, in the order the checks of a native reading run;
    the `OCMF_*` codes are those of an OCMF record's own checks, which come first for it (see
    the module docstring)."""

    MALFORMED_READING = "malformed_reading"
    METER_MISMATCH = "meter_mismatch"
    WRONG_CHAIN = "wrong_chain"
    CLOCK_SKEW = "clock_skew"
    UNKNOWN_METER = "unknown_meter"
    NO_KEY_AT_TIME = "no_key_at_time"
    KEY_REVOKED = "key_revoked"
    BAD_SIGNATURE = "bad_signature"
    CONFLICTING_READING = "conflicting_reading"
    SEQ_JUMP_TOO_LARGE = "seq_jump_too_large"
    REGISTER_DECREASED = "register_decreased"
    TIMESTAMP_OUT_OF_ORDER = "timestamp_out_of_order"
    # OCMF records only: the codes of `ledger.readings.ocmf`'s errors (`OcmfError.code`).
    OCMF_MALFORMED = "ocmf_malformed"
    OCMF_BAD_VALUE = "ocmf_bad_value"
    OCMF_UNMAPPABLE = "ocmf_unmappable"
    OCMF_UNSUPPORTED_ALGORITHM = "ocmf_unsupported_algorithm"
    OCMF_UNSUPPORTED_CURVE = "ocmf_unsupported_curve"
    # Retryable: the chain is unreachable and this meter's keys were never read. Send it again.
    KEYS_UNAVAILABLE = "keys_unavailable"


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Submission:
    """One reading as a client sends it: meter id, canonical bytes and signature in hex."""

    meter_id: str
    canonical: str
    signature: str


@dataclass(frozen=True)
class OcmfSubmission:
    """One OCMF record as a client sends it: the meter id and the whole `OCMF|..|..` text."""

    meter_id: str
    ocmf: str


@dataclass(frozen=True)
class Receipt:
    """What the gateway gives back for a stored reading."""

    receipt_id: str
    meter_id: str
    seq: int
    timestamp: int
    leaf: bytes
    key_epoch: int
    received_at: str

    @classmethod
    def of(cls, stored: StoredReading) -> Receipt:
        return cls(
            receipt_id=stored.receipt_id,
            meter_id=meter_id_text(stored.meter_id),
            seq=stored.seq,
            timestamp=stored.timestamp,
            leaf=stored.leaf,
            key_epoch=stored.key_epoch,
            received_at=stored.received_at,
        )


@dataclass(frozen=True)
class IngestResult:
    """The outcome for one reading of a request."""

    index: int
    status: Outcome
    code: Rejection | None
    message: str
    meter_id: str | None
    seq: int | None
    receipt: Receipt | None = None


@dataclass(frozen=True)
class Rejecter:
    """Builds the rejected result of one submission; by default it names the claimed meter."""

    index: int
    claimed_meter: str

    def __call__(
        self,
        code: Rejection,
        message: str,
        meter: str | None = None,
        seq: int | None = None,
    ) -> IngestResult:
        named = self.claimed_meter if meter is None else meter
        return IngestResult(self.index, Outcome.REJECTED, code, message, named, seq)
