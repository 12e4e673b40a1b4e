"""A plain Python model of EnergyMarket, for the stateful test in test_market_invariants.py.

The model knows nothing of the chain: it is the rules of contracts/interfaces/IEnergyMarket.sol
written again as dictionaries and integers. Each operation takes the time of the block it would
run in and either raises `ModelRevert` with the custom error the contract must raise (checked in
the contract's order, and before anything changes) or applies its effects and returns them.

The meters' readings live here too, as the truth: the model derives each boundary (the first
reading at or after a slot boundary within the boundary window, see `true_boundary`) and each
slot's energy from the readings it generated, not from what the contract pinned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

WH_PER_KWH = 1000
MAX_EVIDENCE = 4


class ModelRevert(Exception):
    """The contract must revert with the custom error `error_name`."""

    def __init__(self, error_name: str) -> None:
        super().__init__(error_name)
        self.error_name = error_name


class TradeState(IntEnum):
    NONE = 0
    OPEN = 1
    SETTLED = 2
    REFUNDED = 3


@dataclass(frozen=True)
class MeterReading:
    """One reading of a meter's cumulative registers."""

    meter: str
    seq: int
    timestamp: int
    import_wh: int
    export_wh: int


@dataclass(frozen=True)
class Boundary:
    """The registers of a meter's boundary reading."""

    seq: int
    import_wh: int
    export_wh: int


@dataclass
class Offer:
    offer_id: int
    seller: str
    seller_meter: str
    price_per_kwh: int
    delivery_start: int
    expiry: int
    remaining_wh: int
    cancelled: bool = False


@dataclass
class Trade:
    trade_id: int
    offer_id: int
    seller: str
    buyer: str
    seller_meter: str
    buyer_meter: str
    delivery_start: int
    quantity_wh: int
    price_per_kwh: int
    escrow: int
    state: TradeState = TradeState.OPEN
    delivered_wh: int = 0
    paid: int = 0


@dataclass(frozen=True)
class Settlement:
    delivered_wh: int
    paid: int
    refunded: int


