"""Who may read what: the roles of the gateway and the checks routes make with them, in one place.

A request proves at most one role (`Caller`, resolved by `CallerDep` in api/deps.py):

- anonymous: nothing proved. Reads what the chain publishes anyway (meters' owners and keys,
  offers, trades, settlements, roots, tariffs).
- meter: a reading's signature by the meter's registered key; it travels in the body of
  `POST /v1/readings`, never as a session.
- customer: signed in with Sign-In with Ethereum (api/routes/auth.py) as an address; the owner of
  the meters the MeterRegistry lists under that address. Reads its own readings and bills.
- auditor: signed in as an address holding `AUDITOR_ROLE` in the MeterRegistry: reads
  everything a customer may read, of every customer, and writes nothing.
- registrar, operator: the bearer tokens `LEDGER_REGISTRAR_TOKEN`, `LEDGER_OPERATOR_TOKEN`.
- metrics: the bearer token `LEDGER_METRICS_TOKEN` of a Prometheus scraper; it reads
  `GET /metrics` (api/routes/metrics.py) and nothing else, and proves no role anywhere else.

What lives only off chain (readings, consumption, bills) is the owner's, the auditors' and the
operator's. Anyone else asking for it gets the same 404 an unknown resource gets: no hint that
it exists. docs/access.md is the table for people; each route declares its roles in the OpenAPI
schema (`x-roles`, from `roles(...)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from api.errors import ApiError
from ledger.errors import ContractRevert, LedgerError
from ledger.meters.registry import meter_id_text
from ledger.node import LedgerNode

Role = Literal["anonymous", "meter", "customer", "auditor", "registrar", "operator", "metrics"]
ROLES: tuple[Role, ...] = get_args(Role)

READERS_OF_PRIVATE_DATA: frozenset[Role] = frozenset({"auditor", "operator"})
"""Roles that read every customer's off-chain data (the owner reads its own)."""


@dataclass(frozen=True)
class Caller:
    """What the request proved: its strongest role and, for a signed-in address, the address."""

    role: Role
    address: str | None = None
    """EIP-55 address of a signed-in customer or auditor, else None."""


ANONYMOUS = Caller("anonymous")


def roles(*allowed: Role) -> dict[str, Any]:
    """`openapi_extra` of a route: the roles that may call it, shown as `x-roles` in the
    OpenAPI schema (and walked by tests/integration/test_authorization.py)."""
    unknown = [role for role in allowed if role not in ROLES]
    if unknown or not allowed:
        raise ValueError(f"roles {unknown or allowed!r}: not among {ROLES}")
    return {"x-roles": list(allowed)}


PUBLIC: tuple[Role, ...] = ("anonymous", "customer", "auditor", "registrar", "operator")
"""Every HTTP caller (`meter` is not one: it proves itself by a reading's signature)."""

PRIVATE: tuple[Role, ...] = ("customer", "auditor", "operator")
"""Off-chain data: its customer (the owner), the auditors and the operator."""


def public() -> dict[str, Any]:
    """`openapi_extra` of a route anyone may call."""
    return roles(*PUBLIC)


def private() -> dict[str, Any]:
    """`openapi_extra` of a route of one customer's off-chain data: its owner (other customers
    get 404), the auditors and the operator."""
    return roles(*PRIVATE)


def sign_in_required() -> ApiError:
    return ApiError(
        401,
        code="sign_in_required",
        message="sign in first (POST /v1/auth/nonce, then POST /v1/auth/sign-in)",
        headers={"WWW-Authenticate": "Bearer"},
    )


def owns_meter(node: LedgerNode, caller: Caller, meter_id: bytes) -> bool:
    """Whether the caller is signed in as the address the MeterRegistry lists as the meter's
    owner (False for an unknown meter)."""
    if caller.address is None:
        return False
    try:
        owner = node.meter_history.show(meter_id_text(meter_id)).owner
    except ContractRevert as error:
        if error.error_name == "MeterRegistryUnknownMeter":
            return False
        raise
    return owner.lower() == caller.address.lower()


def require_meter_reader(
    node: LedgerNode,
    caller: Caller,
    meter_id: bytes,
    *,
    not_found: LedgerError | ApiError | None = None,
) -> None:
    """Lets through the meter's owner, an auditor and the operator.

    Raises:
        ApiError: 401 `sign_in_required` when the request proved no role.
        LedgerError | ApiError: `not_found` (default: 404 `meter_registry_unknown_meter`, as
            for a meter the registry does not hold) for any other
            caller: exactly what the route answers for a meter or reading it does not hold, so
            a stranger learns nothing, not even that the meter exists.
    """
    if caller.role in READERS_OF_PRIVATE_DATA:
        return
    if caller.role == "anonymous":
        raise sign_in_required()
    if caller.role == "customer" and owns_meter(node, caller, meter_id):
        return
    # What the meter routes answer for a meter the registry does not hold.
    raise not_found or ContractRevert(error_name="MeterRegistryUnknownMeter", args=(meter_id,))


def require_customer_data(
    caller: Caller, address: str, *, not_found: LedgerError | ApiError | None = None
) -> None:
    """Lets through the customer `address` itself (any letter case), an auditor and the
    operator.

    Raises:
        ApiError: 401 `sign_in_required` when the request proved no role.
        LedgerError | ApiError: `not_found` (default: 404 `customer_not_found`) for any other
            caller.
    """
    if caller.role in READERS_OF_PRIVATE_DATA:
        return
    if caller.role == "anonymous":
        raise sign_in_required()
    if (
        caller.role == "customer"
        and caller.address is not None
        and caller.address.lower() == address.lower()
    ):
        return
    raise not_found or ApiError(404, code="customer_not_found", message=f"no customer {address}")
