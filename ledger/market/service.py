"""The peer-to-peer energy market: EIP-712 orders, relaying them, and settlement evidence.

A prosumer signs an `Offer` and a neighbour signs a `Take` (EIP-712 typed data, domain
"EnergyMarket" / "1" with the chain id and the market's address, a per-signer nonce and a
deadline); the gateway checks the signature locally, so a bad one is refused with a clear code
before any gas is spent, and relays it to `EnergyMarket`, paying the gas. Settlement needs each
meter's boundary readings (the first reading at or after each slot boundary, and the reading before
it, see contracts/interfaces/IEnergyMarket.sol); `Market.boundary_evidence` finds them in the
store with their Merkle proofs, and `Market.settle` sends only the boundaries not yet pinned.

Nothing is mined for a refused order: every relay is one contract call pre-checked with
`eth_call` (`Chain.transact`), and a buyer's token permit travels inside its take
(`takeOfferBySigWithPermit`), never as a transaction of its own. Each signer may have at most
`relay_quota_per_hour` orders relayed in any hour (`RelayQuota`, counted in the database).

Money is integer minor units (the settlement token has 6 decimals) and energy integer Wh
throughout; `escrow_for` and `payment_for` are the contract's rounding rules in Python, for
clients, tests and auditors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from enum import IntEnum
from time import time as wall_clock
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from ledger.anchoring.anchorer import ProofService
from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.errors import ContractRevert, LedgerError
from ledger.store.database import Store
from ledger.store.readings import StoredReading

WH_PER_KWH = 1000

OFFER_FIELDS = [
    {"name": "sellerMeter", "type": "bytes32"},
    {"name": "quantityWh", "type": "uint64"},
    {"name": "pricePerKWh", "type": "uint128"},
    {"name": "deliveryStart", "type": "uint64"},
    {"name": "expiry", "type": "uint64"},
    {"name": "seller", "type": "address"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
TAKE_FIELDS = [
    {"name": "offerId", "type": "uint256"},
    {"name": "buyerMeter", "type": "bytes32"},
    {"name": "quantityWh", "type": "uint64"},
    {"name": "buyer", "type": "address"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
PERMIT_FIELDS = [
    {"name": "owner", "type": "address"},
    {"name": "spender", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


class InvalidOrderSignature(LedgerError):
    """The order's signature is not its signer's over this message, chain, market and nonce."""

    code = "invalid_signature"


class EvidenceUnavailable(LedgerError):
    """A boundary reading needed for settlement is not stored, or not anchored yet."""

    code = "evidence_unavailable"


class RelayQuotaExceeded(LedgerError):
    """The signer has had as many orders relayed in the last hour as the quota allows."""

    code = "relay_quota_exceeded"

    def __init__(self, *, signer: str, limit: int, retry_after_s: int) -> None:
        self.signer = signer
        self.retry_after_s = retry_after_s
        super().__init__(
            f"{signer} has had {limit} orders relayed in the last hour, the most allowed: "
            f"retry in {retry_after_s} s"
        )


RELAY_WINDOW_S = 3600


class RelayQuota:
    """At most `per_hour` relayed orders per signer address in any `RELAY_WINDOW_S` seconds.

    The count is kept in the store, so every worker and gateway on one database shares it. Only
    orders that pass every check are counted: a reservation is made after the local signature
    checks and given back when the contract call's pre-check refuses it (nothing was mined).
    """

    def __init__(
        self, store: Store, *, per_hour: int, clock: Callable[[], float] = wall_clock
    ) -> None:
        self._store = store
        self.per_hour = per_hour
        self._clock = clock

    @contextmanager
    def relay(self, signer: str) -> Iterator[None]:
        """Reserves one of `signer`'s relays for the block, which sends the order.

        Raises:
            RelayQuotaExceeded: the signer's quota is used up (nothing is reserved).
        """
        slot = self._store.reserve_relay(
            signer, now=int(self._clock()), window_s=RELAY_WINDOW_S, limit=self.per_hour
        )
        if slot.row_id is None:
            raise RelayQuotaExceeded(
                signer=signer, limit=self.per_hour, retry_after_s=slot.retry_after_s
            )
        try:
            yield
        except ContractRevert:
            # Refused by the eth_call pre-check, so nothing was mined (a transaction that passed
            # it and reverted when mined, a rare timing race, is forgiven too).
            self._store.release_relay(slot.row_id)
            raise


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


@dataclass(frozen=True)
class MarketDomain:
    """The EIP-712 domain of one EnergyMarket deployment."""

    name: str
    version: str
    chain_id: int
    verifying_contract: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


@dataclass(frozen=True)
class PermitSignature:
    """A buyer's ERC-2612 permit letting the market spend `value` units until `deadline`."""

    value: int
    deadline: int
    signature: bytes  # 65 bytes r || s || v

    def as_tuple(self) -> tuple[int, int, int, bytes, bytes]:
        """The `IEnergyMarket.PermitSignature` tuple (value, deadline, v, r, s)."""
        if len(self.signature) != 65:
            raise InvalidOrderSignature("a permit signature must be 65 bytes (r, s, v)")
        v = self.signature[64]
        v = v if v >= 27 else v + 27
        return (self.value, self.deadline, v, self.signature[:32], self.signature[32:64])


