"""Constants and helpers shared by the ComplaintRegistry tests of this package.

Every test runs against a fresh deployment on the session's Ganache; `operator` is the admin and
holds the operator role; `alice` is the customer unless a test says otherwise.
"""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from ledger.chain.client import Chain
from ledger.complaints.signing import (
    ComplaintDomain,
    open_typed_data,
    rate_typed_data,
    reopen_typed_data,
)
from ledger.market.orders import read_eip712_domain, sign_typed_data
from tests.fixtures.chain import latest_time

OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")
BILL_LINE, READING, TRADE, OUTAGE, OTHER = range(5)
# Status numbers (IComplaintRegistry.Status).
NONE, OPEN, RESPONDED, ASSIGNED, PLANNED, RESOLVED, RATED = range(7)
SUBJECT = keccak(text="bill 2023-11 line 3")
TEXT = keccak(text="my bill counts 40 kWh I did not use")
ANSWER = keccak(text="we are looking into it")
HANDLER = b"HANDLER-0007".ljust(32, b"\x00")
# Far enough ahead of the chain's clock that a signature is still good when mined.
DEADLINE_AHEAD = 3_600


def open_complaint(
    chain: Chain,
    complaints: Contract,
    customer: LocalAccount,
    *,
    kind: int = BILL_LINE,
    subject: bytes = SUBJECT,
    text: bytes = TEXT,
) -> TxReceipt:
    return chain.transact(complaints.functions.open(kind, subject, text), sender=customer)


def step(
    chain: Chain,
    complaints: Contract,
    name: str,
    complaint_id: int = 1,
    *,
    sender: LocalAccount | None = None,
) -> TxReceipt:
    """One operator step by name (respond, assign, plan, resolve), as the operator by default."""
    functions = complaints.functions
    calls = {
        "respond": lambda: functions.respond(complaint_id, ANSWER),
        "assign": lambda: functions.assign(complaint_id, HANDLER, ANSWER),
        "plan": lambda: functions.plan(complaint_id, ANSWER),
        "resolve": lambda: functions.resolve(complaint_id, ANSWER),
    }
    return chain.transact(calls[name](), sender=sender)


def steps_until(chain: Chain, complaints: Contract, last: str, complaint_id: int = 1) -> None:
    """Takes the operator's steps in order up to and including `last`."""
    for name in ("respond", "assign", "plan", "resolve"):
        step(chain, complaints, name, complaint_id)
        if name == last:
            return


def resolved(chain: Chain, complaints: Contract, customer: LocalAccount) -> int:
    """Opens a complaint as `customer` and takes every operator step; returns its id."""
    open_complaint(chain, complaints, customer)
    complaint_id = int(chain.call(complaints.functions.complaintCount()))
    steps_until(chain, complaints, "resolve", complaint_id)
    return complaint_id


def stored(chain: Chain, complaints: Contract, complaint_id: int = 1) -> dict[str, Any]:
    names = (
        "customer",
        "kind",
        "subjectRef",
        "status",
        "round",
        "rating",
        "roundStartedAt",
        "respondedAt",
        "assignedAt",
        "plannedAt",
        "resolvedAt",
        "handler",
    )
    return dict(zip(names, chain.call(complaints.functions.complaint(complaint_id)), strict=True))


def block_time(chain: Chain, receipt: TxReceipt) -> int:
    return int(chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])


def only_event(event: Any, receipt: TxReceipt) -> Any:
    logs = event.process_receipt(receipt, errors=DISCARD)
    assert len(logs) == 1
    return logs[0]["args"]


def domain(chain: Chain, complaints: Contract) -> ComplaintDomain:
    return read_eip712_domain(chain, complaints)


def deadline(chain: Chain) -> int:
    return latest_time(chain) + DEADLINE_AHEAD


def nonce(chain: Chain, complaints: Contract, customer: str) -> int:
    return int(chain.call(complaints.functions.nonces(customer)))


def signed_open(
    chain: Chain,
    complaints: Contract,
    signer: LocalAccount,
    *,
    customer: str | None = None,
    nonce_used: int | None = None,
    until: int | None = None,
) -> tuple[Any, ...]:
    """openBySig's arguments for `customer` (the signer by default), signed by `signer`."""
    customer = customer or signer.address
    until = deadline(chain) if until is None else until
    typed = open_typed_data(
        domain(chain, complaints),
        kind=BILL_LINE,
        subject_ref=SUBJECT,
        text_hash=TEXT,
        customer=customer,
        nonce=nonce(chain, complaints, customer) if nonce_used is None else nonce_used,
        deadline=until,
    )
    signature = sign_typed_data(signer.key, typed)
    return (BILL_LINE, SUBJECT, TEXT, customer, until, signature)


def signed_rate(
    chain: Chain, complaints: Contract, signer: LocalAccount, complaint_id: int, rating: int
) -> tuple[Any, ...]:
    until = deadline(chain)
    typed = rate_typed_data(
        domain(chain, complaints),
        complaint_id=complaint_id,
        rating=rating,
        customer=signer.address,
        nonce=nonce(chain, complaints, signer.address),
        deadline=until,
    )
    return (complaint_id, rating, signer.address, until, sign_typed_data(signer.key, typed))


def signed_reopen(
    chain: Chain, complaints: Contract, signer: LocalAccount, complaint_id: int
) -> tuple[Any, ...]:
    until = deadline(chain)
    typed = reopen_typed_data(
        domain(chain, complaints),
        complaint_id=complaint_id,
        text_hash=TEXT,
        customer=signer.address,
        nonce=nonce(chain, complaints, signer.address),
        deadline=until,
    )
    return (complaint_id, TEXT, signer.address, until, sign_typed_data(signer.key, typed))
