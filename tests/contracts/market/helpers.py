"""Constants, helpers and reading series shared by the EnergyMarket tests of this package.

The market (slot 1 h, boundary window 15 min, settlement window 7 days), four registered meters
and two funded buyers are set up once for the package (conftest.py); every test runs on a Ganache
snapshot of that state and reverts to it afterwards (`evm_snapshot` / `evm_revert`), so tests
never see each other's trades and the session's clock is back where it was after a test moved it
by days.

Readings are built per meter around consecutive slots (`MeterSeries`): one ten minutes before
the first slot, then one a minute after each slot boundary, which is that boundary's reading. The
registers also move before the first boundary and on the register the trade does not use, so a
contract that subtracted the wrong readings or registers would pay a different amount.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.market.orders import OfferTerms
from ledger.readings.native import Reading
from tests.contracts.market_helpers import (
    AnchoredBatch,
    anchor_readings,
    boundary_evidence,
    create_offer,
    meter_id,
    reading,
    take_offer,
)
from tests.fixtures.chain import advance_time, latest_time

SLOT = 3_600
BOUNDARY_WINDOW = 900
SETTLEMENT_WINDOW = 7 * 86_400

PV_ALICE = meter_id("PV-ALICE")
PV_DAVE = meter_id("PV-DAVE")
HOME_BOB = meter_id("HOME-BOB")
HOME_CAROL = meter_id("HOME-CAROL")

PRICE = 250  # minor units per kWh
QUANTITY = 5_000  # Wh; escrow 1,250
BUDGET = 100_000  # minor units minted to each buyer
# The package's market lets trades be worth as little as one unit, so the rounding rules show at
# a handful of units; the minimum's own tests deploy a market with a realistic one.
MIN_TRADE_VALUE = 1

OPEN, SETTLED, REFUNDED = 1, 2, 3
OFFER_FIELDS = (
    "seller",
    "deliveryStart",
    "expiry",
    "sellerMeter",
    "pricePerKWh",
    "remainingWh",
    "cancelled",
)
TRADE_FIELDS = (
    "offerId",
    "seller",
    "deliveryStart",
    "buyer",
    "quantityWh",
    "sellerMeter",
    "buyerMeter",
    "pricePerKWh",
    "deliveredWh",
    "state",
    "escrow",
    "paid",
)


@contextmanager
def reverted_afterwards(chain: Chain) -> Iterator[None]:
    """Reverts the chain (state and clock) to where it was when the block was entered."""
    snapshot = chain.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    yield
    reverted = chain.w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
    assert reverted["result"] is True


def terms(
    start: int,
    *,
    meter: bytes = PV_ALICE,
    quantity: int = QUANTITY,
    price: int = PRICE,
    expiry: int | None = None,
) -> OfferTerms:
    return OfferTerms(meter, quantity, price, start, start - 60 if expiry is None else expiry)


def only_event(event: Any, receipt: TxReceipt) -> dict[str, Any]:
    logs = event.process_receipt(receipt, errors=DISCARD)
    assert len(logs) == 1
    return dict(logs[0]["args"])


def events(event: Any, receipt: TxReceipt) -> list[dict[str, Any]]:
    return [dict(log["args"]) for log in event.process_receipt(receipt, errors=DISCARD)]


def offer_of(chain: Chain, market: Contract, offer_id: int) -> dict[str, Any]:
    return dict(zip(OFFER_FIELDS, chain.call(market.functions.offer(offer_id)), strict=True))


def trade_of(chain: Chain, market: Contract, trade_id: int) -> dict[str, Any]:
    return dict(zip(TRADE_FIELDS, chain.call(market.functions.trade(trade_id)), strict=True))


def boundary_of(chain: Chain, market: Contract, meter: bytes, time: int) -> tuple[Any, ...]:
    """(seq, importWh, exportWh, pinned) of a meter's boundary."""
    return tuple(chain.call(market.functions.boundary(meter, time)))


def advance_to(chain: Chain, time: int) -> None:
    """Moves the chain's clock to at least `time`."""
    advance_time(chain, max(0, time - latest_time(chain)))


def trade(
    chain: Chain,
    market: Contract,
    start: int,
    seller: LocalAccount,
    buyer: LocalAccount,
    *,
    seller_meter: bytes = PV_ALICE,
    buyer_meter: bytes = HOME_BOB,
    quantity: int = QUANTITY,
    price: int = PRICE,
) -> int:
    """An offer of exactly `quantity`, wholly taken; returns the trade id."""
    offer_id = create_offer(
        chain, market, seller, terms(start, meter=seller_meter, quantity=quantity, price=price)
    )
    return take_offer(chain, market, buyer, offer_id, buyer_meter, quantity)


def settle(
    chain: Chain, market: Contract, trade_id: int, evidence: Sequence[tuple[Any, ...]]
) -> TxReceipt:
    return chain.transact(market.functions.settle(trade_id, list(evidence)))