@dataclass(frozen=True)
class OfferTerms:
    """An offer's terms: energy from `seller_meter` in the slot starting at `delivery_start`."""

    seller_meter: bytes
    quantity_wh: int
    price_per_kwh: int
    delivery_start: int
    expiry: int

    def as_tuple(self) -> tuple[bytes, int, int, int, int]:
        return (
            self.seller_meter,
            self.quantity_wh,
            self.price_per_kwh,
            self.delivery_start,
            self.expiry,
        )


def read_eip712_domain(chain: Chain, contract: Contract) -> MarketDomain:
    """The EIP-712 domain a contract reports (ERC-5267 `eip712Domain()`)."""
    _, name, version, chain_id, verifying, _, _ = chain.call(contract.functions.eip712Domain())
    return MarketDomain(name, version, int(chain_id), str(verifying))


def tx_hash_hex(receipt: TxReceipt) -> str:
    """A receipt's transaction hash as 0x-hex."""
    return "0x" + bytes(receipt["transactionHash"]).hex()


def offer_typed_data(
    domain: MarketDomain, terms: OfferTerms, seller: str, nonce: int, deadline: int
) -> dict[str, Any]:
    """The EIP-712 message a seller signs to have `terms` offered for them."""
    message = {
        "sellerMeter": terms.seller_meter,
        "quantityWh": terms.quantity_wh,
        "pricePerKWh": terms.price_per_kwh,
        "deliveryStart": terms.delivery_start,
        "expiry": terms.expiry,
        "seller": to_checksum_address(seller),
        "nonce": nonce,
        "deadline": deadline,
    }
    return _typed_data(domain, "Offer", OFFER_FIELDS, message)


def take_typed_data(
    domain: MarketDomain,
    offer_id: int,
    buyer_meter: bytes,
    quantity_wh: int,
    buyer: str,
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    """The EIP-712 message a buyer signs to have (part of) an offer taken for them."""
    message = {
        "offerId": offer_id,
        "buyerMeter": buyer_meter,
        "quantityWh": quantity_wh,
        "buyer": to_checksum_address(buyer),
        "nonce": nonce,
        "deadline": deadline,
    }
    return _typed_data(domain, "Take", TAKE_FIELDS, message)


def permit_typed_data(
    token_domain: MarketDomain, owner: str, spender: str, value: int, nonce: int, deadline: int
) -> dict[str, Any]:
    """The ERC-2612 `Permit` a customer signs to let `spender` (the market) move `value` units."""
    message = {
        "owner": to_checksum_address(owner),
        "spender": to_checksum_address(spender),
        "value": value,
        "nonce": nonce,
        "deadline": deadline,
    }
    return _typed_data(token_domain, "Permit", PERMIT_FIELDS, message)


def _typed_data(
    domain: MarketDomain, primary: str, fields: list[dict[str, str]], message: dict[str, Any]
) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": _DOMAIN_FIELDS, primary: fields},
        "primaryType": primary,
        "domain": domain.as_dict(),
        "message": message,
    }


