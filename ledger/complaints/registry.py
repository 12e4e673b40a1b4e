"""The ComplaintRegistry client: the operator's steps, customers' relayed steps, and reads.

Writes go through the operator's transaction sender (`Chain.transact`: one nonce sequence per
account across threads, processes and gateways, see ledger/chain/txsender.py), which first runs
each as a call against the pending block, so a step the contract refuses mines nothing. A
refusal is raised as `ContractRevert` with the custom error's name as its code in snake case
(`ComplaintRegistryStepOutOfOrder` -> `complaint_registry_step_out_of_order`, 409).

No method takes a time: the contract stamps every step with its block's time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3.logs import DISCARD
from web3.types import TxReceipt

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.complaints.model import EVENT_STEPS, ComplaintEvent, event_from_log
from ledger.complaints.signing import ComplaintDomain
from ledger.market.orders import read_eip712_domain


@dataclass(frozen=True)
class SentStep:
    """A mined step: its transaction, block and the events it emitted (one for every step)."""

    tx_hash: bytes
    block_number: int
    events: tuple[ComplaintEvent, ...]

    @property
    def complaint_id(self) -> int:
        return self.events[0].complaint_id

    @property
    def at(self) -> int:
        """The step's time: its block's, as the event carries it."""
        return self.events[0].at


class ComplaintRegistryClient:
    """Sends complaint steps and reads the registry."""

    def __init__(self, chain: Chain, deployment: Deployment) -> None:
        self._chain = chain
        self._registry = deployment.complaint_registry
        self._domain: ComplaintDomain | None = None

    @property
    def address(self) -> str:
        return str(self._registry.address)

    @property
    def contract(self) -> Any:
        return self._registry

    def domain(self) -> ComplaintDomain:
        """The registry's EIP-712 domain (read once: it never changes)."""
        if self._domain is None:
            self._domain = read_eip712_domain(self._chain, self._registry)
        return self._domain

    def nonce(self, customer: str) -> int:
        """The nonce the customer's next signed step must carry."""
        return int(self._chain.call(self._registry.functions.nonces(customer)))

    def complaint_count(self) -> int:
        return int(self._chain.call(self._registry.functions.complaintCount()))

    # --- customers' steps, relayed ------------------------------------------------------------

    def open_by_sig(
        self,
        *,
        kind: int,
        subject_ref: bytes,
        text_hash: bytes,
        customer: str,
        deadline: int,
        signature: bytes,
    ) -> SentStep:
        call = self._registry.functions.openBySig(
            kind, subject_ref, text_hash, customer, deadline, signature
        )
        return self._sent(self._chain.transact(call))

    def rate_by_sig(
        self, *, complaint_id: int, rating: int, customer: str, deadline: int, signature: bytes
    ) -> SentStep:
        call = self._registry.functions.rateBySig(
            complaint_id, rating, customer, deadline, signature
        )
        return self._sent(self._chain.transact(call))

    def reopen_by_sig(
        self,
        *,
        complaint_id: int,
        text_hash: bytes,
        customer: str,
        deadline: int,
        signature: bytes,
    ) -> SentStep:
        call = self._registry.functions.reopenBySig(
            complaint_id, text_hash, customer, deadline, signature
        )
        return self._sent(self._chain.transact(call))

    # --- the operator's steps -----------------------------------------------------------------

    def respond(self, complaint_id: int, text_hash: bytes) -> SentStep:
        return self._sent(
            self._chain.transact(self._registry.functions.respond(complaint_id, text_hash))
        )

    def assign(self, complaint_id: int, handler: bytes, text_hash: bytes) -> SentStep:
        call = self._registry.functions.assign(complaint_id, handler, text_hash)
        return self._sent(self._chain.transact(call))

    def plan(self, complaint_id: int, text_hash: bytes) -> SentStep:
        return self._sent(
            self._chain.transact(self._registry.functions.plan(complaint_id, text_hash))
        )

    def resolve(self, complaint_id: int, text_hash: bytes) -> SentStep:
        return self._sent(
            self._chain.transact(self._registry.functions.resolve(complaint_id, text_hash))
        )

    def _sent(self, receipt: TxReceipt) -> SentStep:
        events = []
        for name in EVENT_STEPS:
            for entry in self._registry.events[name]().process_receipt(receipt, errors=DISCARD):
                events.append(
                    event_from_log(
                        name,
                        entry["args"],
                        block_number=int(entry["blockNumber"]),
                        log_index=int(entry["logIndex"]),
                    )
                )
        return SentStep(
            tx_hash=bytes(receipt["transactionHash"]),
            block_number=int(receipt["blockNumber"]),
            events=tuple(sorted(events, key=lambda e: e.log_index)),
        )
