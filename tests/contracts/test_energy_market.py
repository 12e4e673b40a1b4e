"""EnergyMarket: offers and takes (direct and relayed with EIP-712 signatures), cancelling, and
settlement from anchored boundary readings, with escrow, payment and refund in exact token units.

The market (slot 1 h, boundary window 15 min, settlement window 7 days), four registered meters
and two funded buyers are set up once for the module; every test runs on a Ganache snapshot of
that state and reverts to it afterwards (`evm_snapshot` / `evm_revert`), so tests never see each
other's trades and the session's clock is back where it was after a test moved it by days.

Readings are built per meter around consecutive slots (`MeterSeries`): one ten minutes before
the first slot, then one a minute after each slot boundary, which is that boundary's reading. The
registers also move before the first boundary and on the register the trade does not use, so a
contract that subtracted the wrong readings or registers would pay a different amount.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from ledger.anchoring.merkle import hash_pair
from ledger.chain.client import Chain
from ledger.chain.compiler import ContractArtifact
from ledger.chain.deployment import Deployment, MarketParameters, ensure_deployed
from ledger.market.orders import OfferTerms, offer_typed_data, sign_typed_data, take_typed_data
from ledger.market.views import escrow_for
from ledger.readings.native import Reading, reading_leaf
from tests.contracts.market_helpers import (
    AnchoredBatch,
    anchor_readings,
    balance,
    boundary_evidence,
    create_offer,
    fund,
    market_domain,
    meter_id,
    reading,
    reading_fields,
    register_meter,
    signed_offer,
    signed_take,
    take_offer,
)
from tests.contracts.test_settlement_token import permit, signed_permit
from tests.fixtures.chain import advance_time, dev_account, latest_time, reverts

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
# The module's market lets trades be worth as little as one unit, so the rounding rules show at
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


# fixtures


@pytest.fixture(scope="module")
def carol() -> LocalAccount:
    """A second consumer."""
    return dev_account(4)


@pytest.fixture(scope="module")
def dave() -> LocalAccount:
    """A second prosumer."""
    return dev_account(5)


@pytest.fixture(scope="module")
def module_deployment(
    chain: Chain,
    tmp_path_factory: pytest.TempPathFactory,
    artifacts: dict[str, ContractArtifact],
    alice: LocalAccount,
    bob: LocalAccount,
    carol: LocalAccount,
    dave: LocalAccount,
) -> Deployment:
    """The contracts with PV-ALICE, PV-DAVE, HOME-BOB and HOME-CAROL registered; bob and carol
    hold BUDGET each and have approved the market."""
    deployment = ensure_deployed(
        chain,
        tmp_path_factory.mktemp("market"),
        market=MarketParameters(min_trade_value=MIN_TRADE_VALUE),
    )
    for meter, owner in (
        (PV_ALICE, alice),
        (PV_DAVE, dave),
        (HOME_BOB, bob),
        (HOME_CAROL, carol),
    ):
        register_meter(chain, deployment, meter, owner.address)
    for buyer in (bob, carol):
        fund(chain, deployment, buyer, BUDGET)
    return deployment


@contextmanager
def reverted_afterwards(chain: Chain) -> Iterator[None]:
    """Reverts the chain (state and clock) to where it was when the block was entered."""
    snapshot = chain.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    yield
    reverted = chain.w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
    assert reverted["result"] is True


@pytest.fixture
def deployment(module_deployment: Deployment, chain: Chain) -> Iterator[Deployment]:
    """The module's contracts; whatever the test does is reverted afterwards."""
    with reverted_afterwards(chain):
        yield module_deployment


@pytest.fixture
def market(deployment: Deployment) -> Contract:
    return deployment.energy_market


