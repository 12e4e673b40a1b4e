"""The EIP-712 messages a customer signs to have a complaint step relayed for them.

Domain "ComplaintRegistry" / "1" with the chain id and the registry's address; each message
carries the customer, the customer's next nonce (`ComplaintRegistry.nonces(customer)`) and a
deadline (Unix seconds). The types are those of `ComplaintRegistry.OPEN_TYPEHASH`,
`RATE_TYPEHASH` and `REOPEN_TYPEHASH`; docs/complaints.md shows them in full.
"""

from __future__ import annotations

from typing import Any

from eth_utils.address import to_checksum_address

from ledger.market.orders import MarketDomain, eip712_message

#: The registry's EIP-712 domain has the market's shape (name, version, chain id, contract).
ComplaintDomain = MarketDomain

OPEN_FIELDS = [
    {"name": "kind", "type": "uint8"},
    {"name": "subjectRef", "type": "bytes32"},
    {"name": "textHash", "type": "bytes32"},
    {"name": "customer", "type": "address"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]

RATE_FIELDS = [
    {"name": "complaintId", "type": "uint256"},
    {"name": "rating", "type": "uint8"},
    {"name": "customer", "type": "address"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]

REOPEN_FIELDS = [
    {"name": "complaintId", "type": "uint256"},
    {"name": "textHash", "type": "bytes32"},
    {"name": "customer", "type": "address"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


def open_typed_data(
    domain: ComplaintDomain,
    *,
    kind: int,
    subject_ref: bytes,
    text_hash: bytes,
    customer: str,
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    """The message a customer signs to have a complaint opened for them."""
    message = {
        "kind": kind,
        "subjectRef": subject_ref,
        "textHash": text_hash,
        "customer": to_checksum_address(customer),
        "nonce": nonce,
        "deadline": deadline,
    }
    return eip712_message(domain, "Open", OPEN_FIELDS, message)


def rate_typed_data(
    domain: ComplaintDomain,
    *,
    complaint_id: int,
    rating: int,
    customer: str,
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    """The message a customer signs to have a resolution rated for them."""
    message = {
        "complaintId": complaint_id,
        "rating": rating,
        "customer": to_checksum_address(customer),
        "nonce": nonce,
        "deadline": deadline,
    }
    return eip712_message(domain, "Rate", RATE_FIELDS, message)


def reopen_typed_data(
    domain: ComplaintDomain,
    *,
    complaint_id: int,
    text_hash: bytes,
    customer: str,
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    """The message a customer signs to have a complaint reopened for them."""
    message = {
        "complaintId": complaint_id,
        "textHash": text_hash,
        "customer": to_checksum_address(customer),
        "nonce": nonce,
        "deadline": deadline,
    }
    return eip712_message(domain, "Reopen", REOPEN_FIELDS, message)
