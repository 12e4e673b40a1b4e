"""Tariffs on record, issuing runs and bills.

A bill's document is the canonical JSON whose hash is anchored (docs/bills.md); it is passed
through as the object it is, field for field, so a client can rebuild its bytes and hash.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_HASH_PATTERN = r"^0x[0-9a-fA-F]{64}$"
_ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
_PERIOD_PATTERN = r"^[0-9]{4}-[0-9]{2}$"

# --- in ----------------------------------------------------------------------------------------


class TariffIn(BaseModel):
    """A tariff file to publish (docs/bills.md, "Tariff file")."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        min_length=1,
        max_length=65_536,
        description="the TOML tariff file, exactly; its keccak256 is the tariff's hash",
    )
    valid_from: int | None = Field(
        default=None,
        ge=0,
        lt=2**64,
        description="Unix time from which the tariff may be used; default: 60 s after the "
        "chain's latest block time (never in the past)",
    )


class TariffAssignmentIn(BaseModel):
    """Which published tariff a customer is billed with, from when."""

    model_config = ConfigDict(extra="forbid")

    tariff_hash: str = Field(pattern=_HASH_PATTERN, description="a published tariff's hash")
    valid_from: int | None = Field(
        default=None,
        ge=0,
        lt=2**64,
        description="Unix time; default: 60 s after the chain's latest block time, or the "
        "tariff's own valid-from if later. Must be after the customer's previous assignment.",
    )


class BillRunIn(BaseModel):
    """The period of an issuing run: a calendar month, or a range of Unix times."""

    model_config = ConfigDict(extra="forbid")

    period: str | None = Field(
        default=None,
        pattern=_PERIOD_PATTERN,
        description="YYYY-MM: that month in LEDGER_BILLING_TIME_ZONE",
    )
    period_start: int | None = Field(default=None, ge=0, lt=2**63, description="Unix time")
    period_end: int | None = Field(default=None, ge=0, lt=2**63, description="Unix time")


# --- out ---------------------------------------------------------------------------------------


class ChainWritePublic(BaseModel):
    transaction_hash: str
    block_number: int


class TariffPublishedPublic(ChainWritePublic):
    tariff_hash: str
    name: str
    valid_from: int


class TariffAssignedPublic(ChainWritePublic):
    customer: str
    tariff_hash: str
    valid_from: int


class TariffPublic(BaseModel):
    tariff_hash: str
    valid_from: int = Field(description="Unix time from which it may be used (on chain)")
    block_number: int = Field(description="the block that published it")
    name: str | None = Field(description="its name, when this gateway holds its text")
    text: str | None = Field(description="the file, when this gateway holds it")


class TariffListPublic(BaseModel):
    tariffs: list[TariffPublic]


class TariffAssignmentPublic(BaseModel):
    tariff_hash: str
    valid_from: int


class TariffAssignmentListPublic(BaseModel):
    customer: str
    assignments: list[TariffAssignmentPublic]


class SkippedCustomerPublic(BaseModel):
    customer: str
    code: str
    message: str


class BillRunPublic(BaseModel):
    """What an issuing run did: its bills and the root's transaction."""

    period_start: int
    period_end: int
    run_id: int | None = Field(description="null: nothing new to issue")
    issued: int
    corrections: int
    unchanged: int
    bills: list[str] = Field(description="hashes of the bills issued by this run")
    corrected_bills: list[str] = Field(description="those of them that replace a bill")
    skipped: list[SkippedCustomerPublic]
    resumed_run_id: int | None = Field(description="a run a crash left open, finished first")
    transaction_hash: str | None
    block_number: int | None


class BillAnchorPublic(BaseModel):
    run_id: int
    leaf_index: int
    root: str | None
    transaction_hash: str | None
    block_number: int | None
    proof: list[str] = Field(description="Merkle proof of the bill's leaf in the run's root")


class BillPublic(BaseModel):
    """A bill: its anchored document, hash, proof and correction links."""

    bill_hash: str
    customer: str
    period_start: int
    period_end: int
    total_minor: int
    estimated: bool = Field(description="some line is estimated (a correction will follow)")
    status: str = Field(description="`anchored`, or `anchoring` while its root is being sent")
    current: bool = Field(description="false once a correction replaced it")
    replaces: str | None
    replaced_by: str | None
    anchor: BillAnchorPublic
    document: dict[str, Any] = Field(description="the bill document (docs/bills.md)")


class BillListPublic(BaseModel):
    customer: str
    bills: list[BillPublic]


class BillEvidencePublic(BaseModel):
    """Everything `ledger verify-bill` checks against the chain (docs/bills.md)."""

    model_config = ConfigDict(extra="allow")

    format: str
    bill: dict[str, Any]
    bill_hash: str
    anchor: dict[str, Any]
    contracts: dict[str, str]
    tariffs: dict[str, str]
    readings: list[dict[str, Any]]
    trades: list[int]
