"""Helpers of the complaint tests over HTTP: a customer's client side (signing each step as
docs/complaints.md says) and the chain's clock."""

from __future__ import annotations

from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from ledger.complaints.signing import (
    ComplaintDomain,
    open_typed_data,
    rate_typed_data,
    reopen_typed_data,
)
from ledger.market.orders import sign_typed_data
from ledger.node import LedgerNode

DEADLINE_AHEAD_S = 3600


def chain_time(node: LedgerNode) -> int:
    return int(node.chain.w3.eth.get_block("latest")["timestamp"])


def advance_chain(node: LedgerNode, seconds: int) -> int:
    """Moves the chain's clock forward and mines a block; returns the new block's time."""
    node.chain.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    node.chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    return chain_time(node)


def _context(http: httpx.Client, headers: dict[str, str]) -> tuple[ComplaintDomain, int]:
    answer = http.get("/v1/complaints/signing", headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    d = body["domain"]
    domain = ComplaintDomain(d["name"], d["version"], d["chainId"], d["verifyingContract"])
    return domain, int(body["nonce"])


def signed_open(
    http: httpx.Client,
    node: LedgerNode,
    customer: LocalAccount,
    headers: dict[str, str],
    *,
    text: str = "My November bill counts 40 kWh I did not use.",
    kind: str = "bill_line",
    subject_ref: str = "0x" + keccak(text="bill 2026-11 line 3").hex(),
    signer: LocalAccount | None = None,
) -> dict[str, Any]:
    """The body of POST /v1/complaints, signed by `signer` (the customer by default)."""
    domain, nonce = _context(http, headers)
    deadline = chain_time(node) + DEADLINE_AHEAD_S
    kinds = ("bill_line", "reading", "trade", "outage", "other")
    typed = open_typed_data(
        domain,
        kind=kinds.index(kind),
        subject_ref=bytes.fromhex(subject_ref[2:]),
        text_hash=keccak(text.encode("utf-8")),
        customer=customer.address,
        nonce=nonce,
        deadline=deadline,
    )
    signature = sign_typed_data((signer or customer).key, typed)
    return {
        "customer": customer.address,
        "deadline": deadline,
        "signature": "0x" + signature.hex(),
        "subject_kind": kind,
        "subject_ref": subject_ref,
        "text": text,
    }


def signed_rate(
    http: httpx.Client,
    node: LedgerNode,
    customer: LocalAccount,
    headers: dict[str, str],
    complaint_id: int,
    rating: int,
) -> dict[str, Any]:
    domain, nonce = _context(http, headers)
    deadline = chain_time(node) + DEADLINE_AHEAD_S
    typed = rate_typed_data(
        domain,
        complaint_id=complaint_id,
        rating=rating,
        customer=customer.address,
        nonce=nonce,
        deadline=deadline,
    )
    signature = sign_typed_data(customer.key, typed)
    return {
        "customer": customer.address,
        "deadline": deadline,
        "signature": "0x" + signature.hex(),
        "rating": rating,
    }


def signed_reopen(
    http: httpx.Client,
    node: LedgerNode,
    customer: LocalAccount,
    headers: dict[str, str],
    complaint_id: int,
    text: str,
) -> dict[str, Any]:
    domain, nonce = _context(http, headers)
    deadline = chain_time(node) + DEADLINE_AHEAD_S
    typed = reopen_typed_data(
        domain,
        complaint_id=complaint_id,
        text_hash=keccak(text.encode("utf-8")),
        customer=customer.address,
        nonce=nonce,
        deadline=deadline,
    )
    signature = sign_typed_data(customer.key, typed)
    return {
        "customer": customer.address,
        "deadline": deadline,
        "signature": "0x" + signature.hex(),
        "text": text,
    }
