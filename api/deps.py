"""What routes declare, one `Annotated` alias per dependency: `node: NodeDep` gives the running
ledger, `_: RegistrarDep` lets only the registrar through (api/auth.py), `caller: CallerDep` says
who is asking (api/access.py: the roles and the checks made with them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from api.access import ANONYMOUS, Caller, sign_in_required
from api.auth import (
    check_operator,
    check_registrar,
    operator_bearer,
    read_session,
    registrar_bearer,
    session_bearer,
    session_secret,
    token_matches,
)
from api.errors import ApiError
from ledger.node import LedgerNode


def get_node(request: Request) -> LedgerNode:
    """The LedgerNode the app was created with."""
    node: LedgerNode = request.app.state.node
    return node


NodeDep = Annotated[LedgerNode, Depends(get_node)]


def require_registrar(
    node: NodeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(registrar_bearer)],
) -> None:
    """Refuses the request unless it carries the registrar token (see `check_registrar`)."""
    check_registrar(node.settings.registrar_token, credentials)


RegistrarDep = Annotated[None, Depends(require_registrar)]
"""For a registrar-only route's parameter `_: RegistrarDep`: the route runs only for the
registrar."""


def require_operator(
    node: NodeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(operator_bearer)],
) -> None:
    """Refuses the request unless it carries the operator token (see `check_operator`)."""
    check_operator(node.settings.operator_token, credentials)


OperatorDep = Annotated[None, Depends(require_operator)]
"""For an operator-only route's parameter `_: OperatorDep`."""


def get_session_secret(request: Request, node: NodeDep) -> bytes:
    """The session tokens' key, read (or created) once per app."""
    secret: bytes | None = getattr(request.app.state, "session_secret", None)
    if secret is None:
        secret = session_secret(node.settings)
        request.app.state.session_secret = secret
    return secret


def current_caller(
    request: Request,
    node: NodeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(session_bearer)],
) -> Caller:
    """Who the request proved to be, from `Authorization: Bearer <token>`: the operator token
    -> operator, the registrar token -> registrar, a session token from sign-in -> the customer
    or auditor it names, no token -> anonymous.

    Raises:
        ApiError: 401 `invalid_session` for any other token (forged, expired, of another
            gateway's key): a client that meant to sign in must learn that it is not.
    """
    if credentials is None:
        return ANONYMOUS
    presented = credentials.credentials
    if token_matches(node.settings.operator_token, presented):
        return Caller("operator")
    if token_matches(node.settings.registrar_token, presented):
        return Caller("registrar")
    session = read_session(get_session_secret(request, node), presented)
    return Caller("auditor" if session.role == "auditor" else "customer", session.address)


CallerDep = Annotated[Caller, Depends(current_caller)]
"""For a route any role may call but that answers each differently: `caller: CallerDep`."""


def require_customer(caller: CallerDep) -> Caller:
    """Lets through a signed-in customer or auditor.

    Raises:
        ApiError: 401 `sign_in_required` for anyone else.
    """
    if caller.role not in ("customer", "auditor"):
        raise sign_in_required()
    return caller


CustomerDep = Annotated[Caller, Depends(require_customer)]
"""For a signed-in customer's route (an auditor passes too): `caller: CustomerDep`."""


def require_auditor(caller: CallerDep) -> Caller:
    """Lets through a signed-in auditor (or the operator, who reads everything already).

    Raises:
        ApiError: 401 `sign_in_required` when nobody signed in; 403 `auditor_required` for a
            customer or the registrar.
    """
    if caller.role in ("auditor", "operator"):
        return caller
    if caller.role == "anonymous":
        require_customer(caller)
    raise ApiError(403, code="auditor_required", message="only an auditor may call this route")


AuditorDep = Annotated[Caller, Depends(require_auditor)]
"""For an auditor's route: `caller: AuditorDep`."""
