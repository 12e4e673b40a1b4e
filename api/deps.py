"""Dependencies the routes declare: the running ledger node."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ledger.node import LedgerNode


def get_node(request: Request) -> LedgerNode:
    """The LedgerNode the app was created with."""
    node: LedgerNode = request.app.state.node
    return node


NodeDep = Annotated[LedgerNode, Depends(get_node)]
