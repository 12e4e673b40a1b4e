"""Response and request bodies, split by direction (`...Public` goes out)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag


class ChainHealth(BaseModel):
    chain_id: int
    rpc_url: str
    latest_block: int
    managed: str | None = Field(description="ganache/anvil when the gateway started the chain")
    ok: bool


class DatabaseHealth(BaseModel):
    backend: str = Field(description="sqlite or postgresql")
    path: str | None = Field(default=None, description="SQLite: the database file")
    journal_mode: str | None = Field(default=None, description="SQLite: wal")
    synchronous: str | None = Field(default=None, description="SQLite: FULL")
    url: str | None = Field(default=None, description="PostgreSQL: the URL, password hidden")
    synchronous_commit: str | None = Field(default=None, description="PostgreSQL: on")
    fsync: str | None = Field(default=None, description="PostgreSQL: on")
    reconnects: int | None = Field(
        default=None, description="PostgreSQL: connections replaced since start (server restarts)"
    )
    schema_version: int


class AnchoringHealth(BaseModel):
    enabled: bool
    state: str = Field(
        description="starting, idle, anchoring, standby (another gateway holds the anchoring "
        "lease), chain_unavailable, store_unavailable, stuck (needs an operator) or disabled"
    )
    last_error: str | None
    pending_readings: int = Field(description="stored readings in no batch yet")
    unanchored_batches: int = Field(
        description="batch intents committed but not yet seen anchored on chain"
    )
    unfinal_batches: int = Field(
        description="batches anchored but not yet LEDGER_CONFIRMATIONS deep (proofs not final)"
    )
    last_anchored_batch: int | None
    confirmations: int = Field(description="LEDGER_CONFIRMATIONS: blocks on top before final")


class HealthPublic(BaseModel):
    status: str
    chain: ChainHealth
    contracts: dict[str, str]
    database: DatabaseHealth
    anchoring: AnchoringHealth


class KeyEpochPublic(BaseModel):
    epoch: int
    algorithm: str = Field(description="p256, ed25519 or secp256k1")
    public_key: str = Field(description="0x-hex; SEC1 uncompressed for ECDSA, raw for Ed25519")
    valid_from: int = Field(description="Unix time (s), any uint64 the registry holds")
    valid_from_utc: str | None = Field(
        description="ISO 8601 UTC; null for a time after 9999-12-31T23:59:59Z"
    )
    revoked_at: int | None = Field(
        description="Unix time (s) from which the key is refused: the revocation's block time or "
        "the compromise time given; null while not revoked"
    )
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


class ReadingAnchorPublic(BaseModel):
    """Where a reading is anchored, with the proof `ReadingLedger.verifyReading` accepts."""

    batch_id: int
    status: str = Field(description="'anchored'")
    root: str = Field(description="0x + hex of the batch's Merkle root, as ReadingLedger holds it")
    leaf_index: int = Field(description="position of the reading's leaf in the batch")
    proof: list[str] = Field(description="sibling hashes from the leaf up to the root")
    tx_hash: str | None = Field(description="the anchoring transaction")
    block_number: int | None
    anchored_at: str | None = Field(description="when the gateway saw the batch anchored (UTC)")
    confirmations: int | None = Field(
        description="blocks on top of the anchoring block now; null if the chain did not answer"
    )
    final: bool = Field(
        description="true once the batch was seen LEDGER_CONFIRMATIONS deep on the canonical "
        "chain; until then a reorganisation may drop it and the gateway anchors it again"
    )
    final_at: str | None = Field(description="when the gateway saw the batch final (UTC)")


class StoredReadingPublic(BaseModel):
    meter_id: str
    seq: int
    timestamp: int
    import_wh: int = Field(description="OBIS 1-0:1.8.0, cumulative Wh")
    export_wh: int = Field(description="OBIS 1-0:2.8.0, cumulative Wh")
    status: int
    canonical: str = Field(description="0x + hex of the exact canonical bytes received")
    signature: str = Field(description="0x + hex of the signature received first")
    source: str = Field(description="native, or ocmf (then `raw` is the record as received)")
    raw: str | None = Field(
        description="OCMF: the whole `OCMF|{payload}|{signature}` record as received; its "
        "signature signs the payload bytes inside it"
    )
    key_epoch: int
    leaf: str
    receipt: ReadingReceipt
    batch_id: int | None = Field(
        description="ReadingLedger batch the reading is assigned to; null while pending"
    )
    anchor: ReadingAnchorPublic | None = Field(
        description="batch, Merkle proof and transaction; null until the batch is anchored"
    )


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
_LATEST_UTC_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z (ledger.meters.registry.LATEST_UTC_TIME)


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
        le=_LATEST_UTC_TIME,
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
        le=_LATEST_UTC_TIME,
        description="Unix time (s) the new key takes over; never in the past, after the "
        "previous key's start, at most about ten years ahead; default: a few seconds from now",
    )


class MeterChangePublic(MeterPublic):
    """The meter's owner and key history right after a registrar transaction."""

    transaction_hash: str = Field(description="0x + hex of the MeterRegistry transaction")
    block_number: int = Field(description="the block that holds it")


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