def sign_typed_data(private_key: str | bytes, typed_data: dict[str, Any]) -> bytes:
    """A 65-byte (r, s, v) signature of `typed_data` by `private_key`."""
    signed = Account.sign_message(encode_typed_data(full_message=typed_data), private_key)
    return bytes(signed.signature)


def recover_signer(typed_data: dict[str, Any], signature: bytes) -> str | None:
    """The address that signed `typed_data`, or None if `signature` is malformed."""
    try:
        message = encode_typed_data(full_message=typed_data)
        return str(Account.recover_message(message, signature=signature))
    except Exception:  # noqa: BLE001 - eth_keys raises several types for malformed signatures
        return None


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


class Market:
    """Relays orders to the EnergyMarket and settles trades with evidence from the store."""

    def __init__(
        self, chain: Chain, deployment: Deployment, store: Store, proofs: ProofService
    ) -> None:
        self.chain = chain
        self.contract: Contract = deployment.energy_market
        self.token: Contract = deployment.settlement_token
        self._store = store
        self._proofs = proofs
        self._domain: MarketDomain | None = None
        self._token_domain: MarketDomain | None = None
        self._params: tuple[int, int, int] | None = None
        self._min_trade_value: int | None = None

    @property
    def domain(self) -> MarketDomain:
        if self._domain is None:
            self._domain = read_eip712_domain(self.chain, self.contract)
        return self._domain

    @property
    def token_domain(self) -> MarketDomain:
        """The settlement token's EIP-712 domain (for ERC-2612 permits)."""
        if self._token_domain is None:
            self._token_domain = read_eip712_domain(self.chain, self.token)
        return self._token_domain

    def permit_nonce(self, account: str) -> int:
        return int(self.chain.call(self.token.functions.nonces(to_checksum_address(account))))

    def check_permit(self, owner: str, permit: PermitSignature) -> None:
        """Refuses a permit that is not `owner`'s over the token's current permit nonce."""
        typed = permit_typed_data(
            self.token_domain,
            owner,
            self.contract.address,
            permit.value,
            self.permit_nonce(owner),
            permit.deadline,
        )
        self._check_signature(typed, permit.signature, owner)
        permit.as_tuple()  # refuses a signature that is not 65 bytes

    @property
    def min_trade_value(self) -> int:
        """The least value of an offer or take in this deployment, minor units."""
        if self._min_trade_value is None:
            self._min_trade_value = int(self.chain.call(self.contract.functions.minTradeValue()))
        return self._min_trade_value

    @property
    def parameters(self) -> tuple[int, int, int]:
        """(slot seconds, boundary window, settlement window) of this deployment."""
        if self._params is None:
            f = self.contract.functions
            self._params = (
                int(self.chain.call(f.slotSeconds())),
                int(self.chain.call(f.boundaryWindow())),
                int(self.chain.call(f.settlementWindow())),
            )
        return self._params

    def nonce(self, account: str) -> int:
        return int(self.chain.call(self.contract.functions.nonces(to_checksum_address(account))))

    def chain_time(self) -> int:
        return int(self.chain.w3.eth.get_block("latest")["timestamp"])

    def relay_offer(
        self,
        terms: OfferTerms,
        seller: str,
        deadline: int,
        signature: bytes,
        *,
        quota: RelayQuota | None = None,
    ) -> tuple[int, TxReceipt]:
        """Checks the seller's signature and sends `createOfferBySig`; returns the offer id.

        A call the contract would refuse is not sent (its eth_call pre-check raises
        ContractRevert); with a `quota`, the relay counts against the seller's.
        """
        typed = offer_typed_data(self.domain, terms, seller, self.nonce(seller), deadline)
        self._check_signature(typed, signature, seller)
        call = self.contract.functions.createOfferBySig(
            terms.as_tuple(), to_checksum_address(seller), deadline, signature
        )
        with quota.relay(seller) if quota is not None else nullcontext():
            receipt = self.chain.transact(call)
        (event,) = self.contract.events.OfferCreated().process_receipt(receipt, errors=DISCARD)
        return int(event["args"]["offerId"]), receipt

    def relay_take(
        self,
        offer_id: int,
        buyer_meter: bytes,
        quantity_wh: int,
        buyer: str,
        deadline: int,
        signature: bytes,
        *,
        permit: PermitSignature | None = None,
        quota: RelayQuota | None = None,
    ) -> tuple[int, TxReceipt]:
        """Checks the buyer's signatures and sends the take (`takeOfferBySig`, or with a permit
        `takeOfferBySigWithPermit`, which uses the permit only if the take goes through); returns
        the trade id.

        One contract call, pre-checked with eth_call before it is sent: a refused take (with or
        without a permit) raises ContractRevert and mines nothing. With a `quota`, the relay
        counts against the buyer's.
        """
        typed = take_typed_data(
            self.domain, offer_id, buyer_meter, quantity_wh, buyer, self.nonce(buyer), deadline
        )
        self._check_signature(typed, signature, buyer)
        args = (offer_id, buyer_meter, quantity_wh, to_checksum_address(buyer), deadline, signature)
        functions = self.contract.functions
        if permit is None:
            call = functions.takeOfferBySig(*args)
        else:
            self.check_permit(buyer, permit)
            call = functions.takeOfferBySigWithPermit(*args, permit.as_tuple())
        with quota.relay(buyer) if quota is not None else nullcontext():
            receipt = self.chain.transact(call)
        (event,) = self.contract.events.OfferTaken().process_receipt(receipt, errors=DISCARD)
        return int(event["args"]["tradeId"]), receipt

    def _check_signature(self, typed: dict[str, Any], signature: bytes, signer: str) -> None:
        recovered = recover_signer(typed, signature)
        if recovered is None or recovered.lower() != signer.lower():
            nonce = typed["message"]["nonce"]
            raise InvalidOrderSignature(
                f"the signature is not {signer}'s over this {typed['primaryType']} (check the "
                f"chain id, market address and the signer's current nonce {nonce})"
            )

    def offer(self, offer_id: int) -> OfferView:
        o = self.chain.call(self.contract.functions.offer(offer_id))
        return OfferView(
            offer_id=offer_id,
            seller=str(o[0]),
            delivery_start=int(o[1]),
            expiry=int(o[2]),
            seller_meter=bytes(o[3]),
            price_per_kwh=int(o[4]),
            remaining_wh=int(o[5]),
            cancelled=bool(o[6]),
        )

    def offers(self) -> list[OfferView]:
        """Every offer ever made, oldest first (one view call each)."""
        count = int(self.chain.call(self.contract.functions.offerCount()))
        return [self.offer(offer_id) for offer_id in range(1, count + 1)]

    def open_offers(self) -> list[OfferView]:
        """Offers that can be taken now (chain time), oldest first."""
        now = self.chain_time()
        return [o for o in self.offers() if o.is_open(now)]

    def trade(self, trade_id: int) -> TradeView:
        t = self.chain.call(self.contract.functions.trade(trade_id))
        return TradeView(
            trade_id=trade_id,
            offer_id=int(t[0]),
            seller=str(t[1]),
            delivery_start=int(t[2]),
            buyer=str(t[3]),
            quantity_wh=int(t[4]),
            seller_meter=bytes(t[5]),
            buyer_meter=bytes(t[6]),
            price_per_kwh=int(t[7]),
            delivered_wh=int(t[8]),
            state=TradeState(int(t[9])),
            escrow=int(t[10]),
            paid=int(t[11]),
        )

    def trades(self) -> list[TradeView]:
        """Every trade, oldest first (one view call each)."""
        count = int(self.chain.call(self.contract.functions.tradeCount()))
        return [self.trade(trade_id) for trade_id in range(1, count + 1)]

    def trades_of(self, account: str) -> list[TradeView]:
        """Trades in which `account` is the buyer or the seller."""
        wanted = account.lower()
        return [t for t in self.trades() if wanted in (t.buyer.lower(), t.seller.lower())]

    def boundary_evidence(self, meter_id: bytes, time: int) -> tuple[Any, ...]:
        """The `BoundaryEvidence` tuple for meter `meter_id` at boundary `time`.

        Raises:
            EvidenceUnavailable: no stored reading in `[time, time + boundary window)`, its
                predecessor (seq - 1) is missing, or either is not anchored yet.
        """
        _, window, _ = self.parameters
        reading = self._store.first_reading_at_or_after(meter_id, time)
        if reading is None or reading.timestamp >= time + window:
            raise EvidenceUnavailable(
                f"meter {_meter_text(meter_id)} has no stored reading within {window} s from "
                f"the boundary {time}"
            )
        anchored = self._anchored(reading)
        if reading.seq == 0:
            previous = anchored  # ignored by the contract for seq 0
        else:
            before = self._store.reading(meter_id, reading.seq - 1)
            if before is None:
                raise EvidenceUnavailable(
                    f"meter {_meter_text(meter_id)}: reading {reading.seq - 1}, the one before "
                    f"the boundary reading {reading.seq}, is not stored (a gap)"
                )
            previous = self._anchored(before)
        return (time, anchored, previous)

    def _anchored(self, reading: StoredReading) -> tuple[Any, ...]:
        proof = self._proofs.proof(reading)
        if proof is None:
            raise EvidenceUnavailable(
                f"meter {_meter_text(reading.meter_id)} reading {reading.seq} is not anchored yet"
            )
        fields = (
            reading.meter_id,
            reading.seq,
            reading.timestamp,
            reading.import_wh,
            reading.export_wh,
            reading.status,
        )
        return (fields, proof.batch.batch_id, list(proof.proof))

    def settlement_evidence(self, trade: TradeView) -> list[tuple[Any, ...]]:
        """Evidence for the trade's four boundaries, leaving out those already pinned."""
        slot, _, _ = self.parameters
        needed = []
        for meter_id in (trade.seller_meter, trade.buyer_meter):
            for time in (trade.delivery_start, trade.delivery_start + slot):
                pinned = self.chain.call(self.contract.functions.boundary(meter_id, time))
                if not pinned[3]:
                    needed.append(self.boundary_evidence(meter_id, time))
        return needed

    def settle(self, trade_id: int) -> Settlement:
        """Settles a trade from the stored, anchored boundary readings (anyone may)."""
        trade = self.trade(trade_id)
        slot, _, window = self.parameters
        end = trade.delivery_start + slot
        settleable = trade.state == TradeState.OPEN and end <= self.chain_time() < end + window
        # Otherwise the contract's own refusal (not over yet, closed, settled) says it best.
        evidence = self.settlement_evidence(trade) if settleable else []
        receipt = self.chain.transact(self.contract.functions.settle(trade_id, evidence))
        (event,) = self.contract.events.TradeSettled().process_receipt(receipt, errors=DISCARD)
        args = event["args"]
        return Settlement(
            trade_id=trade_id,
            delivered_wh=int(args["deliveredWh"]),
            paid=int(args["paid"]),
            refunded=int(args["refunded"]),
            tx_hash=tx_hash_hex(receipt),
            block_number=int(receipt["blockNumber"]),
        )

    def refund(self, trade_id: int) -> Settlement:
        """Returns the escrow of a trade whose settlement window has closed (anyone may)."""
        receipt = self.chain.transact(self.contract.functions.refund(trade_id))
        (event,) = self.contract.events.TradeRefunded().process_receipt(receipt, errors=DISCARD)
        return Settlement(
            trade_id=trade_id,
            delivered_wh=0,
            paid=0,
            refunded=int(event["args"]["refunded"]),
            tx_hash=tx_hash_hex(receipt),
            block_number=int(receipt["blockNumber"]),
        )


def _meter_text(meter_id: bytes) -> str:
    text = meter_id.rstrip(b"\x00")
    if text and all(32 <= b < 127 for b in text):
        return text.decode()
    return "0x" + meter_id.hex()
