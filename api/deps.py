"""What routes declare, one `Annotated` alias per dependency: `node: NodeDep` gives the running
ledger, `_: RegistrarDep` lets only the registrar through (api/auth.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from api.auth import check_operator, check_registrar, operator_bearer, registrar_bearer
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