# --- P2P market -------------------------------------------------------------------------------

_ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
_SIGNATURE_PATTERN = r"^0x[0-9a-fA-F]{130}$"


def _address(role: str) -> Any:
    return Field(pattern=_ADDRESS_PATTERN, description=f"the {role}'s account, 0x + 40 hex digits")


def _signature(what: str) -> Any:
    return Field(
        pattern=_SIGNATURE_PATTERN,
        description=f"0x + 65 bytes r || s || v: the EIP-712 signature of the {what}",
    )


def _market_meter_id(role: str) -> Any:
    return Field(
        min_length=1,
        max_length=66,
        description=f"the {role} meter: serial (1-32 printable bytes) or 0x + 64 hex digits",
    )


class Eip712Public(BaseModel):
    market_domain: dict[str, Any] = Field(description="EIP712Domain of Offer and Take")
    token_domain: dict[str, Any] = Field(description="EIP712Domain of the token's Permit")
    types: dict[str, list[dict[str, str]]] = Field(description="Offer, Take and Permit fields")


class MarketPublic(BaseModel):
    chain_id: int
    market: str = Field(description="EnergyMarket address")
    token: str = Field(description="SettlementToken address (ERC-20, minor units)")
    token_symbol: str
    token_decimals: int = Field(description="6: a minor unit is a millionth of the currency")
    slot_s: int = Field(description="delivery slot length; an offer is for exactly one slot")
    boundary_window_s: int
    settlement_window_s: int
    min_trade_value: int = Field(
        description="least value, floor(quantity * price / 1000) minor units, of an offer or take"
    )
    relay_quota_per_hour: int = Field(
        description="most offers and takes the gateway relays per signer in any hour"
    )
    chain_time: int = Field(description="latest block time: offers expire and slots end by it")
    eip712: Eip712Public


class NoncesPublic(BaseModel):
    address: str
    market_nonce: int = Field(description="the nonce the account's next Offer or Take must sign")
    permit_nonce: int = Field(description="the nonce the account's next token Permit must sign")


class OfferIn(BaseModel):
    """A seller-signed offer for the gateway to relay (EIP-712 `Offer`, see GET /v1/market)."""

    model_config = ConfigDict(extra="forbid")

    seller: str = _address("seller")
    seller_meter: str = _market_meter_id("seller")
    quantity_wh: int = Field(ge=1, lt=2**64)
    price_per_kwh: int = Field(
        ge=1, lt=2**128, description="minor units (millionths) of the currency per kWh"
    )
    delivery_start: int = Field(ge=0, lt=2**64, description="a multiple of slot_s")
    expiry: int = Field(ge=0, lt=2**64, description="takeable until (excluding); <= start")
    deadline: int = Field(ge=0, lt=2**256, description="the signature is valid until then")
    signature: str = _signature("Offer")


class PermitIn(BaseModel):
    """An ERC-2612 permit letting the market spend the buyer's units (for buyers without ether)."""

    model_config = ConfigDict(extra="forbid")

    value: int = Field(ge=0, lt=2**256, description="allowance in minor units")
    deadline: int = Field(ge=0, lt=2**256)
    signature: str = _signature("Permit (token domain)")


class TakeIn(BaseModel):
    """A buyer-signed take of (part of) an offer (EIP-712 `Take`)."""

    model_config = ConfigDict(extra="forbid")

    buyer: str = _address("buyer")
    buyer_meter: str = _market_meter_id("buyer")
    quantity_wh: int = Field(ge=1, lt=2**64)
    deadline: int = Field(ge=0, lt=2**256)
    signature: str = _signature("Take")
    permit: PermitIn | None = Field(
        default=None,
        description="optional, instead of an approve: used in the same call as the take, and "
        "only if the take goes through",
    )


class OfferPublic(BaseModel):
    offer_id: int
    seller: str
    seller_meter: str
    delivery_start: int
    delivery_end: int
    expiry: int
    price_per_kwh: int
    remaining_wh: int
    cancelled: bool
    open: bool = Field(description="takeable now: not cancelled, quantity left, not expired")
    tx_hash: str | None = Field(default=None, description="the creating transaction (on POST)")


class TradePublic(BaseModel):
    trade_id: int
    offer_id: int
    state: Literal["open", "settled", "refunded"]
    seller: str
    buyer: str
    seller_meter: str
    buyer_meter: str
    delivery_start: int
    delivery_end: int
    settlement_deadline: int = Field(description="settle before it; refund from it on")
    quantity_wh: int
    price_per_kwh: int
    escrow: int = Field(description="minor units escrowed: ceil(quantity * price / 1000)")
    delivered_wh: int
    paid: int = Field(description="to the seller: floor(delivered * price / 1000)")
    refunded: int = Field(description="to the buyer: escrow - paid (or all of it on refund)")
    tx_hash: str | None = Field(default=None, description="the taking transaction (on POST)")


class SettlementPublic(BaseModel):
    trade_id: int
    delivered_wh: int
    paid: int
    refunded: int
    tx_hash: str
    block_number: int


class TradeListPublic(BaseModel):
    account: str
    trades: list[TradePublic]


class OfferListPublic(BaseModel):
    offers: list[OfferPublic]