@pytest.fixture
def start(chain: Chain, deployment: Deployment) -> int:
    """A delivery slot starting at least an hour from now."""
    return (latest_time(chain) // SLOT + 2) * SLOT


# helpers


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


@pytest.fixture(scope="class")
def delivered(
    request: pytest.FixtureRequest,
    chain: Chain,
    module_deployment: Deployment,
    alice: LocalAccount,
    bob: LocalAccount,
) -> Iterator[Delivery]:
    """alice sold bob 5,000 Wh at 250 per kWh (escrow 1,250); she exported 4,000 Wh and he
    imported 3,000 Wh in the slot, which is over: 3,000 Wh are due.

    Set up once per test class (it takes seconds on Ganache) and reverted after the class; only
    classes may use it, or module-level tests would see its trade.
    """
    assert request.cls is not None, "`delivery` is for tests in a class"
    with reverted_afterwards(chain):
        start = (latest_time(chain) // SLOT + 2) * SLOT
        market = module_deployment.energy_market
        trade_id = trade(chain, market, start, alice, bob)
        yield deliver(chain, module_deployment, trade_id, start, exported=4_000, imported=3_000)


@pytest.fixture
def delivery(delivered: Delivery, deployment: Deployment) -> Delivery:
    """The class's delivered trade; whatever the test does is reverted afterwards."""
    return delivered


def swap_reading(evidence: tuple[Any, ...], anchored: tuple[Any, ...]) -> tuple[Any, ...]:
    """The evidence with another (reading, batch id, proof) as its boundary reading."""
    time, _, previous = evidence
    return (time, anchored, previous)


def swap_previous(evidence: tuple[Any, ...], anchored: tuple[Any, ...]) -> tuple[Any, ...]:
    time, boundary, _ = evidence
    return (time, boundary, anchored)


# constructor and configuration


def test_constructor_stores_contracts_and_windows(
    chain: Chain, deployment: Deployment, market: Contract
) -> None:
    f = market.functions
    assert chain.call(f.meterRegistry()) == deployment.meter_registry.address
    assert chain.call(f.readingLedger()) == deployment.reading_ledger.address
    assert chain.call(f.settlementToken()) == deployment.settlement_token.address
    assert chain.call(f.slotSeconds()) == SLOT
    assert chain.call(f.boundaryWindow()) == BOUNDARY_WINDOW
    assert chain.call(f.settlementWindow()) == SETTLEMENT_WINDOW
    assert chain.call(f.minTradeValue()) == MIN_TRADE_VALUE
    assert (chain.call(f.offerCount()), chain.call(f.tradeCount())) == (0, 0)


def deploy_market(
    chain: Chain,
    deployment: Deployment,
    artifacts: dict[str, ContractArtifact],
    slot: int,
    window: int,
    settlement: int,
    min_value: int = MIN_TRADE_VALUE,
) -> TxReceipt:
    artifact = artifacts["EnergyMarket"]
    factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    constructor = factory.constructor(
        deployment.meter_registry.address,
        deployment.reading_ledger.address,
        deployment.settlement_token.address,
        slot,
        window,
        settlement,
        min_value,
    )
    return chain.transact(constructor)


def test_constructor_accepts_a_boundary_window_of_a_whole_slot(
    chain: Chain, deployment: Deployment, artifacts: dict[str, ContractArtifact]
) -> None:
    receipt = deploy_market(chain, deployment, artifacts, 900, 900, 1)

    address = receipt["contractAddress"]
    deployed = chain.w3.eth.contract(address=address, abi=artifacts["EnergyMarket"].abi)
    f = deployed.functions
    assert (chain.call(f.slotSeconds()), chain.call(f.boundaryWindow())) == (900, 900)


@pytest.mark.parametrize(
    ("slot", "window", "settlement", "min_value"),
    [
        (0, 0, 60, 1),
        (3_600, 0, 60, 1),
        (3_600, 3_601, 60, 1),
        (3_600, 900, 0, 1),
        (3_600, 900, 60, 0),
    ],
    ids=[
        "zero-slot",
        "zero-window",
        "window-longer-than-slot",
        "zero-settlement-window",
        "zero-minimum-trade-value",
    ],
)
def test_constructor_reverts_if_configuration_invalid(
    chain: Chain,
    deployment: Deployment,
    artifacts: dict[str, ContractArtifact],
    slot: int,
    window: int,
    settlement: int,
    min_value: int,
) -> None:
    with reverts("EnergyMarketInvalidConfiguration") as caught:
        deploy_market(chain, deployment, artifacts, slot, window, settlement, min_value)
    assert caught.value.args_decoded == (slot, window, settlement, min_value)


# the minimum trade value


MICRO_PRICE = 250_000  # 0.25 per kWh in the token's millionths
CENT = 10_000  # the gateway's default minimum, 0.01


@pytest.fixture
def cent_market(
    chain: Chain,
    deployment: Deployment,
    artifacts: dict[str, ContractArtifact],
    bob: LocalAccount,
) -> Contract:
    """A market whose trades must be worth at least a cent; bob has approved it."""
    receipt = deploy_market(
        chain, deployment, artifacts, SLOT, BOUNDARY_WINDOW, SETTLEMENT_WINDOW, CENT
    )
    market = chain.w3.eth.contract(
        address=receipt["contractAddress"], abi=artifacts["EnergyMarket"].abi
    )
    token = deployment.settlement_token
    chain.transact(token.functions.approve(market.address, BUDGET), sender=bob)
    return market


def test_create_offer_reverts_if_worth_less_than_the_minimum_trade_value(
    chain: Chain, cent_market: Contract, start: int, alice: LocalAccount
) -> None:
    # 39 Wh at 0.25 per kWh is worth 0.00975: no take of it could reach a cent.
    small = terms(start, quantity=39, price=MICRO_PRICE)

    with reverts("EnergyMarketTradeTooSmall") as caught:
        create_offer(chain, cent_market, alice, small)
    assert caught.value.args_decoded == (9_750, CENT)
    assert chain.call(cent_market.functions.offerCount()) == 0


def test_take_offer_reverts_if_worth_less_than_the_minimum_trade_value(
    chain: Chain,
    deployment: Deployment,
    cent_market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    offer_id = create_offer(
        chain, cent_market, alice, terms(start, quantity=4_000, price=MICRO_PRICE)
    )

    with reverts("EnergyMarketTradeTooSmall") as caught:
        take_offer(chain, cent_market, bob, offer_id, HOME_BOB, 39)
    assert caught.value.args_decoded == (9_750, CENT)
    assert offer_of(chain, cent_market, offer_id)["remainingWh"] == 4_000
    assert balance(deployment, bob.address) == BUDGET


def test_take_offer_accepts_a_take_worth_exactly_the_minimum_trade_value(
    chain: Chain,
    deployment: Deployment,
    cent_market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    offer_id = create_offer(
        chain, cent_market, alice, terms(start, quantity=4_000, price=MICRO_PRICE)
    )

    trade_id = take_offer(chain, cent_market, bob, offer_id, HOME_BOB, 40)

    assert trade_of(chain, cent_market, trade_id)["escrow"] == CENT
    assert balance(deployment, bob.address) == BUDGET - CENT


# createOffer


def test_create_offer_stores_the_offer_and_emits_offer_created(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    receipt = chain.transact(market.functions.createOffer(terms(start).as_tuple()), sender=alice)

    assert only_event(market.events.OfferCreated(), receipt) == {
        "offerId": 1,
        "seller": alice.address,
        "sellerMeter": PV_ALICE,
        "quantityWh": QUANTITY,
        "pricePerKWh": PRICE,
        "deliveryStart": start,
        "expiry": start - 60,
    }
    assert offer_of(chain, market, 1) == {
        "seller": alice.address,
        "deliveryStart": start,
        "expiry": start - 60,
        "sellerMeter": PV_ALICE,
        "pricePerKWh": PRICE,
        "remainingWh": QUANTITY,
        "cancelled": False,
    }
    assert chain.call(market.functions.offerCount()) == 1


def test_create_offer_numbers_offers_consecutively(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, dave: LocalAccount
) -> None:
    ids = [
        create_offer(chain, market, alice, terms(start)),
        create_offer(chain, market, dave, terms(start, meter=PV_DAVE)),
        create_offer(chain, market, alice, terms(start + SLOT)),
    ]

    assert ids == [1, 2, 3]
    assert chain.call(market.functions.offerCount()) == 3


def test_create_offer_reverts_if_caller_does_not_own_the_meter(
    chain: Chain, market: Contract, start: int, bob: LocalAccount
) -> None:
    with reverts("EnergyMarketNotMeterOwner") as caught:
        create_offer(chain, market, bob, terms(start, meter=PV_ALICE))
    meter, account = caught.value.args_decoded
    assert (meter, to_checksum_address(account)) == (PV_ALICE, bob.address)


def test_create_offer_reverts_if_meter_unknown(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    with reverts("MeterRegistryUnknownMeter") as caught:
        create_offer(chain, market, alice, terms(start, meter=meter_id("NO-SUCH-METER")))
    assert caught.value.args_decoded == (meter_id("NO-SUCH-METER"),)


def test_create_offer_reverts_if_quantity_is_zero(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    with reverts("EnergyMarketZeroQuantity"):
        create_offer(chain, market, alice, terms(start, quantity=0))


def test_create_offer_reverts_if_price_is_zero(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    with reverts("EnergyMarketZeroPrice"):
        create_offer(chain, market, alice, terms(start, price=0))


@pytest.mark.parametrize("offset", [1, SLOT - 1])
def test_create_offer_reverts_if_delivery_start_is_not_a_slot_boundary(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, offset: int
) -> None:
    with reverts("EnergyMarketUnalignedTime") as caught:
        create_offer(chain, market, alice, terms(start + offset, expiry=start - 60))
    assert caught.value.args_decoded == (start + offset, SLOT)


def test_create_offer_reverts_if_the_slot_could_never_be_settled_or_refunded(
    chain: Chain, market: Contract, alice: LocalAccount
) -> None:
    # The last aligned start whose refund time still fits uint64, and the slot after it.
    latest_start = (2**64 - 1 - SLOT - SETTLEMENT_WINDOW) // SLOT * SLOT
    too_late = latest_start + SLOT

    with reverts("EnergyMarketDeliveryTooLate") as caught:
        create_offer(chain, market, alice, terms(too_late, expiry=latest_start))
    assert caught.value.args_decoded == (too_late,)
    create_offer(chain, market, alice, terms(latest_start, expiry=latest_start))


def test_create_offer_reverts_if_expiry_has_passed(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    expiry = latest_time(chain) - 1

    with reverts("EnergyMarketInvalidExpiry") as caught:
        create_offer(chain, market, alice, terms(start, expiry=expiry))
    got_expiry, got_start, now = caught.value.args_decoded
    assert (got_expiry, got_start) == (expiry, start)
    assert now > expiry


def test_create_offer_reverts_if_expiry_is_after_delivery_start(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    with reverts("EnergyMarketInvalidExpiry") as caught:
        create_offer(chain, market, alice, terms(start, expiry=start + 1))
    assert caught.value.args_decoded[:2] == (start + 1, start)


def test_create_offer_accepts_expiry_at_delivery_start(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start, expiry=start))

    assert offer_of(chain, market, offer_id)["expiry"] == start


# createOfferBySig


def test_create_offer_by_sig_creates_the_offer_for_the_signer(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    deadline = latest_time(chain) + 600
    offer = terms(start)
    signature = signed_offer(chain, market, alice, offer, deadline)

    receipt = relay_offer(chain, market, offer, alice.address, deadline, signature)

    event = only_event(market.events.OfferCreated(), receipt)
    assert (event["offerId"], event["seller"], event["quantityWh"]) == (1, alice.address, QUANTITY)
    assert offer_of(chain, market, 1)["seller"] == alice.address
    assert chain.call(market.functions.nonces(alice.address)) == 1


def test_create_offer_by_sig_uses_the_next_nonce_for_each_offer(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    deadline = latest_time(chain) + 600
    for quantity in (1_000, 2_000):
        offer = terms(start, quantity=quantity)
        signature = signed_offer(chain, market, alice, offer, deadline)
        relay_offer(chain, market, offer, alice.address, deadline, signature)

    assert chain.call(market.functions.nonces(alice.address)) == 2
    assert offer_of(chain, market, 2)["remainingWh"] == 2_000


def test_create_offer_by_sig_reverts_if_signed_by_another_account(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    deadline = latest_time(chain) + 600
    offer = terms(start)
    signature = signed_offer(chain, market, bob, offer, deadline, nonce=0)

    with reverts("EnergyMarketInvalidSignature") as caught:
        relay_offer(chain, market, offer, alice.address, deadline, signature)
    assert to_checksum_address(caught.value.args_decoded[0]) == alice.address


def test_create_offer_by_sig_reverts_if_terms_differ_from_the_signed_ones(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    deadline = latest_time(chain) + 600
    signature = signed_offer(chain, market, alice, terms(start), deadline)

    with reverts("EnergyMarketInvalidSignature"):
        relay_offer(
            chain, market, terms(start, price=PRICE + 1), alice.address, deadline, signature
        )


def test_create_offer_by_sig_reverts_if_the_signature_is_replayed(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    deadline = latest_time(chain) + 600
    offer = terms(start)
    signature = signed_offer(chain, market, alice, offer, deadline)
    relay_offer(chain, market, offer, alice.address, deadline, signature)

    with reverts("EnergyMarketInvalidSignature"):
        relay_offer(chain, market, offer, alice.address, deadline, signature)
    assert chain.call(market.functions.offerCount()) == 1


def test_create_offer_by_sig_reverts_if_signed_for_a_later_nonce(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    deadline = latest_time(chain) + 600
    offer = terms(start)
    signature = signed_offer(chain, market, alice, offer, deadline, nonce=1)

    with reverts("EnergyMarketInvalidSignature"):
        relay_offer(chain, market, offer, alice.address, deadline, signature)


@pytest.mark.parametrize("field", ["chain_id", "verifying_contract"])
def test_create_offer_by_sig_reverts_if_signed_for_another_domain(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    field: str,
) -> None:
    other = {"chain_id": 1, "verifying_contract": deployment.reading_ledger.address}[field]
    domain = dataclasses.replace(market_domain(chain, market), **{field: other})
    deadline = latest_time(chain) + 600
    offer = terms(start)
    signature = sign_typed_data(
        alice.key, offer_typed_data(domain, offer, alice.address, 0, deadline)
    )

    with reverts("EnergyMarketInvalidSignature"):
        relay_offer(chain, market, offer, alice.address, deadline, signature)


def test_create_offer_by_sig_reverts_if_the_deadline_has_passed(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    deadline = latest_time(chain) - 1
    offer = terms(start)
    signature = signed_offer(chain, market, alice, offer, deadline)

    with reverts("EnergyMarketSignatureExpired") as caught:
        relay_offer(chain, market, offer, alice.address, deadline, signature)
    got_deadline, now = caught.value.args_decoded
    assert got_deadline == deadline
    assert now > deadline


def test_create_offer_by_sig_still_requires_the_signer_to_own_the_meter(
    chain: Chain, market: Contract, start: int, bob: LocalAccount
) -> None:
    deadline = latest_time(chain) + 600
    offer = terms(start, meter=PV_ALICE)
    signature = signed_offer(chain, market, bob, offer, deadline)

    with reverts("EnergyMarketNotMeterOwner") as caught:
        relay_offer(chain, market, offer, bob.address, deadline, signature)
    assert caught.value.args_decoded[0] == PV_ALICE


# takeOffer


def test_take_offer_escrows_the_price_and_records_the_trade(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))

    receipt = chain.transact(market.functions.takeOffer(offer_id, HOME_BOB, 4_000), sender=bob)

    assert only_event(market.events.OfferTaken(), receipt) == {
        "tradeId": 1,
        "offerId": offer_id,
        "buyer": bob.address,
        "buyerMeter": HOME_BOB,
        "quantityWh": 4_000,
        "escrow": 1_000,
    }
    assert trade_of(chain, market, 1) == {
        "offerId": offer_id,
        "seller": alice.address,
        "deliveryStart": start,
        "buyer": bob.address,
        "quantityWh": 4_000,
        "sellerMeter": PV_ALICE,
        "buyerMeter": HOME_BOB,
        "pricePerKWh": PRICE,
        "deliveredWh": 0,
        "state": OPEN,
        "escrow": 1_000,
        "paid": 0,
    }
    assert balance(deployment, bob.address) == BUDGET - 1_000
    assert balance(deployment, market.address) == 1_000
    assert offer_of(chain, market, offer_id)["remainingWh"] == QUANTITY - 4_000


def test_partial_takes_reduce_the_remaining_quantity(
    chain: Chain,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    carol: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))

    first = take_offer(chain, market, bob, offer_id, HOME_BOB, 2_000)
    second = take_offer(chain, market, carol, offer_id, HOME_CAROL, 1_000)

    assert (first, second) == (1, 2)
    assert offer_of(chain, market, offer_id)["remainingWh"] == 2_000
    assert trade_of(chain, market, second)["buyer"] == carol.address
    assert chain.call(market.functions.tradeCount()) == 2


@pytest.mark.parametrize(
    ("quantity", "price", "escrow"),
    [(333, 7, 3), (1_000, 7, 7), (143, 7, 2), (1_001, 999, 1_000)],
    ids=["2.331-to-3", "exact", "1.001-to-2", "999.999-to-1000"],
)
def test_take_offer_rounds_the_escrow_up_to_a_whole_minor_unit(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    quantity: int,
    price: int,
    escrow: int,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start, quantity=quantity, price=price))

    trade_id = take_offer(chain, market, bob, offer_id, HOME_BOB, quantity)

    assert trade_of(chain, market, trade_id)["escrow"] == escrow == escrow_for(quantity, price)
    assert balance(deployment, bob.address) == BUDGET - escrow
    assert balance(deployment, market.address) == escrow


def test_take_offer_reverts_if_the_escrow_does_not_fit_128_bits(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    # 1 MWh at ceil(2^128 / 1,000) per kWh: the escrow is 2^128 + 544 minor units, which a
    # plain uint128 cast would turn into an escrow of 544 (within bob's budget).
    price = -(-(2**128) // 1_000)
    offer_id = create_offer(chain, market, alice, terms(start, quantity=1_000_000, price=price))

    with reverts("SafeCastOverflowedUintDowncast") as caught:
        take_offer(chain, market, bob, offer_id, HOME_BOB, 1_000_000)
    assert caught.value.args_decoded == (128, escrow_for(1_000_000, price))
    assert escrow_for(1_000_000, price) == 2**128 + 544
    assert balance(deployment, bob.address) == BUDGET


def test_take_offer_reverts_if_quantity_exceeds_the_remaining(
    chain: Chain,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    carol: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    take_offer(chain, market, bob, offer_id, HOME_BOB, 3_000)

    with reverts("EnergyMarketQuantityExceedsOffer") as caught:
        take_offer(chain, market, carol, offer_id, HOME_CAROL, 2_001)
    assert caught.value.args_decoded == (offer_id, 2_001, 2_000)


def test_take_offer_reverts_if_quantity_is_zero(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))

    with reverts("EnergyMarketZeroQuantity"):
        take_offer(chain, market, bob, offer_id, HOME_BOB, 0)


def test_take_offer_reverts_once_the_offer_has_expired(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start, expiry=start - 600))
    advance_to(chain, start - 600)

    with reverts("EnergyMarketOfferExpired") as caught:
        take_offer(chain, market, bob, offer_id, HOME_BOB, 1_000)
    assert caught.value.args_decoded == (offer_id, start - 600)


def test_take_offer_reverts_if_buyer_meter_is_the_seller_meter(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))

    with reverts("EnergyMarketSameMeter") as caught:
        take_offer(chain, market, alice, offer_id, PV_ALICE, 1_000)
    assert caught.value.args_decoded == (PV_ALICE,)


def test_take_offer_reverts_if_buyer_does_not_own_the_meter(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))

    with reverts("EnergyMarketNotMeterOwner") as caught:
        take_offer(chain, market, bob, offer_id, HOME_CAROL, 1_000)
    meter, account = caught.value.args_decoded
    assert (meter, to_checksum_address(account)) == (HOME_CAROL, bob.address)


def test_take_offer_reverts_without_allowance(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    chain.transact(deployment.settlement_token.functions.approve(market.address, 999), sender=bob)

    with reverts("ERC20InsufficientAllowance") as caught:
        take_offer(chain, market, bob, offer_id, HOME_BOB, 4_000)
    spender, allowance, needed = caught.value.args_decoded
    assert (to_checksum_address(spender), allowance, needed) == (market.address, 999, 1_000)
    assert offer_of(chain, market, offer_id)["remainingWh"] == QUANTITY


def test_take_offer_reverts_without_balance(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    dave: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    fund(chain, deployment, dave, 999)

    with reverts("ERC20InsufficientBalance") as caught:
        take_offer(chain, market, dave, offer_id, PV_DAVE, 4_000)
    account, held, needed = caught.value.args_decoded
    assert (to_checksum_address(account), held, needed) == (dave.address, 999, 1_000)


@pytest.mark.parametrize("offer_id", [0, 2])
def test_take_offer_reverts_if_offer_unknown(
    chain: Chain,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    offer_id: int,
) -> None:
    create_offer(chain, market, alice, terms(start))

    with reverts("EnergyMarketUnknownOffer") as caught:
        take_offer(chain, market, bob, offer_id, HOME_BOB, 1_000)
    assert caught.value.args_decoded == (offer_id,)


# takeOfferBySig


def test_take_offer_by_sig_takes_for_the_signing_buyer(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    deadline = latest_time(chain) + 600
    signature = signed_take(chain, market, bob, offer_id, HOME_BOB, 2_000, deadline)

    receipt = relay_take(chain, market, offer_id, HOME_BOB, 2_000, bob.address, deadline, signature)

    event = only_event(market.events.OfferTaken(), receipt)
    assert (event["buyer"], event["quantityWh"], event["escrow"]) == (bob.address, 2_000, 500)
    assert trade_of(chain, market, 1)["buyer"] == bob.address
    assert balance(deployment, bob.address) == BUDGET - 500
    assert chain.call(market.functions.nonces(bob.address)) == 1


def test_take_offer_by_sig_reverts_if_signed_by_another_account(
    chain: Chain,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    carol: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    deadline = latest_time(chain) + 600
    signature = signed_take(chain, market, carol, offer_id, HOME_BOB, 2_000, deadline, nonce=0)

    with reverts("EnergyMarketInvalidSignature") as caught:
        relay_take(chain, market, offer_id, HOME_BOB, 2_000, bob.address, deadline, signature)
    assert to_checksum_address(caught.value.args_decoded[0]) == bob.address


def test_take_offer_by_sig_reverts_if_quantity_differs_from_the_signed_one(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    deadline = latest_time(chain) + 600
    signature = signed_take(chain, market, bob, offer_id, HOME_BOB, 2_000, deadline)

    with reverts("EnergyMarketInvalidSignature"):
        relay_take(chain, market, offer_id, HOME_BOB, 4_000, bob.address, deadline, signature)


def test_take_offer_by_sig_reverts_if_the_signature_is_replayed(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    deadline = latest_time(chain) + 600
    signature = signed_take(chain, market, bob, offer_id, HOME_BOB, 1_000, deadline)
    relay_take(chain, market, offer_id, HOME_BOB, 1_000, bob.address, deadline, signature)

    with reverts("EnergyMarketInvalidSignature"):
        relay_take(chain, market, offer_id, HOME_BOB, 1_000, bob.address, deadline, signature)
    assert offer_of(chain, market, offer_id)["remainingWh"] == QUANTITY - 1_000
    assert balance(deployment, bob.address) == BUDGET - 250


@pytest.mark.parametrize("field", ["chain_id", "verifying_contract"])
def test_take_offer_by_sig_reverts_if_signed_for_another_domain(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    field: str,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    other = {"chain_id": 1, "verifying_contract": deployment.reading_ledger.address}[field]
    domain = dataclasses.replace(market_domain(chain, market), **{field: other})
    deadline = latest_time(chain) + 600
    typed = take_typed_data(domain, offer_id, HOME_BOB, 1_000, bob.address, 0, deadline)
    signature = sign_typed_data(bob.key, typed)

    with reverts("EnergyMarketInvalidSignature"):
        relay_take(chain, market, offer_id, HOME_BOB, 1_000, bob.address, deadline, signature)


def test_take_offer_by_sig_reverts_if_the_deadline_has_passed(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    deadline = latest_time(chain) - 1
    signature = signed_take(chain, market, bob, offer_id, HOME_BOB, 1_000, deadline)

    with reverts("EnergyMarketSignatureExpired") as caught:
        relay_take(chain, market, offer_id, HOME_BOB, 1_000, bob.address, deadline, signature)
    assert caught.value.args_decoded[0] == deadline


def test_a_customer_without_ether_buys_with_a_permit_and_a_signed_take(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
) -> None:
    erin: LocalAccount = Account.from_key(keccak(text="erin, who holds no ether"))
    register_meter(chain, deployment, meter_id("HOME-ERIN"), erin.address)
    token = deployment.settlement_token
    chain.transact(token.functions.mint(erin.address, 2_000))
    offer_id = create_offer(chain, market, alice, terms(start))
    deadline = latest_time(chain) + 600

    permit_signature = signed_permit(
        chain, token, erin, erin.address, market.address, 500, deadline
    )
    permit(chain, token, erin.address, market.address, 500, deadline, permit_signature)
    take_signature = signed_take(
        chain, market, erin, offer_id, meter_id("HOME-ERIN"), 2_000, deadline
    )
    relay_take(
        chain,
        market,
        offer_id,
        meter_id("HOME-ERIN"),
        2_000,
        erin.address,
        deadline,
        take_signature,
    )

    assert trade_of(chain, market, 1)["buyer"] == erin.address
    assert balance(deployment, erin.address) == 1_500
    assert chain.w3.eth.get_balance(erin.address) == 0


# takeOfferBySigWithPermit


@dataclass(frozen=True)
class PermitBuyer:
    """erin: owns HOME-ERIN and 2,000 units, holds no ether and has approved nothing."""

    account: LocalAccount
    meter: bytes


@pytest.fixture
def erin(chain: Chain, deployment: Deployment) -> PermitBuyer:
    account: LocalAccount = Account.from_key(keccak(text="erin, who holds no ether"))
    register_meter(chain, deployment, meter_id("HOME-ERIN"), account.address)
    chain.transact(deployment.settlement_token.functions.mint(account.address, 2_000))
    return PermitBuyer(account, meter_id("HOME-ERIN"))


def signed_take_and_permit(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    buyer: PermitBuyer,
    offer_id: int,
    quantity: int,
    *,
    permit_value: int = 500,
    deadline: int | None = None,
    permit_signer: LocalAccount | None = None,
) -> tuple[int, bytes, tuple[Any, ...]]:
    """(deadline, take signature, permit tuple) of `buyer` for a take of `quantity`."""
    deadline = latest_time(chain) + 600 if deadline is None else deadline
    take_signature = signed_take(
        chain, market, buyer.account, offer_id, buyer.meter, quantity, deadline
    )
    permit_signature = signed_permit(
        chain,
        deployment.settlement_token,
        permit_signer or buyer.account,
        buyer.account.address,
        market.address,
        permit_value,
        deadline,
    )
    return deadline, take_signature, permit_tuple(permit_value, deadline, permit_signature)


def test_take_with_permit_buys_for_a_customer_without_ether_in_one_call(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    erin: PermitBuyer,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    deadline, signature, permit_signature = signed_take_and_permit(
        chain, deployment, market, erin, offer_id, 2_000
    )
    address = erin.account.address

    receipt = relay_take_with_permit(
        chain, market, offer_id, erin.meter, 2_000, address, deadline, signature, permit_signature
    )

    assert only_event(market.events.OfferTaken(), receipt)["escrow"] == 500
    assert trade_of(chain, market, 1)["buyer"] == address
    assert balance(deployment, address) == 1_500
    token = deployment.settlement_token
    assert chain.call(token.functions.nonces(address)) == 1  # the permit was used
    assert chain.call(token.functions.allowance(address, market.address)) == 0
    assert chain.w3.eth.get_balance(address) == 0


def test_take_with_permit_reverts_whole_and_leaves_the_permit_unused_if_the_take_is_refused(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    erin: PermitBuyer,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    address = erin.account.address
    deadline, signature, permit_signature = signed_take_and_permit(
        chain, deployment, market, erin, offer_id, QUANTITY + 1
    )

    with reverts("EnergyMarketQuantityExceedsOffer"):
        relay_take_with_permit(
            chain,
            market,
            offer_id,
            erin.meter,
            QUANTITY + 1,
            address,
            deadline,
            signature,
            permit_signature,
        )
    token = deployment.settlement_token
    assert chain.call(token.functions.nonces(address)) == 0
    assert chain.call(token.functions.allowance(address, market.address)) == 0
    assert chain.call(market.functions.nonces(address)) == 0


def test_take_with_permit_goes_through_if_someone_used_the_permit_first(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    erin: PermitBuyer,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    address = erin.account.address
    deadline, signature, permit_signature = signed_take_and_permit(
        chain, deployment, market, erin, offer_id, 2_000
    )
    # A front-runner copies the permit out of the pending call and sends it on its own.
    value, _, v, r, s = permit_signature
    token = deployment.settlement_token
    chain.transact(token.functions.permit(address, market.address, value, deadline, v, r, s))

    relay_take_with_permit(
        chain, market, offer_id, erin.meter, 2_000, address, deadline, signature, permit_signature
    )

    assert trade_of(chain, market, 1)["escrow"] == 500
    assert balance(deployment, address) == 1_500


@pytest.mark.parametrize("fault", ["ERC2612InvalidSigner", "ERC2612ExpiredSignature"])
def test_take_with_permit_reverts_with_the_permits_error_if_it_fails_and_nothing_covers_the_escrow(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    erin: PermitBuyer,
    fault: str,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    now = latest_time(chain)
    # An expired permit expires before the take's own signature does.
    deadline, signature, permit_signature = signed_take_and_permit(
        chain,
        deployment,
        market,
        erin,
        offer_id,
        2_000,
        permit_signer=bob if fault == "ERC2612InvalidSigner" else None,
    )
    if fault == "ERC2612ExpiredSignature":
        expired = signed_permit(
            chain, deployment.settlement_token, erin.account, erin.account.address,
            market.address, 500, now - 1,
        )  # fmt: skip
        permit_signature = permit_tuple(500, now - 1, expired)

    with reverts(fault):
        relay_take_with_permit(
            chain,
            market,
            offer_id,
            erin.meter,
            2_000,
            erin.account.address,
            deadline,
            signature,
            permit_signature,
        )
    assert chain.call(market.functions.tradeCount()) == 0


def test_take_with_permit_reverts_if_the_permitted_value_is_below_the_escrow(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    erin: PermitBuyer,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    deadline, signature, permit_signature = signed_take_and_permit(
        chain, deployment, market, erin, offer_id, 2_000, permit_value=499
    )

    with reverts("ERC20InsufficientAllowance") as caught:
        relay_take_with_permit(
            chain,
            market,
            offer_id,
            erin.meter,
            2_000,
            erin.account.address,
            deadline,
            signature,
            permit_signature,
        )
    _, allowance, needed = caught.value.args_decoded
    assert (allowance, needed) == (499, 500)


# cancelOffer


def test_cancel_offer_withdraws_the_untaken_rest(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    trade_id = take_offer(chain, market, bob, offer_id, HOME_BOB, 2_000)

    receipt = chain.transact(market.functions.cancelOffer(offer_id), sender=alice)

    assert only_event(market.events.OfferCancelled(), receipt) == {
        "offerId": offer_id,
        "withdrawnWh": 3_000,
    }
    offer = offer_of(chain, market, offer_id)
    assert (offer["cancelled"], offer["remainingWh"]) == (True, 0)
    assert trade_of(chain, market, trade_id)["state"] == OPEN


def test_cancel_offer_reverts_if_caller_is_not_the_seller(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))

    with reverts("EnergyMarketNotSeller") as caught:
        chain.transact(market.functions.cancelOffer(offer_id), sender=bob)
    got_offer, account = caught.value.args_decoded
    assert (got_offer, to_checksum_address(account)) == (offer_id, bob.address)
    assert offer_of(chain, market, offer_id)["cancelled"] is False


def test_take_offer_reverts_after_the_offer_is_cancelled(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    chain.transact(market.functions.cancelOffer(offer_id), sender=alice)

    with reverts("EnergyMarketOfferNotOpen") as caught:
        take_offer(chain, market, bob, offer_id, HOME_BOB, 1_000)
    assert caught.value.args_decoded == (offer_id,)


def test_cancel_offer_reverts_if_the_offer_is_fully_taken(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    take_offer(chain, market, bob, offer_id, HOME_BOB, QUANTITY)

    with reverts("EnergyMarketOfferNotOpen") as caught:
        chain.transact(market.functions.cancelOffer(offer_id), sender=alice)
    assert caught.value.args_decoded == (offer_id,)


def test_cancel_offer_reverts_if_already_cancelled(
    chain: Chain, market: Contract, start: int, alice: LocalAccount
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    chain.transact(market.functions.cancelOffer(offer_id), sender=alice)

    with reverts("EnergyMarketOfferNotOpen"):
        chain.transact(market.functions.cancelOffer(offer_id), sender=alice)


def test_cancel_offer_reverts_if_offer_unknown(
    chain: Chain, market: Contract, alice: LocalAccount
) -> None:
    with reverts("EnergyMarketUnknownOffer") as caught:
        chain.transact(market.functions.cancelOffer(1), sender=alice)
    assert caught.value.args_decoded == (1,)


# settle: amounts


@pytest.mark.parametrize(
    ("exported", "imported", "delivered"),
    [(8_000, 9_000, 5_000), (2_000, 9_000, 2_000), (8_000, 3_000, 3_000)],
    ids=["contracted", "seller-export", "buyer-import"],
)
def test_settle_pays_for_the_least_of_contracted_exported_and_imported(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    exported: int,
    imported: int,
    delivered: int,
) -> None:
    trade_id = trade(chain, market, start, alice, bob)
    done = deliver(chain, deployment, trade_id, start, exported=exported, imported=imported)

    receipt = settle(chain, market, trade_id, done.evidence())

    paid = delivered * PRICE // 1_000
    assert only_event(market.events.TradeSettled(), receipt) == {
        "tradeId": trade_id,
        "deliveredWh": delivered,
        "paid": paid,
        "refunded": 1_250 - paid,
    }
    assert balance(deployment, alice.address) == paid
    assert balance(deployment, bob.address) == BUDGET - paid
    assert balance(deployment, market.address) == 0
    settled = trade_of(chain, market, trade_id)
    assert (settled["state"], settled["deliveredWh"], settled["paid"]) == (SETTLED, delivered, paid)
    assert chain.call(market.functions.exportSettled(PV_ALICE, start)) == delivered
    assert chain.call(market.functions.importSettled(HOME_BOB, start)) == delivered


@pytest.mark.parametrize(
    ("exported", "paid"),
    [(333, 2), (142, 0)],
    ids=["2.331-to-2", "0.994-to-0"],
)
def test_settle_rounds_the_payment_down_and_refunds_the_rest(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    exported: int,
    paid: int,
) -> None:
    trade_id = trade(chain, market, start, alice, bob, quantity=333, price=7)  # escrow 3
    done = deliver(chain, deployment, trade_id, start, exported=exported, imported=1_000)

    receipt = settle(chain, market, trade_id, done.evidence())

    event = only_event(market.events.TradeSettled(), receipt)
    assert (event["deliveredWh"], event["paid"], event["refunded"]) == (exported, paid, 3 - paid)
    assert event["paid"] + event["refunded"] == trade_of(chain, market, trade_id)["escrow"] == 3
    assert balance(deployment, alice.address) == paid
    assert balance(deployment, bob.address) == BUDGET - paid
    assert balance(deployment, market.address) == 0


# settle: timing and state


def test_settle_reverts_before_the_delivery_slot_ends(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    trade_id = trade(chain, market, start, alice, bob)
    advance_to(chain, start + SLOT // 2)

    with reverts("EnergyMarketDeliveryNotOver") as caught:
        settle(chain, market, trade_id, [])
    assert caught.value.args_decoded == (trade_id, start + SLOT)


def test_settle_reverts_if_a_register_decreased_between_the_boundaries(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    trade_id = trade(chain, market, start, alice, bob)
    done = deliver(chain, deployment, trade_id, start, exported=-100, imported=3_000)

    with reverts("EnergyMarketRegisterDecreased") as caught:
        settle(chain, market, trade_id, done.evidence())
    assert caught.value.args_decoded == (PV_ALICE, start + SLOT)


# settle: boundary evidence


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(-1, False), (0, True), (BOUNDARY_WINDOW - 1, True), (BOUNDARY_WINDOW, False)],
    ids=["before", "at-boundary", "last-second", "window-end"],
)
def test_boundary_reading_must_be_within_the_boundary_window(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    offset: int,
    accepted: bool,
) -> None:
    before = reading(PV_ALICE, 4, start - 900, 100, 200)
    candidate = reading(PV_ALICE, 5, start + offset, 110, 250)
    batch = anchor_readings(chain, deployment, [before, candidate])
    call = market.functions.pinBoundary(boundary_evidence(start, batch, candidate, before))

    if accepted:
        chain.transact(call)
        assert boundary_of(chain, market, PV_ALICE, start) == (5, 110, 250, True)
    else:
        # A reading just before the boundary also has a valid-looking predecessor: only the
        # window check stops it.
        with reverts("EnergyMarketReadingOutsideBoundary") as caught:
            chain.transact(call)
        assert caught.value.args_decoded == (PV_ALICE, start, start + offset)


@pytest.mark.parametrize("previous_offset", [0, 30])
def test_pin_boundary_reverts_if_previous_reading_is_not_before_the_boundary(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    previous_offset: int,
) -> None:
    first = reading(PV_ALICE, 7, start + previous_offset, 100, 200)
    later = reading(PV_ALICE, 8, start + 60, 110, 260)
    batch = anchor_readings(chain, deployment, [first, later])

    # `later` is in the window, but `first` is the first reading at or after the boundary.
    with reverts("EnergyMarketInvalidPreviousReading") as caught:
        chain.transact(market.functions.pinBoundary(boundary_evidence(start, batch, later, first)))
    assert caught.value.args_decoded == (PV_ALICE, 8, 7, start + previous_offset)


def test_pin_boundary_accepts_seq_zero_without_a_previous_reading(
    chain: Chain, deployment: Deployment, market: Contract, start: int
) -> None:
    first_ever = reading(PV_ALICE, 0, start + 5, 0, 0)
    batch = anchor_readings(chain, deployment, [first_ever])
    unanchored = reading(HOME_BOB, 41, start + 999_999, 1, 1)
    # The previous field is ignored for seq 0, even when it is not anchored at all.
    evidence = (start, batch.anchored(first_ever), (reading_fields(unanchored), 99, []))

    chain.transact(market.functions.pinBoundary(evidence))

    assert boundary_of(chain, market, PV_ALICE, start) == (0, 0, 0, True)


def test_pin_boundary_reverts_if_the_readings_are_of_another_chain(
    chain: Chain, deployment: Deployment, market: Contract, start: int
) -> None:
    # The same readings signed for chain 1 and for this chain (1337), all anchored here.
    elsewhere = MeterSeries.build(PV_ALICE, start, [(30, 4_000)], chain_id=1)
    here = MeterSeries.build(PV_ALICE, start, [(30, 4_000)])
    batch = anchor_readings(chain, deployment, [*elsewhere.readings, *here.readings])

    with reverts("EnergyMarketReadingNotAnchored") as caught:
        chain.transact(market.functions.pinBoundary(elsewhere.evidence(batch, 0)))
    assert caught.value.args_decoded == (PV_ALICE, 1, batch.batch_id)
    chain.transact(market.functions.pinBoundary(here.evidence(batch, 0)))
    assert boundary_of(chain, market, PV_ALICE, start)[3] is True


# settle: no double counting, pinned boundaries


def test_two_trades_from_one_seller_meter_share_its_export(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
    carol: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start, quantity=6_000))
    to_bob = take_offer(chain, market, bob, offer_id, HOME_BOB, 3_000)
    to_carol = take_offer(chain, market, carol, offer_id, HOME_CAROL, 3_000)
    # alice exports 4,000 Wh; bob and carol each import more than they bought.
    done = deliver(chain, deployment, to_bob, start, exported=4_000, imported=5_000)
    carol_series = MeterSeries.build(HOME_CAROL, start, [(5_000, 0)])
    carol_batch = anchor_readings(chain, deployment, carol_series.readings)
    settle(chain, market, to_bob, done.evidence())

    # alice's boundaries are pinned: only carol's are needed.
    receipt = settle(
        chain,
        market,
        to_carol,
        [carol_series.evidence(carol_batch, 0), carol_series.evidence(carol_batch, 1)],
    )

    event = only_event(market.events.TradeSettled(), receipt)
    assert (event["deliveredWh"], event["paid"], event["refunded"]) == (1_000, 250, 500)
    assert trade_of(chain, market, to_bob)["deliveredWh"] == 3_000
    assert chain.call(market.functions.exportSettled(PV_ALICE, start)) == 4_000
    assert balance(deployment, alice.address) == 1_000  # 4,000 Wh at 250 per kWh, once
    assert balance(deployment, carol.address) == BUDGET - 250
    assert balance(deployment, market.address) == 0


def test_two_trades_into_one_buyer_meter_share_its_import(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    dave: LocalAccount,
    bob: LocalAccount,
) -> None:
    from_alice = trade(chain, market, start, alice, bob, quantity=3_000)
    from_dave = trade(chain, market, start, dave, bob, seller_meter=PV_DAVE, quantity=3_000)
    # bob imports 4,000 Wh; alice and dave each export more than they sold.
    done = deliver(chain, deployment, from_alice, start, exported=5_000, imported=4_000)
    dave_series = MeterSeries.build(PV_DAVE, start, [(0, 5_000)])
    dave_batch = anchor_readings(chain, deployment, dave_series.readings)
    settle(chain, market, from_alice, done.evidence())

    receipt = settle(
        chain,
        market,
        from_dave,
        [dave_series.evidence(dave_batch, 0), dave_series.evidence(dave_batch, 1)],
    )

    assert only_event(market.events.TradeSettled(), receipt)["deliveredWh"] == 1_000
    assert chain.call(market.functions.importSettled(HOME_BOB, start)) == 4_000
    assert balance(deployment, alice.address) == 750
    assert balance(deployment, dave.address) == 250
    assert balance(deployment, bob.address) == BUDGET - 1_000  # 4,000 Wh, once


def test_a_trade_gets_nothing_once_the_export_is_used_up(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    offer_id = create_offer(chain, market, alice, terms(start))
    first = take_offer(chain, market, bob, offer_id, HOME_BOB, 2_000)
    second = take_offer(chain, market, bob, offer_id, HOME_BOB, 2_000)
    done = deliver(chain, deployment, first, start, exported=2_000, imported=9_000)
    settle(chain, market, first, done.evidence())

    receipt = settle(chain, market, second, [])

    assert only_event(market.events.TradeSettled(), receipt) == {
        "tradeId": second,
        "deliveredWh": 0,
        "paid": 0,
        "refunded": 500,
    }
    assert balance(deployment, alice.address) == 500
    assert balance(deployment, bob.address) == BUDGET - 500


def test_adjacent_slots_share_their_boundary(
    chain: Chain,
    deployment: Deployment,
    market: Contract,
    start: int,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    first = trade(chain, market, start, alice, bob, quantity=9_000)
    second = trade(chain, market, start + SLOT, alice, bob, quantity=9_000)
    seller = MeterSeries.build(PV_ALICE, start, [(0, 1_200), (0, 2_300)])
    buyer = MeterSeries.build(HOME_BOB, start, [(9_000, 0), (9_000, 0)])
    batch = anchor_readings(chain, deployment, [*seller.readings, *buyer.readings])
    advance_to(chain, start + 2 * SLOT + 120)
    settle(
        chain,
        market,
        first,
        [seller.evidence(batch, k) for k in (0, 1)] + [buyer.evidence(batch, k) for k in (0, 1)],
    )

    # The end boundary of the first slot is the start boundary of the second: only the second
    # slot's end boundaries are needed.
    settle(chain, market, second, [seller.evidence(batch, 2), buyer.evidence(batch, 2)])

    assert trade_of(chain, market, first)["deliveredWh"] == 1_200
    assert trade_of(chain, market, second)["deliveredWh"] == 2_300
    shared = seller.at(1)
    assert boundary_of(chain, market, PV_ALICE, start + SLOT) == (
        shared.seq,
        shared.import_wh,
        shared.export_wh,
        True,
    )


# refund


def test_refund_reverts_if_trade_unknown(chain: Chain, market: Contract) -> None:
    with reverts("EnergyMarketUnknownTrade") as caught:
        chain.transact(market.functions.refund(1))
    assert caught.value.args_decoded == (1,)


# views


def test_offer_and_trade_views_revert_for_unknown_ids(
    chain: Chain, market: Contract, start: int, alice: LocalAccount, bob: LocalAccount
) -> None:
    trade(chain, market, start, alice, bob)

    for offer_id in (0, 2):
        with reverts("EnergyMarketUnknownOffer"):
            chain.call(market.functions.offer(offer_id))
    for trade_id in (0, 2):
        with reverts("EnergyMarketUnknownTrade"):
            chain.call(market.functions.trade(trade_id))


def test_an_unpinned_boundary_reads_as_zero(chain: Chain, market: Contract, start: int) -> None:
    assert boundary_of(chain, market, PV_ALICE, start) == (0, 0, 0, False)


class TestSettle:
    """Settling the `delivery` fixture's trade: events, timing, state, evidence count."""

    def test_settle_pins_the_four_boundaries(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        receipt = settle(chain, market, delivery.trade_id, delivery.evidence())

        pinned = events(market.events.BoundaryPinned(), receipt)
        expected = []
        for series in (delivery.seller, delivery.buyer):
            for k in (0, 1):
                r = series.at(k)
                expected.append(
                    {
                        "meterId": series.meter,
                        "time": delivery.start + k * SLOT,
                        "seq": r.seq,
                        "importWh": r.import_wh,
                        "exportWh": r.export_wh,
                    }
                )
                assert boundary_of(chain, market, series.meter, delivery.start + k * SLOT) == (
                    r.seq,
                    r.import_wh,
                    r.export_wh,
                    True,
                )
        assert pinned == expected

    def test_anyone_may_settle_a_trade(
        self, chain: Chain, market: Contract, delivery: Delivery, stranger: LocalAccount
    ) -> None:
        call = market.functions.settle(delivery.trade_id, delivery.evidence())
        chain.transact(call, sender=stranger)

        assert trade_of(chain, market, delivery.trade_id)["deliveredWh"] == 3_000

    def test_settle_reverts_once_the_settlement_window_has_closed(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        deadline = delivery.end + SETTLEMENT_WINDOW
        advance_to(chain, deadline)

        with reverts("EnergyMarketSettlementClosed") as caught:
            settle(chain, market, delivery.trade_id, delivery.evidence())
        assert caught.value.args_decoded == (delivery.trade_id, deadline)

    def test_settle_reverts_if_the_trade_is_already_settled(
        self, chain: Chain, deployment: Deployment, market: Contract, delivery: Delivery
    ) -> None:
        settle(chain, market, delivery.trade_id, delivery.evidence())

        with reverts("EnergyMarketTradeNotOpen") as caught:
            settle(chain, market, delivery.trade_id, [])
        assert caught.value.args_decoded == (delivery.trade_id, SETTLED)
        assert balance(deployment, market.address) == 0

    @pytest.mark.parametrize("trade_id", [0, 2])
    def test_settle_reverts_if_trade_unknown(
        self, chain: Chain, market: Contract, delivery: Delivery, trade_id: int
    ) -> None:
        with reverts("EnergyMarketUnknownTrade") as caught:
            settle(chain, market, trade_id, [])
        assert caught.value.args_decoded == (trade_id,)

    def test_settle_reverts_with_more_than_four_evidence_items(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        evidence = delivery.evidence()

        with reverts("EnergyMarketTooMuchEvidence") as caught:
            settle(chain, market, delivery.trade_id, [*evidence, evidence[0]])
        assert caught.value.args_decoded == (5,)

    @pytest.mark.parametrize(
        "missing", [0, 1, 2, 3], ids=["seller-start", "seller-end", "buyer-start", "buyer-end"]
    )
    def test_settle_reverts_if_a_boundary_is_not_pinned(
        self, chain: Chain, market: Contract, delivery: Delivery, missing: int
    ) -> None:
        evidence = delivery.evidence()
        meter = (PV_ALICE, PV_ALICE, HOME_BOB, HOME_BOB)[missing]
        time = delivery.start + (missing % 2) * SLOT

        with reverts("EnergyMarketBoundaryNotPinned") as caught:
            settle(chain, market, delivery.trade_id, evidence[:missing] + evidence[missing + 1 :])
        assert caught.value.args_decoded == (meter, time)


class TestBoundaryEvidence:
    """Boundary evidence that must not be accepted, on the `delivery` fixture's readings."""

    def test_settle_reverts_if_boundary_reading_is_outside_the_window(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        evidence = delivery.evidence()
        # The seller's reading before the slot, offered as its start boundary reading.
        evidence[0] = swap_reading(
            evidence[0], delivery.batch.anchored(delivery.seller.readings[0])
        )

        with reverts("EnergyMarketReadingOutsideBoundary") as caught:
            settle(chain, market, delivery.trade_id, evidence)
        assert caught.value.args_decoded == (PV_ALICE, delivery.start, delivery.start - 600)

    def test_settle_reverts_if_previous_reading_is_of_another_meter(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        evidence = delivery.evidence()
        buyer_before = delivery.buyer.readings[0]
        evidence[0] = swap_previous(evidence[0], delivery.batch.anchored(buyer_before))

        with reverts("EnergyMarketInvalidPreviousReading") as caught:
            settle(chain, market, delivery.trade_id, evidence)
        assert caught.value.args_decoded == (PV_ALICE, 1, 0, buyer_before.timestamp)

    def test_settle_reverts_if_previous_reading_is_not_seq_minus_one(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        evidence = delivery.evidence()
        # The end boundary reading (seq 2) with seq 0 as its "previous": both anchored, both before
        # the boundary, but seq 1 lies between them.
        seq0 = delivery.seller.readings[0]
        evidence[1] = swap_previous(evidence[1], delivery.batch.anchored(seq0))

        with reverts("EnergyMarketInvalidPreviousReading") as caught:
            settle(chain, market, delivery.trade_id, evidence)
        assert caught.value.args_decoded == (PV_ALICE, 2, 0, seq0.timestamp)

    def test_pin_boundary_reverts_if_time_is_not_a_slot_boundary(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        _, boundary, previous = delivery.seller.evidence(delivery.batch, 0)

        with reverts("EnergyMarketUnalignedTime") as caught:
            chain.transact(market.functions.pinBoundary((delivery.start + 60, boundary, previous)))
        assert caught.value.args_decoded == (delivery.start + 60, SLOT)

    def test_settle_reverts_if_boundary_reading_is_not_in_the_batch(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        evidence = delivery.evidence()
        anchored = delivery.seller.at(0)
        forged = dataclasses.replace(anchored, export_wh=anchored.export_wh - 1_000)
        # The forged reading's fields with the anchored reading's batch and (valid) proof.
        _, batch_id, proof = delivery.batch.anchored(anchored)
        evidence[0] = swap_reading(evidence[0], (reading_fields(forged), batch_id, proof))

        with reverts("EnergyMarketReadingNotAnchored") as caught:
            settle(chain, market, delivery.trade_id, evidence)
        assert caught.value.args_decoded == (PV_ALICE, 1, delivery.batch.batch_id)

    @pytest.mark.parametrize("field", ["meter", "seq", "timestamp", "import", "export", "status"])
    def test_settle_reverts_if_any_field_of_a_reading_is_tampered_with(
        self, chain: Chain, market: Contract, delivery: Delivery, field: str
    ) -> None:
        evidence = delivery.evidence()
        time, (fields, batch_id, proof), previous = evidence[3]
        index = ["meter", "seq", "timestamp", "import", "export", "status"].index(field)
        tampered = list(fields)
        tampered[index] = HOME_CAROL if field == "meter" else tampered[index] + 1
        evidence[3] = (time, (tuple(tampered), batch_id, proof), previous)

        with reverts("EnergyMarketReadingNotAnchored") as caught:
            settle(chain, market, delivery.trade_id, evidence)
        assert caught.value.args_decoded == (tampered[0], tampered[1], batch_id)

    def test_settle_reverts_if_previous_reading_is_not_anchored(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        evidence = delivery.evidence()
        before = delivery.seller.readings[0]
        (fields, batch_id, proof) = delivery.batch.anchored(before)
        not_anchored = (fields[:4] + (fields[4] + 1,) + fields[5:], batch_id, proof)
        evidence[0] = swap_previous(evidence[0], not_anchored)

        with reverts("EnergyMarketReadingNotAnchored") as caught:
            settle(chain, market, delivery.trade_id, evidence)
        assert caught.value.args_decoded == (PV_ALICE, 0, delivery.batch.batch_id)

    def test_an_inner_node_cannot_pass_as_a_reading(
        self, chain: Chain, deployment: Deployment, market: Contract, delivery: Delivery
    ) -> None:
        ledger = deployment.reading_ledger
        target = delivery.seller.at(0)
        index = delivery.batch.readings.index(target)
        proof = delivery.batch.tree.proof(index)
        inner = hash_pair(reading_leaf(target.encode()), proof[0])
        # The ledger verifies hashes: an inner node with the rest of the proof passes there...
        assert chain.call(ledger.functions.verifyReading(delivery.batch.batch_id, inner, proof[1:]))
        # ...but the market takes a reading's fields and hashes them into a leaf itself: the reading
        # with that shortened proof does not verify.
        evidence = delivery.evidence()
        shortened = (reading_fields(target), delivery.batch.batch_id, proof[1:])
        evidence[0] = swap_reading(evidence[0], shortened)

        with reverts("EnergyMarketReadingNotAnchored"):
            settle(chain, market, delivery.trade_id, evidence)

    def test_settle_reverts_if_the_reading_is_in_another_batch(
        self, chain: Chain, deployment: Deployment, market: Contract, delivery: Delivery
    ) -> None:
        other = anchor_readings(chain, deployment, [reading(PV_DAVE, 0, delivery.start, 0, 0)])
        evidence = delivery.evidence()
        fields, _, proof = delivery.batch.anchored(delivery.seller.at(0))
        evidence[0] = swap_reading(evidence[0], (fields, other.batch_id, proof))

        with reverts("EnergyMarketReadingNotAnchored") as caught:
            settle(chain, market, delivery.trade_id, evidence)
        assert caught.value.args_decoded == (PV_ALICE, 1, other.batch_id)

    def test_settle_reverts_if_the_batch_is_not_anchored(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        evidence = delivery.evidence()
        fields, _, proof = delivery.batch.anchored(delivery.seller.at(0))
        evidence[0] = swap_reading(evidence[0], (fields, 7, proof))

        with reverts("ReadingLedgerUnknownBatch") as caught:
            settle(chain, market, delivery.trade_id, evidence)
        assert caught.value.args_decoded == (7,)

    def test_a_pinned_boundary_ignores_later_evidence(
        self, chain: Chain, deployment: Deployment, market: Contract, delivery: Delivery
    ) -> None:
        chain.transact(market.functions.pinBoundary(delivery.seller.evidence(delivery.batch, 0)))
        # A conflicting version of the same boundary reading (same meter and seq, 2,000 Wh more
        # export, so 2,000 Wh less in the slot), anchored later: it verifies, but the boundary was
        # pinned first.
        original = delivery.seller.at(0)
        conflicting = dataclasses.replace(original, export_wh=original.export_wh + 2_000)
        later = anchor_readings(chain, deployment, [delivery.seller.readings[0], conflicting])
        evidence = boundary_evidence(
            delivery.start, later, conflicting, delivery.seller.readings[0]
        )

        receipt = chain.transact(market.functions.pinBoundary(evidence))
        settle(chain, market, delivery.trade_id, [evidence, *delivery.evidence()[1:]])

        assert events(market.events.BoundaryPinned(), receipt) == []
        assert boundary_of(chain, market, PV_ALICE, delivery.start) == (
            original.seq,
            original.import_wh,
            original.export_wh,
            True,
        )
        assert trade_of(chain, market, delivery.trade_id)["deliveredWh"] == 3_000


class TestRefund:
    """Refunds of the `delivery` fixture's trade."""

    def test_refund_reverts_while_settlement_is_open(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        with reverts("EnergyMarketSettlementStillOpen") as caught:
            chain.transact(market.functions.refund(delivery.trade_id))
        assert caught.value.args_decoded == (delivery.trade_id, delivery.end + SETTLEMENT_WINDOW)

    def test_refund_returns_the_whole_escrow_after_the_settlement_window(
        self,
        chain: Chain,
        deployment: Deployment,
        market: Contract,
        delivery: Delivery,
        alice: LocalAccount,
        bob: LocalAccount,
        stranger: LocalAccount,
    ) -> None:
        advance_to(chain, delivery.end + SETTLEMENT_WINDOW)

        receipt = chain.transact(market.functions.refund(delivery.trade_id), sender=stranger)

        assert only_event(market.events.TradeRefunded(), receipt) == {
            "tradeId": delivery.trade_id,
            "refunded": 1_250,
        }
        assert trade_of(chain, market, delivery.trade_id)["state"] == REFUNDED
        assert balance(deployment, bob.address) == BUDGET
        assert balance(deployment, alice.address) == 0
        assert balance(deployment, market.address) == 0

    def test_refund_reverts_if_the_trade_is_settled(
        self, chain: Chain, market: Contract, delivery: Delivery
    ) -> None:
        settle(chain, market, delivery.trade_id, delivery.evidence())
        advance_to(chain, delivery.end + SETTLEMENT_WINDOW)

        with reverts("EnergyMarketTradeNotOpen") as caught:
            chain.transact(market.functions.refund(delivery.trade_id))
        assert caught.value.args_decoded == (delivery.trade_id, SETTLED)

    def test_settle_and_refund_revert_once_the_trade_is_refunded(
        self, chain: Chain, deployment: Deployment, market: Contract, delivery: Delivery
    ) -> None:
        advance_to(chain, delivery.end + SETTLEMENT_WINDOW)
        chain.transact(market.functions.refund(delivery.trade_id))

        with reverts("EnergyMarketTradeNotOpen") as caught:
            settle(chain, market, delivery.trade_id, [])
        assert caught.value.args_decoded == (delivery.trade_id, REFUNDED)
        with reverts("EnergyMarketTradeNotOpen"):
            chain.transact(market.functions.refund(delivery.trade_id))
        assert balance(deployment, market.address) == 0
