"""The bill document's canonical bytes, its hash and its Merkle leaf.

Canonical bytes: `json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`
encoded as UTF-8, over JSON objects (string keys), arrays, strings, integers, booleans and null
only. Floats are refused: a float has no single textual form across languages, and money and
energy are integers here. docs/bills.md shows how to rebuild the bytes in another language.

The bill hash is keccak256 of the canonical bytes. A bill's leaf in an issuing run's Merkle
tree is OpenZeppelin's standard leaf of `abi.encode(bytes32 billHash)`; `abi.encode` of one
`bytes32` is those 32 bytes themselves, so the leaf is `keccak256(keccak256(billHash))`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from ledger.anchoring.merkle import HASH_LENGTH, keccak256, leaf_hash
from ledger.errors import LedgerError

BILL_FORMAT = "energy-ledger/bill/v1"


class BillDocumentError(LedgerError):
    """A value that has no place in a canonical bill document (a float, bytes, a set ...)."""

    code = "invalid_bill_document"
    http_status = 422


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """The document's canonical bytes; raises `BillDocumentError` naming the first bad value."""
    _check(document, "$")
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def bill_hash(document: Mapping[str, Any]) -> bytes:
    """keccak256 of the document's canonical bytes (32 bytes)."""
    return keccak256(canonical_json(document))


def bill_leaf(bill_hash: bytes) -> bytes:
    """The bill's Merkle leaf: `keccak256(bytes.concat(keccak256(abi.encode(bytes32))))`."""
    if len(bill_hash) != HASH_LENGTH:
        raise BillDocumentError(f"a bill hash is 32 bytes, got {len(bill_hash)}")
    return leaf_hash(bill_hash)


def _check(document: object, path: str) -> None:
    # An explicit stack instead of recursion, exact types (an int subclass such as an IntEnum or
    # bool-like class could serialise differently elsewhere): as fast as json.dumps itself. The
    # path is only rebuilt for the error message.
    scalars = (str, int, bool, type(None))
    stack: list[tuple[object, str]] = [(document, path)]
    pop, push = stack.pop, stack.append
    while stack:
        value, where = pop()
        kind = type(value)
        if kind in scalars:
            continue
        if kind is dict:
            for key, item in cast("dict[object, object]", value).items():
                if type(key) is not str:
                    raise BillDocumentError(f"{where}: object key {key!r} is not a string")
                if type(item) not in scalars:
                    push((item, f"{where}.{key}"))
        elif kind is list or kind is tuple:
            for index, item in enumerate(cast("list[object]", value)):
                if type(item) not in scalars:
                    push((item, f"{where}[{index}]"))
        else:
            what = "a float" if kind is float else f"a {kind.__name__}"
            raise BillDocumentError(f"{where}: {what} has no place in a bill document ({value!r})")
