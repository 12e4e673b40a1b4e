"""Readings: what a meter submits (native or OCMF, one or a batch), the result of each, and a
stored reading with its receipt and Merkle proof."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    AliasPath,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
)

from api.schemas.common import Derived, Hex, MeterIdText
from ledger.anchoring.anchorer import ReadingProof
from ledger.readings.results import IngestResult, Outcome
from ledger.store.readings import StoredReading

# --- in ----------------------------------------------------------------------------------------


def _submitted_meter_id(must_be: str) -> Any:
    """The `meter_id` field of a submitted reading: a serial or its bytes32 hex."""
    return Field(
        min_length=1,
        max_length=66,
        description="the meter serial (1-32 printable bytes) or 0x + 64 hex digits; must be "
        + must_be,
    )


class ReadingIn(BaseModel):
    """One native signed reading as a meter sends it (docs/reading-format.md)."""

    model_config = ConfigDict(extra="forbid")

    meter_id: str = _submitted_meter_id("the meterId inside `canonical`")
    canonical: str = Field(
        max_length=2048, description="0x + hex of the 256 canonical bytes (512 hex digits)"
    )
    signature: str = Field(
        max_length=512, description="0x + hex: raw r || s / R || S (64 bytes), or DER for ECDSA"
    )


OCMF_MAX_LENGTH = 16384
"""The longest OCMF record accepted, in characters (a record with one reading is ~1 KB)."""


class OcmfReadingIn(BaseModel):
    """One OCMF record as a charger or its meter signed it (docs/ocmf.md)."""

    model_config = ConfigDict(extra="forbid")

    meter_id: str = _submitted_meter_id("the record's meter serial `MS`")
    ocmf: str = Field(
        min_length=1,
        max_length=OCMF_MAX_LENGTH,
        description="the whole record `OCMF|{payload}|{signature}`, exactly as signed: the "
        "signature is checked over the payload's bytes (UTF-8) as they arrive here",
    )


def _reading_kind(value: Any) -> str | None:
    # An item is OCMF when it has an `ocmf` field. None (not an object) fails validation.
    if isinstance(value, dict):
        return "ocmf" if "ocmf" in value else "native"
    if isinstance(value, BaseModel):
        return "ocmf" if isinstance(value, OcmfReadingIn) else "native"
    return None


ReadingItemIn = Annotated[
    Annotated[ReadingIn, Tag("native")] | Annotated[OcmfReadingIn, Tag("ocmf")],
    Discriminator(_reading_kind),
]
"""One reading of a request: native (`canonical` + `signature`) or OCMF (`ocmf`)."""


class ReadingBatchIn(BaseModel):
    """Several readings in one request (at most LEDGER_MAX_BATCH, else 413 batch_too_large);
    native and OCMF readings may be mixed."""

    model_config = ConfigDict(extra="forbid")

    readings: list[ReadingItemIn]


def _request_kind(value: Any) -> str | None:
    if isinstance(value, dict) and "readings" in value:
        return "batch"
    if isinstance(value, ReadingBatchIn):
        return "batch"
    return _reading_kind(value)


ReadingsRequestIn = Annotated[
    Annotated[ReadingIn, Tag("native")]
    | Annotated[OcmfReadingIn, Tag("ocmf")]
    | Annotated[ReadingBatchIn, Tag("batch")],
    Discriminator(_request_kind),
]
"""The body of `POST /v1/readings`: one native reading, one OCMF record, or a batch."""


# --- out ---------------------------------------------------------------------------------------


class ReadingReceipt(BaseModel):
    """From a `Receipt`, or straight from the `StoredReading` it is the receipt of."""

    model_config = ConfigDict(from_attributes=True)

    receipt_id: str = Field(
        description="the receipt's id, unique: 32 hex digits, a UUID version 7 (RFC 9562) whose "
        "first 12 digits are the receipt's Unix time in milliseconds (receipts issued before "
        "2026-11-27: version 4, random)"
    )
    meter_id: MeterIdText
    seq: int
    timestamp: int = Field(description="the reading's time, Unix seconds")
    leaf: Hex = Field(
        description="0x + hex of the Merkle leaf: version 2 (the fields, the signed bytes' and "
        "the signature's hashes; docs/reading-format.md), or keccak256(keccak256(canonical)) in "
        "a batch anchored before it"
    )
    key_epoch: int = Field(description="the MeterRegistry key epoch the signature verified under")
    received_at: str = Field(description="when the gateway first stored it, ISO 8601 UTC")


class ReadingResult(BaseModel):
    """From an `IngestResult`."""

    model_config = ConfigDict(from_attributes=True)

    index: int = Field(description="position of the reading in the request")
    status: Literal["accepted", "duplicate", "rejected"]
    code: str | None = Field(description="stable rejection code; null unless rejected")
    message: str
    meter_id: str | None = Field(description="the reading's meter, once its bytes decode")
    seq: int | None
    receipt: ReadingReceipt | None = Field(
        description="for accepted readings, and the original one for duplicates"
    )


class ReadingResultsPublic(BaseModel):
    results: list[ReadingResult]
    accepted: int
    duplicates: int
    rejected: int

    @classmethod
    def of(cls, results: Sequence[IngestResult]) -> ReadingResultsPublic:
        """The answer to a submission: each reading's result, in order, and the counts."""
        return cls(
            results=[ReadingResult.model_validate(result) for result in results],
            accepted=sum(r.status is Outcome.ACCEPTED for r in results),
            duplicates=sum(r.status is Outcome.DUPLICATE for r in results),
            rejected=sum(r.status is Outcome.REJECTED for r in results),
        )


