"""Response and request bodies, split by direction (`...Public` goes out)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ChainHealth(BaseModel):
    chain_id: int
    rpc_url: str
    latest_block: int
    managed: str | None = Field(description="ganache/anvil when the gateway started the chain")
    ok: bool


class DatabaseHealth(BaseModel):
    backend: str
    path: str
    journal_mode: str
    synchronous: str
    schema_version: int
    ok: bool


class HealthPublic(BaseModel):
    status: str
    chain: ChainHealth
    contracts: dict[str, str]
    database: DatabaseHealth


class KeyEpochPublic(BaseModel):
    epoch: int
    algorithm: str = Field(description="p256, ed25519 or secp256k1")
    public_key: str = Field(description="0x-hex; SEC1 uncompressed for ECDSA, raw for Ed25519")
    valid_from: int
    valid_from_utc: str
    revoked_at: int | None
    revoked_at_utc: str | None


class MeterPublic(BaseModel):
    meter_id: str
    owner: str
    keys: list[KeyEpochPublic]


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable error code")
    message: str


class ErrorPublic(BaseModel):
    error: ErrorDetail


class ReadingIn(BaseModel):
    """One native signed reading as a meter sends it (docs/reading-format.md)."""

    model_config = ConfigDict(extra="forbid")

    meter_id: str = Field(
        min_length=1,
        max_length=66,
        description="the meter serial (1-32 printable bytes) or 0x + 64 hex digits; must be the "
        "meterId inside `canonical`",
    )
    canonical: str = Field(
        max_length=2048, description="0x + hex of the 256 canonical bytes (512 hex digits)"
    )
    signature: str = Field(
        max_length=512, description="0x + hex: raw r || s / R || S (64 bytes), or DER for ECDSA"
    )


class ReadingBatchIn(BaseModel):
    """Several readings in one request (at most LEDGER_MAX_BATCH, else 413 batch_too_large)."""

    model_config = ConfigDict(extra="forbid")

    readings: list[ReadingIn]


class ReadingReceipt(BaseModel):
    receipt_id: str
    meter_id: str
    seq: int
    timestamp: int = Field(description="the reading's time, Unix seconds")
    leaf: str = Field(description="0x + hex of the Merkle leaf keccak256(keccak256(canonical))")
    key_epoch: int = Field(description="the MeterRegistry key epoch the signature verified under")
    received_at: str = Field(description="when the gateway first stored it, ISO 8601 UTC")


class ReadingResult(BaseModel):
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


class StoredReadingPublic(BaseModel):
    meter_id: str
    seq: int
    timestamp: int
    import_wh: int = Field(description="OBIS 1-0:1.8.0, cumulative Wh")
    export_wh: int = Field(description="OBIS 1-0:2.8.0, cumulative Wh")
    status: int
    canonical: str = Field(description="0x + hex of the exact canonical bytes received")
    signature: str = Field(description="0x + hex of the signature received first")
    key_epoch: int
    leaf: str
    receipt: ReadingReceipt
    batch_id: int | None = Field(description="ReadingLedger batch; null until anchored")
