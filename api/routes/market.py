"""The P2P market: offers, takes, trades, settlement, all relayed by the gateway.

Sellers and buyers sign EIP-712 messages (`GET /v1/market` gives the domains and types, `GET
/v1/market/nonces/{address}` the nonces to sign); the gateway checks each signature before
relaying it with its operator account, so customers need no ether. Settlement and refunds may be
asked for by anyone: the contract decides from anchored readings, the gateway only supplies the
evidence from its store and pays the gas.

The operator pays for relayed orders only: each relay is one contract call, pre-checked with
eth_call, so a refused order mines nothing (a take's permit goes inside the take's own call), and
each signer gets at most `LEDGER_RELAY_QUOTA_PER_HOUR` relayed orders in any hour (429
`relay_quota_exceeded` with `Retry-After` after that).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from api.access import public
from api.deps import NodeDep
from api.errors import account_address as _account
from api.schemas.errors import ErrorPublic
from api.schemas.market import (
    Eip712Public,
    MarketPublic,
    NoncesPublic,
    OfferIn,
    OfferListPublic,
    OfferPublic,
    SettlementPublic,
    TakeIn,
    TradeListPublic,
    TradePublic,
)
from ledger.market.orders import (
    OFFER_FIELDS,
    PERMIT_FIELDS,
    TAKE_FIELDS,
    OfferTerms,
    PermitSignature,
    RelayQuota,
)
from ledger.market.service import Market
from ledger.market.views import OfferView, Settlement, TradeView, tx_hash_hex
from ledger.meters.registry import meter_id_bytes
from ledger.node import LedgerNode

router = APIRouter(tags=["market"])

IdPath = Annotated[int, Path(ge=1, lt=2**256)]
AddressPath = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{40}$")]

_READ_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "`energy_market_unknown_offer` / `_trade`"},
}
_RELAY_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "unknown offer, trade or meter"},
    409: {
        "model": ErrorPublic,
        "description": "the market's state refuses it, e.g. `energy_market_offer_not_open`, "
        "`energy_market_offer_expired`, `energy_market_delivery_not_over`, "
        "`evidence_unavailable` (boundary readings not stored or not anchored yet), "
        "`erc20_insufficient_allowance`",
    },
    422: {
        "model": ErrorPublic,
        "description": "bad input: `invalid_request`, `invalid_signature`, `invalid_meter`, "
        "`invalid_address`, `energy_market_unaligned_time`, `energy_market_invalid_expiry`, "
        "`energy_market_trade_too_small`",
    },
    503: {"model": ErrorPublic, "description": "`chain_unavailable`"},
}
_ORDER_ERRORS: dict[int | str, dict[str, Any]] = {
    **_RELAY_ERRORS,
    429: {
        "model": ErrorPublic,
        "description": "`relay_quota_exceeded`: the signer had LEDGER_RELAY_QUOTA_PER_HOUR "
        "orders relayed in the last hour; `Retry-After` says when the next one is possible",
    },
}


@router.get("/v1/market", openapi_extra=public(), response_model=MarketPublic)
def get_market(node: NodeDep) -> MarketPublic:
    """Where the market is and what to sign: EIP-712 domains and types, slot length, windows."""
    market = node.market
    slot, window, settlement = market.parameters
    token = market.token.functions
    return MarketPublic(
        chain_id=node.chain.chain_id,
        market=market.contract.address,
        token=market.token.address,
        token_symbol=node.chain.call(token.symbol()),
        token_decimals=node.chain.call(token.decimals()),
        slot_s=slot,
        boundary_window_s=window,
        settlement_window_s=settlement,
        min_trade_value=market.min_trade_value,
        relay_quota_per_hour=node.settings.relay_quota_per_hour,
        chain_time=market.chain_time(),
        eip712=Eip712Public(
            market_domain=market.domain.as_dict(),
            token_domain=market.token_domain.as_dict(),
            types={"Offer": OFFER_FIELDS, "Take": TAKE_FIELDS, "Permit": PERMIT_FIELDS},
        ),
    )


@router.get("/v1/market/nonces/{address}", openapi_extra=public(), response_model=NoncesPublic)
def get_nonces(address: AddressPath, node: NodeDep) -> NoncesPublic:
    """The nonces the account's next signed order and next token permit must carry."""
    account = _account(address)
    return NoncesPublic(
        address=account,
        market_nonce=node.market.nonce(account),
        permit_nonce=node.market.permit_nonce(account),
    )


@router.get("/v1/offers", openapi_extra=public(), response_model=OfferListPublic)
def list_offers(node: NodeDep, include_closed: bool = False) -> OfferListPublic:
    """Open offers (takeable now), oldest first; `include_closed=true` lists every offer."""
    market = node.market
    now = market.chain_time()
    offers = market.offers() if include_closed else market.open_offers()
    return OfferListPublic(offers=[_offer(market, o, now) for o in offers])


