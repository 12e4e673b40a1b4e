"""Response and request bodies, split by direction (`...Public` goes out)."""

from __future__ import annotations

from pydantic import BaseModel, Field


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
