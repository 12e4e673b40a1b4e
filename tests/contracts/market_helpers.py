"""Building blocks for EnergyMarket tests: meters, money, signed orders, anchored readings.

Readings are built with the reference encoder (`ledger.readings.native`) and anchored by the
operator straight into the ReadingLedger (no gateway), so a test controls exactly which readings
are on chain. Evidence tuples are in the ABI shape of `IEnergyMarket.BoundaryEvidence`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.logs import DISCARD

from ledger.anchoring.merkle import MerkleTree, keccak256
from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.market.orders import (
    MarketDomain,
    OfferTerms,
    offer_typed_data,
    read_eip712_domain,
    sign_typed_data,
    take_typed_data,
)
from ledger.readings.native import Reading, anchored_leaf
from tests.fixtures.chain import advance_time

P256 = 0
# Registration only stores the key: market tests never check a meter signature.
DUMMY_KEY = b"\x04" + b"\x01" * 64
MAX_UINT = 2**256 - 1


def meter_id(name: str) -> bytes:
    return name.encode().ljust(32, b"\x00")


def register_meter(chain: Chain, deployment: Deployment, meter: bytes, owner: str) -> None:
    chain.transact(
        deployment.meter_registry.functions.registerMeter(meter, owner, P256, DUMMY_KEY, 0)
    )


def fund(chain: Chain, deployment: Deployment, account: LocalAccount, amount: int) -> None:
    """Mints `amount` minor units to `account` and lets the market spend all of it."""
    token = deployment.settlement_token
    chain.transact(token.functions.mint(account.address, amount))
    chain.transact(
        token.functions.approve(deployment.energy_market.address, MAX_UINT), sender=account
    )


def market_domain(chain: Chain, market: Contract) -> MarketDomain:
    return read_eip712_domain(chain, market)


def balance(deployment: Deployment, account: str) -> int:
    return int(deployment.settlement_token.functions.balanceOf(account).call())


def signed_offer(
    chain: Chain,
    market: Contract,
    seller: LocalAccount,
    terms: OfferTerms,
    deadline: int,
    *,
    nonce: int | None = None,
) -> bytes:
    if nonce is None:
        nonce = int(market.functions.nonces(seller.address).call())
    typed = offer_typed_data(market_domain(chain, market), terms, seller.address, nonce, deadline)
    return sign_typed_data(seller.key, typed)


def signed_take(
    chain: Chain,
    market: Contract,
    buyer: LocalAccount,
    offer_id: int,
    buyer_meter: bytes,
    quantity_wh: int,
    deadline: int,
    *,
    nonce: int | None = None,
) -> bytes:
    if nonce is None:
        nonce = int(market.functions.nonces(buyer.address).call())
    typed = take_typed_data(
        market_domain(chain, market),
        offer_id,
        buyer_meter,
        quantity_wh,
        buyer.address,
        nonce,
        deadline,
    )
    return sign_typed_data(buyer.key, typed)


def create_offer(chain: Chain, market: Contract, seller: LocalAccount, terms: OfferTerms) -> int:
    """Creates an offer directly as `seller`; returns its id."""
    receipt = chain.transact(market.functions.createOffer(terms.as_tuple()), sender=seller)
    (event,) = market.events.OfferCreated().process_receipt(receipt, errors=DISCARD)
    return int(event["args"]["offerId"])


def take_offer(
    chain: Chain,
    market: Contract,
    buyer: LocalAccount,
    offer_id: int,
    buyer_meter: bytes,
    quantity_wh: int,
) -> int:
    """Takes an offer directly as `buyer`; returns the trade id."""
    receipt = chain.transact(
        market.functions.takeOffer(offer_id, buyer_meter, quantity_wh), sender=buyer
    )
    (event,) = market.events.OfferTaken().process_receipt(receipt, errors=DISCARD)
    return int(event["args"]["tradeId"])


def reading(
    meter: bytes, seq: int, timestamp: int, import_wh: int, export_wh: int, *, chain_id: int = 1337
) -> Reading:
    return Reading(
        chain_id=chain_id,
        meter_id=meter,
        seq=seq,
        timestamp=timestamp,
        import_wh=import_wh,
        export_wh=export_wh,
        status=0,
    )


def reading_fields(r: Reading) -> tuple[bytes, int, int, int, int, int]:
    """The `IEnergyMarket.Reading` tuple of a reading."""
    return (r.meter_id, r.seq, r.timestamp, r.import_wh, r.export_wh, r.status)


def stand_in_signature(r: Reading) -> bytes:
    """A 64-byte stand-in for a reading's signature: the market never checks signatures (only a
    fraud proof to the ReadingLedger does), but the version-2 leaf commits to one."""
    return keccak256(r.encode()) * 2


def market_leaf(r: Reading) -> bytes:
    """The version-2 leaf of a market test reading (signed bytes: its canonical bytes)."""
    return anchored_leaf(r.encode(), r.encode(), stand_in_signature(r))


@dataclass
class AnchoredBatch:
    """Readings anchored together as one ReadingLedger batch."""

    batch_id: int
    readings: list[Reading]
    tree: MerkleTree = field(init=False)

    def __post_init__(self) -> None:
        self.tree = MerkleTree([market_leaf(r) for r in self.readings])

    def anchored(self, r: Reading) -> tuple[Any, ...]:
        """The `AnchoredReading` tuple of a reading of this batch."""
        index = self.readings.index(r)
        return (
            reading_fields(r),
            keccak256(r.encode()),
            keccak256(stand_in_signature(r)),
            self.batch_id,
            self.tree.proof(index),
        )


def anchor_readings(
    chain: Chain,
    deployment: Deployment,
    readings: Sequence[Reading],
    *,
    past_challenge: bool = True,
) -> AnchoredBatch:
    """Anchors `readings` as the ledger's next batch and, unless `past_challenge` is False,
    moves the chain's clock past the batch's challenge period, so its readings can settle."""
    ledger = deployment.reading_ledger
    batch_id = int(ledger.functions.lastBatchId().call()) + 1
    batch = AnchoredBatch(batch_id, list(readings))
    times = [r.timestamp for r in readings]
    chain.transact(
        ledger.functions.anchor(batch_id, batch.tree.root, len(readings), min(times), max(times))
    )
    if past_challenge:
        advance_time(chain, int(ledger.functions.challengePeriod().call()))
    return batch


def boundary_evidence(
    time: int, batch: AnchoredBatch, boundary_reading: Reading, previous: Reading | None = None
) -> tuple[Any, ...]:
    """`BoundaryEvidence` for `boundary_reading` at `time` (`previous` may be None for seq 0)."""
    return (
        time,
        batch.anchored(boundary_reading),
        batch.anchored(previous if previous is not None else boundary_reading),
    )