def relay_offer(
    chain: Chain, market: Contract, offer: OfferTerms, seller: str, deadline: int, signature: bytes
) -> TxReceipt:
    """`createOfferBySig`, sent by the operator."""
    call = market.functions.createOfferBySig(offer.as_tuple(), seller, deadline, signature)
    return chain.transact(call)


def relay_take(
    chain: Chain,
    market: Contract,
    offer_id: int,
    buyer_meter: bytes,
    quantity: int,
    buyer: str,
    deadline: int,
    signature: bytes,
) -> TxReceipt:
    """`takeOfferBySig`, sent by the operator."""
    call = market.functions.takeOfferBySig(
        offer_id, buyer_meter, quantity, buyer, deadline, signature
    )
    return chain.transact(call)


def permit_tuple(value: int, deadline: int, signature: bytes) -> tuple[Any, ...]:
    """The `IEnergyMarket.PermitSignature` tuple of a 65-byte permit signature."""
    return (value, deadline, signature[64], signature[:32], signature[32:64])


def relay_take_with_permit(
    chain: Chain,
    market: Contract,
    offer_id: int,
    buyer_meter: bytes,
    quantity: int,
    buyer: str,
    deadline: int,
    signature: bytes,
    permit_signature: tuple[Any, ...],
) -> TxReceipt:
    """`takeOfferBySigWithPermit`, sent by the operator."""
    call = market.functions.takeOfferBySigWithPermit(
        offer_id, buyer_meter, quantity, buyer, deadline, signature, permit_signature
    )
    return chain.transact(call)


@dataclass(frozen=True)
class MeterSeries:
    """A meter's readings around consecutive slots from `start`: seq 0 ten minutes before the
    first slot, then seq k + 1 one minute after boundary k (`start + k * SLOT`)."""

    meter: bytes
    start: int
    readings: tuple[Reading, ...]

    @classmethod
    def build(
        cls,
        meter: bytes,
        start: int,
        flows: Sequence[tuple[int, int]],
        *,
        chain_id: int = 1337,
    ) -> MeterSeries:
        """`flows[k]` is (Wh imported, Wh exported) in slot k."""
        imported, exported = 10_000, 20_000
        readings = [reading(meter, 0, start - 600, imported, exported, chain_id=chain_id)]
        # Energy flows before the first boundary too; none of it belongs to the slot.
        imported, exported = imported + 7, exported + 11
        for k, flow in enumerate([(0, 0), *flows]):
            imported, exported = imported + flow[0], exported + flow[1]
            readings.append(
                reading(meter, k + 1, start + k * SLOT + 60, imported, exported, chain_id=chain_id)
            )
        return cls(meter, start, tuple(readings))

    def at(self, k: int) -> Reading:
        """The reading of boundary k."""
        return self.readings[k + 1]

    def evidence(self, batch: AnchoredBatch, k: int) -> tuple[Any, ...]:
        """Evidence for boundary k: its reading and the one before it."""
        return boundary_evidence(self.start + k * SLOT, batch, self.at(k), self.readings[k])


@dataclass(frozen=True)
class Delivery:
    """A trade whose slot is over, with its two meters' readings anchored in one batch."""

    trade_id: int
    start: int
    batch: AnchoredBatch
    seller: MeterSeries
    buyer: MeterSeries

    @property
    def end(self) -> int:
        return self.start + SLOT

    def evidence(self) -> list[tuple[Any, ...]]:
        """Seller start and end, buyer start and end."""
        return [
            self.seller.evidence(self.batch, 0),
            self.seller.evidence(self.batch, 1),
            self.buyer.evidence(self.batch, 0),
            self.buyer.evidence(self.batch, 1),
        ]


def deliver(
    chain: Chain,
    deployment: Deployment,
    trade_id: int,
    start: int,
    *,
    exported: int,
    imported: int,
) -> Delivery:
    """Anchors readings where PV-ALICE exports `exported` Wh and HOME-BOB imports `imported` Wh
    in the slot (each also moves its other register a little), then ends the slot."""
    seller = MeterSeries.build(PV_ALICE, start, [(30, exported)])
    buyer = MeterSeries.build(HOME_BOB, start, [(imported, 5)])
    batch = anchor_readings(chain, deployment, [*seller.readings, *buyer.readings])
    advance_to(chain, start + SLOT + 120)
    return Delivery(trade_id, start, batch, seller, buyer)


def swap_reading(evidence: tuple[Any, ...], anchored: tuple[Any, ...]) -> tuple[Any, ...]:
    """The evidence with another (reading, batch id, proof) as its boundary reading."""
    time, _, previous = evidence
    return (time, anchored, previous)


def swap_previous(evidence: tuple[Any, ...], anchored: tuple[Any, ...]) -> tuple[Any, ...]:
    time, boundary, _ = evidence
    return (time, boundary, anchored)
