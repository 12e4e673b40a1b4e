"""The P2P market: its deployment and EIP-712 types, signed orders in, offers, trades and
settlements out."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from api.schemas.common import Derived, MeterIdText
from ledger.market.views import OfferView, TradeState, TradeView

# --- in ----------------------------------------------------------------------------------------

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


# --- out ---------------------------------------------------------------------------------------


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


def _state(value: Any) -> Any:
    return value.name.lower() if isinstance(value, TradeState) else value


class OfferPublic(BaseModel):
    """From an `OfferView`, with what the market's slot length and chain time say of it."""

    model_config = ConfigDict(from_attributes=True)

    offer_id: int
    seller: str
    seller_meter: MeterIdText
    delivery_start: int
    delivery_end: int
    expiry: int
    price_per_kwh: int
    remaining_wh: int
    cancelled: bool
    open: bool = Field(description="takeable now: not cancelled, quantity left, not expired")
    tx_hash: str | None = Field(default=None, description="the creating transaction (on POST)")

    @classmethod
    def of(cls, offer: OfferView, *, slot_s: int, now: int, tx_hash: str | None = None) -> Self:
        """The offer as shown at chain time `now` in a market of `slot_s`-second slots."""
        return cls.model_validate(
            Derived(
                offer,
                delivery_end=offer.delivery_start + slot_s,
                open=offer.is_open(now),
                tx_hash=tx_hash,
            )
        )


class TradePublic(BaseModel):
    """From a `TradeView`, with the ends its market's slot and settlement window give it."""

    model_config = ConfigDict(from_attributes=True)

    trade_id: int
    offer_id: int
    state: Annotated[Literal["open", "settled", "refunded"], BeforeValidator(_state)]
    seller: str
    buyer: str
    seller_meter: MeterIdText
    buyer_meter: MeterIdText
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

    @classmethod
    def of(
        cls,
        trade: TradeView,
        *,
        slot_s: int,
        settlement_window_s: int,
        tx_hash: str | None = None,
    ) -> Self:
        """The trade in a market of `slot_s`-second slots settled within `settlement_window_s`."""
        end = trade.delivery_start + slot_s
        return cls.model_validate(
            Derived(
                trade,
                delivery_end=end,
                settlement_deadline=end + settlement_window_s,
                tx_hash=tx_hash,
            )
        )


class SettlementPublic(BaseModel):
    """From a `Settlement`."""

    model_config = ConfigDict(from_attributes=True)

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
