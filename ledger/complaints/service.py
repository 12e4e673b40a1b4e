"""What the gateway's complaint routes and the `ledger complaints` commands call.

Customers' steps (open, rate, reopen) arrive signed (EIP-712, `ledger.complaints.signing`): the
signature is checked here first against the customer's current nonce, so a bad one is refused
with `complaint_invalid_signature` before any gas is spent, counted against the customer's relay
quota (shared with market orders: `LEDGER_RELAY_QUOTA_PER_HOUR`) and relayed by the operator's
account. A text (complaint, answer, reopening) is saved under its keccak256 before the step
naming the hash is sent. After each step the read model is indexed at once, so the answer
shows the step.

Views are folded from the read model's events (`ledger.complaints.model`), with each targeted
step's clock against the service levels (`ledger.complaints.sla`) at the chain's latest block
time: the chain's clock, not the gateway's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_utils.crypto import keccak

from ledger.chain.client import Chain
from ledger.complaints.model import (
    SUBJECT_KINDS,
    Complaint,
    Round,
    clocks,
    fold,
    time_to_breach,
)
from ledger.complaints.registry import ComplaintRegistryClient, SentStep
from ledger.complaints.signing import open_typed_data, rate_typed_data, reopen_typed_data
from ledger.complaints.sla import ServiceLevels
from ledger.complaints.stats import MonthlyStatistics, monthly_statistics
from ledger.errors import LedgerError
from ledger.market.orders import RelayQuota, recover_signer
from ledger.store import complaints as stored
from ledger.store.database import Store
from ledger.store.read_model import ReadModel

MAX_TEXT_CHARS = 4000
"""The longest complaint text or answer accepted (characters)."""
OPERATOR_STEP_NAMES = ("respond", "assign", "plan", "resolve")
_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}")


class ComplaintInputError(LedgerError):
    """A complaint request that cannot be sent: an empty or too long text, an unknown subject
    kind or step, a reference or handler that is not 32 bytes."""

    code = "complaint_invalid_input"
    http_status = 422


class ComplaintNotFound(LedgerError):
    """No complaint with that id, or (to a customer) one that is another customer's."""

    code = "complaint_not_found"
    http_status = 404

    def __init__(self, complaint_id: int) -> None:
        super().__init__(f"no complaint {complaint_id}")


class ComplaintInvalidSignature(LedgerError):
    """A customer's step not signed by the customer over the registry's current nonce."""

    code = "complaint_invalid_signature"
    http_status = 422


def text_hash(text: str) -> bytes:
    """keccak256 of the text's UTF-8 bytes: what the chain holds of a complaint text."""
    return keccak(text.encode("utf-8"))