@router.get(
    "/v1/offers/{offer_id}",
    openapi_extra=public(),
    response_model=OfferPublic,
    responses=_READ_ERRORS,
)
def get_offer(offer_id: IdPath, node: NodeDep) -> OfferPublic:
    market = node.market
    return _offer(market, market.offer(offer_id), market.chain_time())


@router.post(
    "/v1/offers",
    status_code=201,
    openapi_extra=public(),
    response_model=OfferPublic,
    responses=_ORDER_ERRORS,
)
def create_offer(body: OfferIn, node: NodeDep) -> OfferPublic:
    """Relays a seller-signed offer (`createOfferBySig`); the seller must own the meter."""
    market = node.market
    terms = OfferTerms(
        seller_meter=meter_id_bytes(body.seller_meter),
        quantity_wh=body.quantity_wh,
        price_per_kwh=body.price_per_kwh,
        delivery_start=body.delivery_start,
        expiry=body.expiry,
    )
    offer_id, receipt = market.relay_offer(
        terms,
        _account(body.seller),
        body.deadline,
        _hex_bytes(body.signature),
        quota=_relay_quota(node),
    )
    return _offer(market, market.offer(offer_id), market.chain_time(), tx_hash_hex(receipt))


@router.post(
    "/v1/offers/{offer_id}/take",
    status_code=201,
    openapi_extra=public(),
    response_model=TradePublic,
    responses=_ORDER_ERRORS,
)
def take_offer(offer_id: IdPath, body: TakeIn, node: NodeDep) -> TradePublic:
    """Relays a buyer-signed take (`takeOfferBySig`, or with the buyer's permit
    `takeOfferBySigWithPermit`, one call that uses the permit only for a take that goes through);
    the buyer's escrow moves into the market."""
    market = node.market
    buyer = _account(body.buyer)
    permit = None
    if body.permit is not None:
        permit = PermitSignature(
            body.permit.value, body.permit.deadline, _hex_bytes(body.permit.signature)
        )
    trade_id, receipt = market.relay_take(
        offer_id,
        meter_id_bytes(body.buyer_meter),
        body.quantity_wh,
        buyer,
        body.deadline,
        _hex_bytes(body.signature),
        permit=permit,
        quota=_relay_quota(node),
    )
    return _trade(market, market.trade(trade_id), tx_hash_hex(receipt))


@router.get(
    "/v1/trades/{trade_id}",
    openapi_extra=public(),
    response_model=TradePublic,
    responses=_READ_ERRORS,
)
def get_trade(trade_id: IdPath, node: NodeDep) -> TradePublic:
    """A trade's state, escrow, and once settled what was delivered, paid and refunded."""
    return _trade(node.market, node.market.trade(trade_id))


@router.post(
    "/v1/trades/{trade_id}/settle",
    openapi_extra=public(),
    response_model=SettlementPublic,
    responses=_RELAY_ERRORS,
)
def settle_trade(trade_id: IdPath, node: NodeDep) -> Settlement:
    """Settles a trade after its slot from the stored, anchored boundary readings (anyone may)."""
    return node.market.settle(trade_id)


@router.post(
    "/v1/trades/{trade_id}/refund",
    openapi_extra=public(),
    response_model=SettlementPublic,
    responses=_RELAY_ERRORS,
)
def refund_trade(trade_id: IdPath, node: NodeDep) -> Settlement:
    """Returns the escrow of a trade not settled within its settlement window (anyone may)."""
    return node.market.refund(trade_id)


@router.get(
    "/v1/customers/{address}/trades", openapi_extra=public(), response_model=TradeListPublic
)
def customer_trades(address: AddressPath, node: NodeDep) -> TradeListPublic:
    """The trades in which the account buys or sells, oldest first."""
    account = _account(address)
    market = node.market
    return TradeListPublic(
        account=account, trades=[_trade(market, t) for t in market.trades_of(account)]
    )


def _relay_quota(node: LedgerNode) -> RelayQuota:
    return RelayQuota(node.store, per_hour=node.settings.relay_quota_per_hour)


def _hex_bytes(text: str) -> bytes:
    return bytes.fromhex(text[2:])  # the schema's pattern already checked the hex


def _offer(market: Market, offer: OfferView, now: int, tx_hash: str | None = None) -> OfferPublic:
    slot, _, _ = market.parameters
    return OfferPublic.of(offer, slot_s=slot, now=now, tx_hash=tx_hash)


def _trade(market: Market, trade: TradeView, tx_hash: str | None = None) -> TradePublic:
    slot, _, settlement_window = market.parameters
    return TradePublic.of(
        trade, slot_s=slot, settlement_window_s=settlement_window, tx_hash=tx_hash
    )
