"""A customer's client of the gateway's market routes: signs orders locally, the gateway relays.

The private key never leaves the customer's machine: the client asks the gateway for the EIP-712
domains and the account's nonces, signs the `Offer`, `Take` or token `Permit` itself, and posts
the signature. `ledger market ...` and the market-day simulation use this class.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.errors import LedgerError
from ledger.market.orders import (
    MarketDomain,
    OfferTerms,
    offer_typed_data,
    permit_typed_data,
    sign_typed_data,
    take_typed_data,
)
from ledger.meters.registry import meter_id_bytes

# How long a signed order stays relayable when the caller does not say.
DEFAULT_SIGNATURE_TTL_S = 600


class GatewayError(LedgerError):
    """The gateway refused a request; `code` is its machine-readable error code, and
    `retry_after_s` its Retry-After (for 429 `relay_quota_exceeded`), if it sent one."""

    code = "gateway_error"
    http_status = 502  # raised in the customer's client, never by the gateway itself

    def __init__(
        self, status: int, code: str, message: str, *, retry_after_s: int | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s


class MarketClient:
    """The market routes of one gateway, for one or more customer accounts."""

    def __init__(
        self, gateway_url: str, *, timeout_s: float = 120.0, token: str | None = None
    ) -> None:
        """`token`: sent as `Authorization: Bearer` on every request, for routes that are not
        public (a session token, or the operator's: the simulators read their own readings'
        anchoring, which only the owner, an auditor or the operator may see)."""
        self.base = gateway_url.rstrip("/")
        self.timeout_s = timeout_s
        self._token = token
        self._info: dict[str, Any] | None = None

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Sends one JSON request; returns the decoded answer or raises GatewayError."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            try:
                detail = json.loads(error.read())["error"]
                code, message = str(detail["code"]), str(detail["message"])
            except (ValueError, KeyError, TypeError):
                code, message = "http_error", str(error)
            retry_after = error.headers.get("Retry-After")
            raise GatewayError(
                error.code,
                code,
                message,
                retry_after_s=int(retry_after) if retry_after and retry_after.isdigit() else None,
            ) from error

    def info(self) -> dict[str, Any]:
        """GET /v1/market (fetched once: domains and slot length never change)."""
        if self._info is None:
            self._info = dict(self.request("GET", "/v1/market"))
        return self._info

    def chain_time(self) -> int:
        return int(self.request("GET", "/v1/market")["chain_time"])

    def nonces(self, address: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/market/nonces/{address}"))

    def _domain(self, key: str) -> MarketDomain:
        d = self.info()["eip712"][key]
        return MarketDomain(d["name"], d["version"], int(d["chainId"]), d["verifyingContract"])

    def offer(
        self,
        seller: LocalAccount,
        seller_meter: str,
        quantity_wh: int,
        price_per_kwh: int,
        delivery_start: int,
        expiry: int,
        *,
        deadline: int | None = None,
    ) -> dict[str, Any]:
        """Signs and posts an offer; returns the created offer."""
        terms = OfferTerms(
            meter_id_bytes(seller_meter), quantity_wh, price_per_kwh, delivery_start, expiry
        )
        deadline = deadline if deadline is not None else self._default_deadline()
        nonce = int(self.nonces(seller.address)["market_nonce"])
        typed = offer_typed_data(
            self._domain("market_domain"), terms, seller.address, nonce, deadline
        )
        body = {
            "seller": seller.address,
            "seller_meter": seller_meter,
            "quantity_wh": quantity_wh,
            "price_per_kwh": price_per_kwh,
            "delivery_start": delivery_start,
            "expiry": expiry,
            "deadline": deadline,
            "signature": "0x" + sign_typed_data(seller.key, typed).hex(),
        }
        return dict(self.request("POST", "/v1/offers", body))

    def take(
        self,
        buyer: LocalAccount,
        offer_id: int,
        buyer_meter: str,
        quantity_wh: int,
        *,
        permit_value: int | None = None,
        deadline: int | None = None,
    ) -> dict[str, Any]:
        """Signs and posts a take; with `permit_value`, also a token permit for that allowance
        (so the buyer needs no ether for an approve transaction), which the gateway relays inside
        the take's own call: it is used only if the take goes through. Returns the trade."""
        deadline = deadline if deadline is not None else self._default_deadline()
        nonces = self.nonces(buyer.address)
        typed = take_typed_data(
            self._domain("market_domain"),
            offer_id,
            meter_id_bytes(buyer_meter),
            quantity_wh,
            buyer.address,
            int(nonces["market_nonce"]),
            deadline,
        )
        body: dict[str, Any] = {
            "buyer": buyer.address,
            "buyer_meter": buyer_meter,
            "quantity_wh": quantity_wh,
            "deadline": deadline,
            "signature": "0x" + sign_typed_data(buyer.key, typed).hex(),
        }
        if permit_value is not None:
            permit = permit_typed_data(
                self._domain("token_domain"),
                buyer.address,
                self.info()["market"],
                permit_value,
                int(nonces["permit_nonce"]),
                deadline,
            )
            body["permit"] = {
                "value": permit_value,
                "deadline": deadline,
                "signature": "0x" + sign_typed_data(buyer.key, permit).hex(),
            }
        return dict(self.request("POST", f"/v1/offers/{offer_id}/take", body))

    def offers(self, *, include_closed: bool = False) -> list[dict[str, Any]]:
        query = "?include_closed=true" if include_closed else ""
        return list(self.request("GET", f"/v1/offers{query}")["offers"])

    def trade(self, trade_id: int) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/trades/{trade_id}"))

    def settle(self, trade_id: int) -> dict[str, Any]:
        return dict(self.request("POST", f"/v1/trades/{trade_id}/settle"))

    def refund(self, trade_id: int) -> dict[str, Any]:
        return dict(self.request("POST", f"/v1/trades/{trade_id}/refund"))

    def trades_of(self, address: str) -> list[dict[str, Any]]:
        return list(self.request("GET", f"/v1/customers/{address}/trades")["trades"])

    def _default_deadline(self) -> int:
        return self.chain_time() + DEFAULT_SIGNATURE_TTL_S


def load_account(key_text: str) -> LocalAccount:
    """An account from a hex private key (the content of a key file or variable)."""
    try:
        account: LocalAccount = Account.from_key(key_text.strip())
    except (ValueError, TypeError) as error:
        raise LedgerError("not a hex private key (32 bytes, 0x-prefixed or not)") from error
    return account
