"""Market orders: the EIP-712 `Offer`, `Take` and ERC-2612 `Permit` a customer signs, checking
who signed them, and the per-signer relay quota.

A prosumer signs an `Offer` and a neighbour signs a `Take` (EIP-712 typed data, domain
"EnergyMarket" / "1" with the chain id and the market's address, a per-signer nonce and a
deadline); the gateway checks the signature locally (`check_signature`), so a bad one is refused
with a clear code before any gas is spent, and relays it (`ledger/market/service.py`). Each signer
may have at most `relay_quota_per_hour` orders relayed in any hour (`RelayQuota`, counted in the
database).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from time import time as wall_clock
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from web3.contract import Contract

from ledger.chain.client import Chain
from ledger.errors import ContractRevert, LedgerError
from ledger.store.database import Store

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
    http_status = 422


class RelayQuotaExceeded(LedgerError):
    """The signer has had as many orders relayed in the last hour as the quota allows."""

    code = "relay_quota_exceeded"
    http_status = 429

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
    return eip712_message(domain, "Offer", OFFER_FIELDS, message)


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
    return eip712_message(domain, "Take", TAKE_FIELDS, message)


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
    return eip712_message(token_domain, "Permit", PERMIT_FIELDS, message)


def eip712_message(
    domain: MarketDomain, primary: str, fields: list[dict[str, str]], message: dict[str, Any]
) -> dict[str, Any]:
    """An EIP-712 message of one primary type under a (name, version, chain id, contract)
    domain, as `eth_account` signs and recovers it (the complaint registry's messages too)."""
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


def check_signature(typed: dict[str, Any], signature: bytes, signer: str) -> None:
    """Refuses `signature` unless `signer` signed `typed`.

    Raises:
        InvalidOrderSignature: another key signed it, or it is malformed.
    """
    recovered = recover_signer(typed, signature)
    if recovered is None or recovered.lower() != signer.lower():
        nonce = typed["message"]["nonce"]
        raise InvalidOrderSignature(
            f"the signature is not {signer}'s over this {typed['primaryType']} (check the "
            f"chain id, market address and the signer's current nonce {nonce})"
        )