def checked_text(text: str, what: str = "text") -> str:
    """`text` if it can be hashed and kept: not blank, at most MAX_TEXT_CHARS, valid UTF-8 (JSON
    may carry a lone surrogate, which has no UTF-8 form) and without NUL (PostgreSQL's TEXT
    refuses it)."""
    if not isinstance(text, str) or not text.strip():
        raise ComplaintInputError(f"the {what} is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise ComplaintInputError(f"the {what} is longer than {MAX_TEXT_CHARS} characters")
    if "\x00" in text or not _encodable(text):
        raise ComplaintInputError(f"the {what} is not UTF-8 text without NUL characters")
    return text


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def subject_kind_number(kind: str) -> int:
    if kind not in SUBJECT_KINDS:
        raise ComplaintInputError(f"subject kind {kind!r} is not one of {', '.join(SUBJECT_KINDS)}")
    return SUBJECT_KINDS.index(kind)


def bytes32_of(value: str, what: str) -> bytes:
    """`0x` + 64 hex digits, or 1-32 characters of text right-padded with zero bytes (a handler
    id such as a staff number)."""
    if _HEX32.fullmatch(value):
        return bytes.fromhex(value[2:])
    raw = value.encode("utf-8") if _encodable(value) else b""
    if not 1 <= len(raw) <= 32:
        raise ComplaintInputError(f"{what} must be 0x + 64 hex digits or 1-32 bytes of text")
    return raw.ljust(32, b"\x00")


def shown_bytes32(value: bytes | None) -> str | None:
    """A handler id as text when it is right-padded printable ASCII, else 0x-hex."""
    if value is None:
        return None
    trimmed = value.rstrip(b"\x00")
    if trimmed and all(32 <= b < 127 for b in trimmed):
        return trimmed.decode("ascii")
    return "0x" + value.hex()


@dataclass(frozen=True)
class Signed:
    """A customer's EIP-712 signature over a step and the deadline it names."""

    customer: str
    deadline: int
    signature: bytes


class ComplaintService:
    """Complaints for the gateway (see the module docstring)."""

    def __init__(
        self,
        chain: Chain,
        client: ComplaintRegistryClient,
        store: Store,
        read_model: ReadModel,
        *,
        levels: ServiceLevels,
        quota: RelayQuota,
        index_now: Callable[[], None],
        clock: Callable[[], int] | None = None,
    ) -> None:
        self._chain = chain
        self.client = client
        self._store = store
        self._read_model = read_model
        self.levels = levels
        self._quota = quota
        self._index_now = index_now
        self._clock = clock or self._chain_time

    # --- signing ------------------------------------------------------------------------------

    def signing_context(self, customer: str) -> dict[str, Any]:
        """What a customer needs to sign a step: the domain and its next nonce."""
        return {
            "domain": self.client.domain().as_dict(),
            "customer": customer,
            "nonce": self.client.nonce(customer),
        }

    # --- customers' steps ---------------------------------------------------------------------

    def open(self, *, kind: str, subject_ref: str, text: str, signed: Signed) -> dict[str, Any]:
        number = subject_kind_number(kind)
        reference = bytes32_of(subject_ref, "subject_ref") if subject_ref else bytes(32)
        body = checked_text(text)
        digest = text_hash(body)
        typed = open_typed_data(
            self.client.domain(),
            kind=number,
            subject_ref=reference,
            text_hash=digest,
            customer=signed.customer,
            nonce=self.client.nonce(signed.customer),
            deadline=signed.deadline,
        )
        self._check(typed, signed)
        stored.save_text(self._store, body, digest, now=self._clock())
        with self._quota.relay(signed.customer):
            sent = self.client.open_by_sig(
                kind=number,
                subject_ref=reference,
                text_hash=digest,
                customer=signed.customer,
                deadline=signed.deadline,
                signature=signed.signature,
            )
        return self._after(sent)

    def rate(self, complaint_id: int, *, rating: int, signed: Signed) -> dict[str, Any]:
        self.detail(complaint_id, customer=signed.customer)  # another's: 404, as a missing one
        typed = rate_typed_data(
            self.client.domain(),
            complaint_id=complaint_id,
            rating=rating,
            customer=signed.customer,
            nonce=self.client.nonce(signed.customer),
            deadline=signed.deadline,
        )
        self._check(typed, signed)
        with self._quota.relay(signed.customer):
            sent = self.client.rate_by_sig(
                complaint_id=complaint_id,
                rating=rating,
                customer=signed.customer,
                deadline=signed.deadline,
                signature=signed.signature,
            )
        return self._after(sent)

    def reopen(self, complaint_id: int, *, text: str, signed: Signed) -> dict[str, Any]:
        self.detail(complaint_id, customer=signed.customer)
        body = checked_text(text)
        digest = text_hash(body)
        typed = reopen_typed_data(
            self.client.domain(),
            complaint_id=complaint_id,
            text_hash=digest,
            customer=signed.customer,
            nonce=self.client.nonce(signed.customer),
            deadline=signed.deadline,
        )
        self._check(typed, signed)
        stored.save_text(self._store, body, digest, now=self._clock())
        with self._quota.relay(signed.customer):
            sent = self.client.reopen_by_sig(
                complaint_id=complaint_id,
                text_hash=digest,
                customer=signed.customer,
                deadline=signed.deadline,
                signature=signed.signature,
            )
        return self._after(sent)

    # --- the operator's steps -----------------------------------------------------------------

    def step(
        self, complaint_id: int, *, step: str, text: str, handler: str | None = None
    ) -> dict[str, Any]:
        """Records an operator step ('respond', 'assign' with a handler, 'plan', 'resolve')."""
        if step not in OPERATOR_STEP_NAMES:
            raise ComplaintInputError(
                f"step {step!r} is not one of {', '.join(OPERATOR_STEP_NAMES)}"
            )
        body = checked_text(text)
        digest = text_hash(body)
        handler_id = None
        if step == "assign":
            if not handler:
                raise ComplaintInputError("an assignment names its handler")
            handler_id = bytes32_of(handler, "handler")
        elif handler:
            raise ComplaintInputError("only an assignment names a handler")
        stored.save_text(self._store, body, digest, now=self._clock())
        if handler_id is not None:
            sent = self.client.assign(complaint_id, handler_id, digest)
        else:
            sent = getattr(self.client, step)(complaint_id, digest)
        return self._after(sent)

    # --- views --------------------------------------------------------------------------------

    def complaints(self, *, customer: str | None = None) -> list[Complaint]:
        """Every complaint (or the customer's), newest first."""
        folded = fold(stored.steps(self._store, customer=customer))
        return sorted(folded.values(), key=lambda c: c.complaint_id, reverse=True)

    def summaries(self, *, customer: str | None = None) -> list[dict[str, Any]]:
        now = self._clock()
        return [self.summary(c, now) for c in self.complaints(customer=customer)]

    def queue(self) -> list[dict[str, Any]]:
        """The complaints the operator still owes a step, soonest breach first (overdue ones
        first of all, the longest overdue at the top); those with no targeted step pending
        (planned, awaiting the resolution) last, oldest round first."""
        now = self._clock()
        waiting = [c for c in self.complaints() if c.is_open]

        def order(complaint: Complaint) -> tuple[int, int, int]:
            left = time_to_breach(complaint, self.levels, now)
            if left is None:
                return (1, complaint.current.started_at, complaint.complaint_id)
            return (0, left, complaint.complaint_id)

        return [self.summary(c, now) for c in sorted(waiting, key=order)]

    def detail(self, complaint_id: int, *, customer: str | None = None) -> dict[str, Any]:
        """One complaint with its rounds and steps, texts included.

        Raises:
            ComplaintNotFound: no such complaint, or `customer` is given and it is not theirs.
        """
        folded = fold(stored.steps(self._store, complaint_id=complaint_id))
        complaint = folded.get(complaint_id)
        if complaint is None or (
            customer is not None and complaint.customer.lower() != customer.lower()
        ):
            raise ComplaintNotFound(complaint_id)
        now = self._clock()
        hashes = [h for r in complaint.rounds for h in r.text_hashes.values()]
        texts = stored.texts(self._store, hashes)
        shown = self.summary(complaint, now)
        shown["text"] = texts.get(complaint.text_hash)
        shown["text_hash"] = "0x" + complaint.text_hash.hex()
        shown["rounds"] = [self._round(complaint, r, texts, now) for r in complaint.rounds]
        return shown

    def statistics(self, month: str) -> MonthlyStatistics:
        """The month's statistics from the read model, as of its latest indexed block."""
        self._index_now()
        cursor = self._read_model.cursor()
        as_of = cursor.block_timestamp if cursor is not None else self._clock()
        return monthly_statistics(
            stored.steps(self._store), month=month, as_of=as_of, levels=self.levels
        )

    def summary(self, complaint: Complaint, now: int) -> dict[str, Any]:
        current = complaint.current
        return {
            "complaint_id": complaint.complaint_id,
            "customer": complaint.customer,
            "subject_kind": complaint.subject_kind,
            "subject_ref": "0x" + complaint.subject_ref.hex(),
            "status": complaint.status,
            "round": current.number,
            "opened_at": complaint.opened_at,
            "round_started_at": current.started_at,
            "time_to_breach_s": time_to_breach(complaint, self.levels, now),
            "as_of": now,
        }

    def _round(
        self, complaint: Complaint, round_: Round, texts: dict[bytes, str], now: int
    ) -> dict[str, Any]:
        opening = round_.text_hashes.get("opened")
        steps = []
        for clock in clocks(complaint, round_, self.levels, now):
            digest = round_.text_hashes.get(clock.step)
            steps.append(
                {
                    "step": clock.step,
                    "at": clock.at,
                    "took_s": clock.took_s,
                    "target_s": clock.target_s,
                    "due_at": clock.due_at,
                    "state": clock.state,
                    "met": clock.met,
                    "time_left_s": clock.time_left_s,
                    "overdue_s": clock.overdue_s,
                    "text": texts.get(digest) if digest else None,
                    "text_hash": "0x" + digest.hex() if digest else None,
                }
            )
        return {
            "round": round_.number,
            "started_at": round_.started_at,
            "text": texts.get(opening) if opening else None,
            "handler": shown_bytes32(round_.handler),
            "rating": round_.rating,
            "rated_at": round_.times.get("rated"),
            "steps": steps,
        }

    # --- internals ----------------------------------------------------------------------------

    def _check(self, typed: dict[str, Any], signed: Signed) -> None:
        recovered = recover_signer(typed, signed.signature)
        if recovered is None or recovered.lower() != signed.customer.lower():
            raise ComplaintInvalidSignature(
                f"the signature is not {signed.customer}'s over this {typed['primaryType']} "
                f"(check the chain id, the registry's address and the nonce "
                f"{typed['message']['nonce']})"
            )

    def _after(self, sent: SentStep) -> dict[str, Any]:
        self._index_now()
        shown = self.detail(sent.complaint_id)
        shown["transaction_hash"] = "0x" + sent.tx_hash.hex()
        shown["block_number"] = sent.block_number
        shown["step_at"] = sent.at
        return shown

    def _chain_time(self) -> int:
        return int(self._chain.w3.eth.get_block("latest")["timestamp"])