def readings_answer(results: Sequence[IngestResult]) -> bytes:
    """The JSON of `ReadingResultsPublic.of(results)`, built straight from the results.

    The route's answer: one model per reading (and its validation) cost several times the
    encoding itself at thousands of readings a request. The models above still describe the
    answer in the OpenAPI document; tests/unit/api/test_readings_answer.py holds the two to the
    same JSON (non-ASCII text is escaped as `\\uXXXX`, which JSON reads as the same text).
    """
    accepted = duplicates = rejected = 0
    items: list[dict[str, Any]] = []
    append = items.append
    for result in results:
        status = result.status
        if status is Outcome.ACCEPTED:
            accepted += 1
        elif status is Outcome.DUPLICATE:
            duplicates += 1
        else:
            rejected += 1
        receipt = result.receipt
        append(
            {
                "index": result.index,
                "status": status.value,
                "code": None if result.code is None else result.code.value,
                "message": result.message,
                "meter_id": result.meter_id,
                "seq": result.seq,
                "receipt": None
                if receipt is None
                else {
                    "receipt_id": receipt.receipt_id,
                    "meter_id": receipt.meter_id,
                    "seq": receipt.seq,
                    "timestamp": receipt.timestamp,
                    "leaf": "0x" + receipt.leaf.hex(),
                    "key_epoch": receipt.key_epoch,
                    "received_at": receipt.received_at,
                },
            }
        )
    answer = {
        "results": items,
        "accepted": accepted,
        "duplicates": duplicates,
        "rejected": rejected,
    }
    return json.dumps(answer, separators=(",", ":")).encode()


def _batch(field: str) -> Any:
    """A `ReadingProof` keeps the batch's own fields in its `batch` (a `BatchRecord`)."""
    return AliasChoices(field, AliasPath("batch", field))


class ReadingAnchorPublic(BaseModel):
    """Where a reading is anchored, with the proof `ReadingLedger.verifyReading` accepts.

    From a `ReadingProof`."""

    model_config = ConfigDict(from_attributes=True)

    batch_id: int = Field(validation_alias=_batch("batch_id"))
    status: str = Field(validation_alias=_batch("status"), description="'anchored'")
    root: Hex = Field(
        validation_alias=_batch("root"),
        description="0x + hex of the batch's Merkle root, as ReadingLedger holds it",
    )
    leaf_index: int = Field(description="position of the reading's leaf in the batch")
    proof: list[Hex] = Field(description="sibling hashes from the leaf up to the root")
    tx_hash: Hex | None = Field(
        validation_alias=_batch("tx_hash"), description="the anchoring transaction"
    )
    block_number: int | None = Field(validation_alias=_batch("block_number"))
    anchored_at: str | None = Field(
        validation_alias=_batch("anchored_at"),
        description="when the gateway saw the batch anchored (UTC)",
    )
    confirmations: int | None = Field(
        description="blocks on top of the anchoring block now; null if the chain did not answer"
    )
    final: bool = Field(
        description="true once the batch was seen LEDGER_CONFIRMATIONS deep on the canonical "
        "chain; until then a reorganisation may drop it and the gateway anchors it again"
    )
    final_at: str | None = Field(
        validation_alias=_batch("final_at"),
        description="when the gateway saw the batch final (UTC)",
    )


def _text(value: Any) -> Any:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


class StoredReadingPublic(BaseModel):
    """From a `StoredReading` (`of` adds its receipt and its anchor)."""

    model_config = ConfigDict(from_attributes=True)

    meter_id: MeterIdText
    seq: int
    timestamp: int
    import_wh: int = Field(description="OBIS 1-0:1.8.0, cumulative Wh")
    export_wh: int = Field(description="OBIS 1-0:2.8.0, cumulative Wh")
    status: int
    canonical: Hex = Field(description="0x + hex of the exact canonical bytes received")
    signature: Hex = Field(description="0x + hex of the signature received first")
    source: str = Field(description="native, or ocmf (then `raw` is the record as received)")
    raw: Annotated[str | None, BeforeValidator(_text)] = Field(
        description="OCMF: the whole `OCMF|{payload}|{signature}` record as received; its "
        "signature signs the payload bytes inside it"
    )
    key_epoch: int
    leaf: Hex
    receipt: ReadingReceipt
    batch_id: int | None = Field(
        description="ReadingLedger batch the reading is assigned to; null while pending"
    )
    anchor: ReadingAnchorPublic | None = Field(
        description="batch, Merkle proof and transaction; null until the batch is anchored"
    )

    @classmethod
    def of(cls, stored: StoredReading, anchor: ReadingProof | None) -> StoredReadingPublic:
        """A stored reading with its receipt (read from the same row) and where it is anchored."""
        return cls.model_validate(Derived(stored, receipt=stored, anchor=anchor))