def escrow_for(quantity_wh: int, price_per_kwh: int) -> int:
    """ceil(quantity * price / 1000): the exact price of the quantity, rounded up."""
    return -(-quantity_wh * price_per_kwh // WH_PER_KWH)


def payment_for(delivered_wh: int, price_per_kwh: int) -> int:
    """floor(delivered * price / 1000): the exact value of the delivery, rounded down."""
    return delivered_wh * price_per_kwh // WH_PER_KWH


class MarketModel:
    """Offers, trades, escrow, pinned boundaries, settled Wh per (meter, slot) and balances.

    Args:
        slot_s: Slot length, seconds.
        boundary_window_s: A boundary reading is less than this long after its boundary.
        settlement_window_s: Settlement is possible until this long after the slot's end.
        min_trade_value: The least floor(quantity * price / 1000) of an offer or take.
        owners: Meter name -> owner address.
        balances: Address -> token balance (every account the test uses).
    """

    def __init__(
        self,
        *,
        slot_s: int,
        boundary_window_s: int,
        settlement_window_s: int,
        min_trade_value: int,
        owners: dict[str, str],
        balances: dict[str, int],
    ) -> None:
        self.slot_s = slot_s
        self.boundary_window_s = boundary_window_s
        self.settlement_window_s = settlement_window_s
        self.min_trade_value = min_trade_value
        self.owners = dict(owners)
        self.balances = dict(balances)
        self.held = 0  # the market's own token balance
        self.offers: dict[int, Offer] = {}
        self.trades: dict[int, Trade] = {}
        self.readings: dict[str, list[MeterReading]] = {meter: [] for meter in owners}
        self.pinned: dict[tuple[str, int], Boundary] = {}
        self.export_settled: dict[tuple[str, int], int] = {}
        self.import_settled: dict[tuple[str, int], int] = {}

    # -- readings (the truth) --

    def add_reading(
        self, meter: str, timestamp: int, import_wh: int, export_wh: int
    ) -> MeterReading:
        """Appends the meter's next reading; registers and time never go back."""
        history = self.readings[meter]
        if history:
            last = history[-1]
            assert timestamp > last.timestamp, "readings must be generated in time order"
            assert import_wh >= last.import_wh and export_wh >= last.export_wh, "registers"
        reading = MeterReading(meter, len(history), timestamp, import_wh, export_wh)
        history.append(reading)
        return reading

    def boundary_readings(
        self, meter: str, time: int
    ) -> tuple[MeterReading, MeterReading | None] | None:
        """The first reading at or after `time` within the window, and the one before it."""
        for reading in self.readings[meter]:
            if reading.timestamp >= time:
                if reading.timestamp - time >= self.boundary_window_s:
                    return None
                previous = self.readings[meter][reading.seq - 1] if reading.seq > 0 else None
                return reading, previous
        return None

    def true_boundary(self, meter: str, time: int) -> Boundary | None:
        found = self.boundary_readings(meter, time)
        if found is None:
            return None
        reading, _ = found
        return Boundary(reading.seq, reading.import_wh, reading.export_wh)

    def slot_energy(self, meter: str, slot_start: int) -> tuple[int, int] | None:
        """(imported, exported) Wh of the meter in the slot, from the readings; None if the
        readings prove no boundary of the slot."""
        start = self.true_boundary(meter, slot_start)
        end = self.true_boundary(meter, slot_start + self.slot_s)
        if start is None or end is None:
            return None
        return end.import_wh - start.import_wh, end.export_wh - start.export_wh

    # -- market operations, each at block time `now` --

    def create_offer(
        self,
        sender: str,
        seller_meter: str,
        quantity_wh: int,
        price_per_kwh: int,
        delivery_start: int,
        expiry: int,
        now: int,
    ) -> Offer:
        if self.owners[seller_meter] != sender:
            raise ModelRevert("EnergyMarketNotMeterOwner")
        if quantity_wh == 0:
            raise ModelRevert("EnergyMarketZeroQuantity")
        if price_per_kwh == 0:
            raise ModelRevert("EnergyMarketZeroPrice")
        if payment_for(quantity_wh, price_per_kwh) < self.min_trade_value:
            raise ModelRevert("EnergyMarketTradeTooSmall")
        if delivery_start % self.slot_s != 0:
            raise ModelRevert("EnergyMarketUnalignedTime")
        if expiry <= now or expiry > delivery_start:
            raise ModelRevert("EnergyMarketInvalidExpiry")
        offer = Offer(
            offer_id=len(self.offers) + 1,
            seller=sender,
            seller_meter=seller_meter,
            price_per_kwh=price_per_kwh,
            delivery_start=delivery_start,
            expiry=expiry,
            remaining_wh=quantity_wh,
        )
        self.offers[offer.offer_id] = offer
        return offer

    def cancel_offer(self, sender: str, offer_id: int) -> None:
        offer = self._open_offer(offer_id)
        if offer.seller != sender:
            raise ModelRevert("EnergyMarketNotSeller")
        offer.cancelled = True
        offer.remaining_wh = 0

    def take_offer(
        self, sender: str, offer_id: int, buyer_meter: str, quantity_wh: int, now: int
    ) -> Trade:
        offer = self._open_offer(offer_id)
        if now >= offer.expiry:
            raise ModelRevert("EnergyMarketOfferExpired")
        if quantity_wh == 0:
            raise ModelRevert("EnergyMarketZeroQuantity")
        if quantity_wh > offer.remaining_wh:
            raise ModelRevert("EnergyMarketQuantityExceedsOffer")
        if payment_for(quantity_wh, offer.price_per_kwh) < self.min_trade_value:
            raise ModelRevert("EnergyMarketTradeTooSmall")
        if buyer_meter == offer.seller_meter:
            raise ModelRevert("EnergyMarketSameMeter")
        if self.owners[buyer_meter] != sender:
            raise ModelRevert("EnergyMarketNotMeterOwner")
        escrow = escrow_for(quantity_wh, offer.price_per_kwh)
        assert self.balances[sender] >= escrow, "the test funds every buyer for any escrow"
        offer.remaining_wh -= quantity_wh
        trade = Trade(
            trade_id=len(self.trades) + 1,
            offer_id=offer_id,
            seller=offer.seller,
            buyer=sender,
            seller_meter=offer.seller_meter,
            buyer_meter=buyer_meter,
            delivery_start=offer.delivery_start,
            quantity_wh=quantity_wh,
            price_per_kwh=offer.price_per_kwh,
            escrow=escrow,
        )
        self.trades[trade.trade_id] = trade
        self.balances[sender] -= escrow
        self.held += escrow
        return trade

    def pin_boundary(self, meter: str, time: int) -> None:
        """Pins the true boundary (the test only ever sends valid evidence)."""
        self._pin(meter, time, self.pinned)

    def settle(self, trade_id: int, evidence: Sequence[tuple[str, int]], now: int) -> Settlement:
        """Settles with evidence for the (meter, boundary time) pairs given, in that order."""
        if len(evidence) > MAX_EVIDENCE:
            raise ModelRevert("EnergyMarketTooMuchEvidence")
        # Pins are kept only if the whole settlement goes through, as on chain.
        pinned = dict(self.pinned)
        for meter, time in evidence:
            self._pin(meter, time, pinned)
        trade = self._open_trade(trade_id)
        delivery_end = trade.delivery_start + self.slot_s
        if now < delivery_end:
            raise ModelRevert("EnergyMarketDeliveryNotOver")
        if now >= delivery_end + self.settlement_window_s:
            raise ModelRevert("EnergyMarketSettlementClosed")
        _, exported = self._pinned_energy(pinned, trade.seller_meter, trade.delivery_start)
        imported, _ = self._pinned_energy(pinned, trade.buyer_meter, trade.delivery_start)
        export_key = (trade.seller_meter, trade.delivery_start)
        import_key = (trade.buyer_meter, trade.delivery_start)
        export_left = exported - self.export_settled.get(export_key, 0)
        import_left = imported - self.import_settled.get(import_key, 0)
        delivered = min(trade.quantity_wh, export_left, import_left)
        paid = payment_for(delivered, trade.price_per_kwh)
        refunded = trade.escrow - paid

        self.pinned = pinned
        self.export_settled[export_key] = self.export_settled.get(export_key, 0) + delivered
        self.import_settled[import_key] = self.import_settled.get(import_key, 0) + delivered
        trade.state = TradeState.SETTLED
        trade.delivered_wh = delivered
        trade.paid = paid
        self.held -= trade.escrow
        self.balances[trade.seller] += paid
        self.balances[trade.buyer] += refunded
        return Settlement(delivered, paid, refunded)

    def refund(self, trade_id: int, now: int) -> int:
        trade = self._open_trade(trade_id)
        if now < trade.delivery_start + self.slot_s + self.settlement_window_s:
            raise ModelRevert("EnergyMarketSettlementStillOpen")
        trade.state = TradeState.REFUNDED
        self.held -= trade.escrow
        self.balances[trade.buyer] += trade.escrow
        return trade.escrow

    # -- views --

    def open_escrow(self) -> int:
        """The sum of the escrows of open trades: what the market must hold."""
        return sum(t.escrow for t in self.trades.values() if t.state == TradeState.OPEN)

    def settlement_deadline(self, trade: Trade) -> int:
        return trade.delivery_start + self.slot_s + self.settlement_window_s

    # -- internals --

    def _open_offer(self, offer_id: int) -> Offer:
        offer = self.offers.get(offer_id)
        if offer is None:
            raise ModelRevert("EnergyMarketUnknownOffer")
        if offer.cancelled or offer.remaining_wh == 0:
            raise ModelRevert("EnergyMarketOfferNotOpen")
        return offer

    def _open_trade(self, trade_id: int) -> Trade:
        trade = self.trades.get(trade_id)
        if trade is None:
            raise ModelRevert("EnergyMarketUnknownTrade")
        if trade.state != TradeState.OPEN:
            raise ModelRevert("EnergyMarketTradeNotOpen")
        return trade

    def _pin(self, meter: str, time: int, pinned: dict[tuple[str, int], Boundary]) -> None:
        if time % self.slot_s != 0:
            raise ModelRevert("EnergyMarketUnalignedTime")
        if (meter, time) in pinned:
            return  # pinned once: later evidence is ignored
        boundary = self.true_boundary(meter, time)
        assert boundary is not None, f"the test sent evidence the readings lack: {meter} {time}"
        pinned[(meter, time)] = boundary

    def _pinned_energy(
        self, pinned: dict[tuple[str, int], Boundary], meter: str, slot_start: int
    ) -> tuple[int, int]:
        start = pinned.get((meter, slot_start))
        end = pinned.get((meter, slot_start + self.slot_s))
        if start is None or end is None:
            raise ModelRevert("EnergyMarketBoundaryNotPinned")
        if end.import_wh < start.import_wh or end.export_wh < start.export_wh:
            raise ModelRevert("EnergyMarketRegisterDecreased")
        return end.import_wh - start.import_wh, end.export_wh - start.export_wh
