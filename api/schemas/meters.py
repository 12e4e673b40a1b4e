"""Meters: a meter's owner and key history, and the registrar's changes to them."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field

from api.schemas.common import Derived, Hex
from api.schemas.readings import StoredReadingPublic
from ledger.meters.keys import KeyAlgorithm
from ledger.meters.registry import LATEST_UTC_TIME, MeterView, utc_text

# --- in ----------------------------------------------------------------------------------------


_PUBLIC_KEY_DESCRIPTION = (
    "PEM SubjectPublicKeyInfo (-----BEGIN PUBLIC KEY-----); or hex (0x optional) or base64 of: "
    "DER SubjectPublicKeyInfo, a SEC1 point (04 x y, or compressed 02/03 x), raw x||y (64 bytes, "
    "with `algorithm`), or the raw 32-byte Ed25519 key. Stored as SEC1 uncompressed or raw "
    "Ed25519. Never a private key: it does not leave the meter."
)
_ALGORITHM_DESCRIPTION = (
    "the key's algorithm; must match the key when the key says it (PEM, DER); a SEC1 point "
    "without it is read as p256, a 32-byte key as ed25519; raw x||y needs it"
)


class MeterRegisterIn(BaseModel):
    """A new meter and its first key (registrar only)."""

    model_config = ConfigDict(extra="forbid")

    meter_id: str = Field(
        min_length=1,
        max_length=66,
        pattern=r"^(0x[0-9a-fA-F]{64}|[^\x00-\x1f\x7f]{1,32})$",
        description="the meter serial (1-32 printable bytes) or 0x + 64 hex digits",
    )
    owner: str = Field(
        pattern=r"^0x[0-9a-fA-F]{40}$",
        description="the owner's account address (a mixed-case one must be its checksum form)",
    )
    algorithm: Literal["p256", "ed25519", "secp256k1"] | None = Field(
        default=None, description=_ALGORITHM_DESCRIPTION
    )
    public_key: str = Field(min_length=1, max_length=4096, description=_PUBLIC_KEY_DESCRIPTION)
    valid_from: int | None = Field(
        default=None,
        ge=0,
        le=LATEST_UTC_TIME,
        description="Unix time (s) the key is valid from: may be far in the past (a meter, or a "
        "record being imported, older than its registration), at most about ten years ahead "
        "(`invalid_meter` beyond); default: now",
    )


class MeterRotateIn(BaseModel):
    """A meter's next key (registrar only)."""

    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["p256", "ed25519", "secp256k1"] | None = Field(
        default=None, description=_ALGORITHM_DESCRIPTION
    )
    public_key: str = Field(min_length=1, max_length=4096, description=_PUBLIC_KEY_DESCRIPTION)
    valid_from: int | None = Field(
        default=None,
        ge=0,
        le=LATEST_UTC_TIME,
        description="Unix time (s) the new key takes over; never in the past, after the "
        "previous key's start, at most about ten years ahead; default: a minute from now",
    )


class MeterRevokeIn(BaseModel):
    """A revocation, optionally from the time the key was compromised (registrar only)."""

    model_config = ConfigDict(extra="forbid")

    compromised_since: int | None = Field(
        default=None,
        ge=0,
        lt=2**64,
        description="Unix time (s) since which the key is known or feared stolen: readings of "
        "the key timestamped from then on are refused, and those already accepted are listed "
        "as suspect. Between the key's valid_from and now; default: now",
    )


# --- out ---------------------------------------------------------------------------------------


def _label(value: Any) -> Any:
    return value.label if isinstance(value, KeyAlgorithm) else value


def _unless_zero(value: Any) -> Any:
    # The registry's 0 means "not revoked".
    return None if value == 0 else value


# A `KeyEpochView` has no UTC texts: they are read from the Unix time beside them.


def _utc(value: Any) -> Any:
    return utc_text(value) if isinstance(value, int) else value


def _revoked_utc(value: Any) -> Any:
    return (utc_text(value) if value else None) if isinstance(value, int) else value


class KeyEpochPublic(BaseModel):
    """From a `KeyEpochView`; the UTC texts are derived from its Unix times."""

    model_config = ConfigDict(from_attributes=True)

    epoch: int = Field(validation_alias=AliasChoices("epoch", "index"))
    algorithm: Annotated[str, BeforeValidator(_label)] = Field(
        description="p256, ed25519 or secp256k1"
    )
    public_key: Hex = Field(description="0x-hex; SEC1 uncompressed for ECDSA, raw for Ed25519")
    valid_from: int = Field(description="Unix time (s), any uint64 the registry holds")
    valid_from_utc: Annotated[str | None, BeforeValidator(_utc)] = Field(
        validation_alias=AliasChoices("valid_from_utc", "valid_from"),
        description="ISO 8601 UTC; null for a time after 9999-12-31T23:59:59Z",
    )
    revoked_at: Annotated[int | None, BeforeValidator(_unless_zero)] = Field(
        description="Unix time (s) from which the key is refused: the revocation's block time or "
        "the compromise time given; null while not revoked"
    )
    revoked_at_utc: Annotated[str | None, BeforeValidator(_revoked_utc)] = Field(
        validation_alias=AliasChoices("revoked_at_utc", "revoked_at")
    )


class MeterPublic(BaseModel):
    """From a `MeterView`."""

    model_config = ConfigDict(from_attributes=True)

    meter_id: str
    owner: str
    keys: list[KeyEpochPublic] = Field(validation_alias=AliasChoices("keys", "epochs"))


class MeterChangePublic(MeterPublic):
    """The meter's owner and key history right after a registrar transaction."""

    transaction_hash: Hex = Field(description="0x + hex of the MeterRegistry transaction")
    block_number: int = Field(description="the block that holds it")

    @classmethod
    def of(cls, meter: MeterView, receipt: Any, **extra: object) -> Self:
        """The meter as read after the transaction of `receipt` (a web3 receipt); `extra` for
        the fields a subclass adds."""
        return cls.model_validate(
            Derived(
                meter,
                transaction_hash=receipt["transactionHash"],
                block_number=receipt["blockNumber"],
                **extra,
            )
        )


class MeterRevokePublic(MeterChangePublic):
    """The meter right after a revocation, and how many accepted readings it puts in doubt."""

    suspect_readings: int = Field(
        description="stored readings signed under a revoked key at or after its revocation "
        "(GET /v1/meters/{meter_id}/suspect-readings lists them)"
    )


class SuspectReadingsPublic(BaseModel):
    """Accepted readings of a meter timestamped at or after the revocation of their key."""

    meter_id: str
    suspect_count: int = Field(description="all of them; `readings` is one page, by seq")
    readings: list[StoredReadingPublic]
