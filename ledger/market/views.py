"""What the market shows: offers, trades and settlements as frozen dataclasses, and the
contract's rounding rules in Python.

Money is integer minor units (the settlement token has 6 decimals) and energy integer Wh
throughout; `escrow_for` and `payment_for` are the contract's rounding rules, for clients, tests
and auditors. `OfferView.of_indexed` and `TradeView.of_indexed` build views from the read model
(`ledger/store/read_model.py`), the same as those read from the contract's view functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from web3.types import TxReceipt

from ledger.store.read_model import IndexedOffer, IndexedTrade

WH_PER_KWH = 1000


def escrow_for(quantity_wh: int, price_per_kwh: int) -> int:
    """What a buyer escrows for `quantity_wh`: the exact price rounded UP to a minor unit."""
    return -(-quantity_wh * price_per_kwh // WH_PER_KWH)


def payment_for(delivered_wh: int, price_per_kwh: int) -> int:
    """What a seller is paid for `delivered_wh`: the exact price rounded DOWN to a minor unit."""
    return delivered_wh * price_per_kwh // WH_PER_KWH


class TradeState(IntEnum):
    NONE = 0
    OPEN = 1
    SETTLED = 2
    REFUNDED = 3


def tx_hash_hex(receipt: TxReceipt) -> str:
    """A receipt's transaction hash as 0x-hex."""
    return "0x" + bytes(receipt["transactionHash"]).hex()


@dataclass(frozen=True)
class OfferView:
    offer_id: int
    seller: str
    seller_meter: bytes
    delivery_start: int
    expiry: int
    price_per_kwh: int
    remaining_wh: int
    cancelled: bool

    @classmethod
    def of_indexed(cls, offer: IndexedOffer) -> OfferView:
        """The view of an offer as the read model holds it."""
        return cls(
            offer_id=offer.offer_id,
            seller=offer.seller,
            seller_meter=offer.seller_meter,
            delivery_start=offer.delivery_start,
            expiry=offer.expiry,
            price_per_kwh=offer.price_per_kwh,
            remaining_wh=offer.remaining_wh,
            cancelled=offer.cancelled,
        )

    def is_open(self, now: int) -> bool:
        """Takeable at chain time `now`."""
        return not self.cancelled and self.remaining_wh > 0 and now < self.expiry


@dataclass(frozen=True)
class TradeView:
    trade_id: int
    offer_id: int
    seller: str
    buyer: str
    seller_meter: bytes
    buyer_meter: bytes
    delivery_start: int
    quantity_wh: int
    price_per_kwh: int
    escrow: int
    state: TradeState
    delivered_wh: int
    paid: int

    @classmethod
    def of_indexed(cls, trade: IndexedTrade) -> TradeView:
        """The view of a trade as the read model holds it."""
        states = {None: TradeState.OPEN, "settled": TradeState.SETTLED}
        return cls(
            trade_id=trade.trade_id,
            offer_id=trade.offer_id,
            seller=trade.seller,
            buyer=trade.buyer,
            seller_meter=trade.seller_meter,
            buyer_meter=trade.buyer_meter,
            delivery_start=trade.delivery_start,
            quantity_wh=trade.quantity_wh,
            price_per_kwh=trade.price_per_kwh,
            escrow=trade.escrow,
            state=states.get(trade.outcome, TradeState.REFUNDED),
            delivered_wh=trade.delivered_wh,
            paid=trade.paid,
        )

    @property
    def refunded(self) -> int:
        """What went (or goes) back to the buyer; 0 while the trade is open."""
        if self.state == TradeState.SETTLED:
            return self.escrow - self.paid
        if self.state == TradeState.REFUNDED:
            return self.escrow
        return 0


@dataclass(frozen=True)
class Settlement:
    """The outcome of a settle or refund transaction."""

    trade_id: int
    delivered_wh: int
    paid: int
    refunded: int
    tx_hash: str
    block_number: int
