"""Issuing bills: every customer's bill for a period, one Merkle root on chain per run.

An issuing run (`BillingService.issue`):

1. Finishes a run left open by a crash first (its intent is in the database; the chain tells
   whether its `anchorBills` was mined): the same run id, the same root, never a second root.
2. Computes the bill of each customer with a tariff assignment in force before the period's end
   (`ledger/billing/compute.py`, from readings in final anchored batches, the tariffs on record
   and the settled trades), from the first second their tariff is in force.
3. Compares with the customer's current bill for the period: the same bytes -> nothing new; a
   different bill (readings arrived for an estimated range, a trade settled, ...) -> a
   correction that names the bill it replaces; none -> a new bill.
4. Commits the run (root over the new bills' leaves, period, covered reading batches) and its
   bills as an intent in one transaction, then sends `BillRegistry.anchorBills` and marks the run
   anchored from the receipt.

Idempotent: a second run over the same data issues nothing. A refused anchoring (the contract's
checks) drops the intent again, so nothing is left half-issued.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.anchoring.merkle import MerkleTree
from ledger.billing.compute import (
    TariffCurrencyMismatch,
)
from ledger.billing.document import bill_leaf
from ledger.billing.issuing import Computed, RunContext, Skipped, UnknownTariff, compute_outcomes
from ledger.billing.registry import BillRegistryClient
from ledger.billing.tariff import Tariff, parse_tariff, tariff_hash
from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.errors import LedgerError
from ledger.store.bills import BillRun, BillStore, NewBill
from ledger.store.database import Store

log = logging.getLogger(__name__)

TARIFF_DEFAULT_DELAY_S = 60
"""A tariff published or assigned without a valid-from takes effect this long after the chain's
latest block time: later than the block that records it, never in the past."""


class BillingError(LedgerError):
    """An issuing run or a tariff change that cannot be done as asked."""

    code = "billing_error"
    http_status = 409


class PeriodNotOver(BillingError):
    code = "bill_period_not_over"
    http_status = 409


class InvalidPeriod(BillingError):
    code = "invalid_period"
    http_status = 422


class BillRunConflict(BillingError):
    """The chain holds another root under the run id this database committed."""

    code = "bill_run_conflict"


@dataclass(frozen=True)
class SkippedCustomer:
    customer: str
    code: str
    message: str


@dataclass
class IssueResult:
    """What an issuing run did."""

    period_start: int
    period_end: int
    run_id: int | None = None  # None: nothing new to anchor
    issued: list[str] = field(default_factory=list)  # bill hashes (0x...) of new bills
    corrections: list[str] = field(default_factory=list)  # of corrections (also in `issued`)
    unchanged: int = 0
    skipped: list[SkippedCustomer] = field(default_factory=list)
    resumed_run_id: int | None = None  # a run a crash left open, finished first
    transaction_hash: str | None = None
    block_number: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "period_start": self.period_start,
            "period_end": self.period_end,
            "run_id": self.run_id,
            "issued": len(self.issued),
            "corrections": len(self.corrections),
            "unchanged": self.unchanged,
            "bills": self.issued,
            "corrected_bills": self.corrections,
            "skipped": [vars(s) for s in self.skipped],
            "resumed_run_id": self.resumed_run_id,
            "transaction_hash": self.transaction_hash,
            "block_number": self.block_number,
        }


class BillingService:
    """Tariffs on record and issuing runs (see the module docstring)."""

    def __init__(
        self,
        chain: Chain,
        deployment: Deployment,
        store: Store,
        *,
        index_now: Callable[[], None],
        workers: int = 1,
    ) -> None:
        self._chain = chain
        self._store = store
        self._workers = workers
        self._deployment = deployment
        self._bills = BillStore(store)
        self._registry = BillRegistryClient(chain, deployment)
        self._index_now = index_now
        self._currency: tuple[str, int] | None = None
        self._slot_s: int | None = None

    @property
    def bills(self) -> BillStore:
        return self._bills

    @property
    def registry(self) -> BillRegistryClient:
        return self._registry

    # --- tariffs --------------------------------------------------------------------------

    def publish_tariff(self, text: bytes, valid_from: int | None = None) -> dict[str, Any]:
        """Checks a tariff file, keeps its text and records its hash on chain.

        Raises:
            TariffError: the file is not a valid tariff (nothing is sent).
        """
        tariff = parse_tariff(text)
        self._check_currency(tariff)
        digest = tariff_hash(text)
        when = self._chain_time() + TARIFF_DEFAULT_DELAY_S if valid_from is None else valid_from
        self._bills.add_tariff_text(digest, text, tariff.name)
        sent = self._registry.publish_tariff(digest, when)
        self._index_now()
        return {
            "tariff_hash": "0x" + digest.hex(),
            "name": tariff.name,
            "valid_from": when,
            "transaction_hash": "0x" + sent.tx_hash.hex(),
            "block_number": sent.block_number,
        }

    def assign_tariff(
        self, customer: str, digest: bytes, valid_from: int | None = None
    ) -> dict[str, Any]:
        """Records on chain that `customer` is billed with tariff `digest` from `valid_from`."""
        published = self._registry.tariff(digest)
        if published is None:
            raise UnknownTariff(f"tariff 0x{digest.hex()} is not published on chain")
        when = valid_from
        if when is None:
            when = max(self._chain_time() + TARIFF_DEFAULT_DELAY_S, published.valid_from)
        sent = self._registry.assign_tariff(customer, digest, when)
        self._index_now()
        return {
            "customer": customer,
            "tariff_hash": "0x" + digest.hex(),
            "valid_from": when,
            "transaction_hash": "0x" + sent.tx_hash.hex(),
            "block_number": sent.block_number,
        }

    # --- issuing --------------------------------------------------------------------------

    def issue(
        self,
        period_start: int,
        period_end: int,
        *,
        label: str | None = None,
        progress: Callable[[Iterable[str]], Iterable[str]] | None = None,
    ) -> IssueResult:
        """One issuing run for `[period_start, period_end)` (see the module docstring).

        Raises:
            InvalidPeriod: the period is empty.
            PeriodNotOver: the period ends after the chain's latest block time.
            BillRunConflict: the chain holds another root under an open run's id.
        """
        if period_start >= period_end:
            raise InvalidPeriod(f"the period [{period_start}, {period_end}) is empty")
        result = IssueResult(period_start, period_end)
        opened = self._bills.open_run()
        if opened is not None:
            self._finish(opened, result)
            result.resumed_run_id = opened.run_id
        now = self._chain_time()
        if period_end > now:
            raise PeriodNotOver(
                f"the period ends at {period_end}, after the chain's time {now}: bill it later"
            )
        self._index_now()
        customers = self._bills.customers_assigned_before(period_end)
        context = RunContext(
            period_start=period_start,
            period_end=period_end,
            label=label,
            chain_id=self._deployment.chain_id,
            bill_registry=self._deployment.addresses["BillRegistry"],
            currency=self._token_currency(),
            slot_s=self._market_slot_s(),
            final_batches=self._bills.final_batches(),
        )
        computed: list[Computed] = []
        for outcome in compute_outcomes(
            self._bills,
            self._store.location,
            context,
            customers,
            workers=self._workers,
            progress=progress,
        ):
            if isinstance(outcome, Computed):
                computed.append(outcome)
            elif isinstance(outcome, Skipped):
                result.skipped.append(
                    SkippedCustomer(outcome.customer, outcome.code, outcome.message)
                )
            else:
                result.unchanged += 1
        if computed:
            self._record_and_anchor(computed, period_start, period_end, label, result)
        return result

    def _record_and_anchor(
        self,
        computed: Sequence[Computed],
        period_start: int,
        period_end: int,
        label: str | None,
        result: IssueResult,
    ) -> None:
        new_bills = [
            NewBill(
                bill_hash=item.bill_hash,
                customer=item.customer,
                period_start=item.period_start,
                period_end=item.period_end,
                document=item.document,
                total_minor=item.total_minor,
                estimated=item.estimated,
                replaces=item.replaces,
            )
            for item in computed
        ]
        batches = [batch for item in computed for batch in item.batches]
        last_final = self._bills.last_final_batch()
        if last_final == 0:
            raise BillingError("no reading batch is anchored yet: there is nothing to bill from")
        first_batch = min(batches, default=last_final)
        last_batch = max(batches, default=last_final)
        tree = MerkleTree([bill_leaf(b.bill_hash) for b in new_bills])
        run_id = max(self._bills.last_run_id(), self._registry.run_count()) + 1
        run = BillRun(
            run_id=run_id,
            period_start=period_start,
            period_end=period_end,
            period_label=label,
            root=tree.root,
            bill_count=len(new_bills),
            first_reading_batch=first_batch,
            last_reading_batch=last_batch,
            status="intent",
            tx_hash=None,
            block_number=None,
            created_at="",
            anchored_at=None,
        )
        self._bills.record_run(run, new_bills)
        self._finish(run, result)
        result.run_id = run_id
        result.issued = ["0x" + b.bill_hash.hex() for b in new_bills]
        result.corrections = ["0x" + b.bill_hash.hex() for b in new_bills if b.replaces]

    def _finish(self, run: BillRun, result: IssueResult) -> None:
        """Anchors a committed run intent, or marks it anchored when the chain already has it."""
        on_chain = None
        if self._registry.run_count() >= run.run_id:
            on_chain = self._registry.run(run.run_id)
        if on_chain is not None:
            if on_chain.root != run.root:
                raise BillRunConflict(
                    f"the chain holds root 0x{on_chain.root.hex()} under run {run.run_id}, this "
                    f"database committed 0x{run.root.hex()}"
                )
            # Mined before a crash: its transaction and block come from the BillsAnchored event.
            self._index_now()
            chain_run = self._bills.chain_run(run.run_id)
            if chain_run is None:
                raise BillingError(
                    f"run {run.run_id} is on chain but its BillsAnchored event is not indexed "
                    "yet: issue again shortly"
                )
            self._bills.mark_run_anchored(
                run.run_id, tx_hash=chain_run.tx_hash, block_number=chain_run.block_number
            )
            return
        try:
            sent = self._registry.anchor_bills(
                run_id=run.run_id,
                root=run.root,
                bill_count=run.bill_count,
                period_start=run.period_start,
                period_end=run.period_end,
                first_reading_batch=run.first_reading_batch,
                last_reading_batch=run.last_reading_batch,
            )
        except LedgerError as error:
            if error.http_status is not None and 400 <= error.http_status < 500:
                # The contract refused the run: nothing of it is on chain, so nothing of it may
                # stay recorded as issued.
                self._bills.drop_run(run.run_id)
            raise
        tx_hash, block = sent.tx_hash, sent.block_number
        self._bills.mark_run_anchored(run.run_id, tx_hash=tx_hash, block_number=block)
        result.transaction_hash = "0x" + tx_hash.hex()
        result.block_number = block
        self._index_now()

    # --- chain facts ---------------------------------------------------------------------

    def _chain_time(self) -> int:
        return int(self._chain.w3.eth.get_block("latest")["timestamp"])

    def _token_currency(self) -> tuple[str, int]:
        if self._currency is None:
            token = self._deployment.settlement_token
            self._currency = (
                str(token.functions.symbol().call()),
                int(token.functions.decimals().call()),
            )
        return self._currency

    def _market_slot_s(self) -> int:
        if self._slot_s is None:
            self._slot_s = int(self._deployment.energy_market.functions.slotSeconds().call())
        return self._slot_s

    def _check_currency(self, tariff: Tariff) -> None:
        code, decimals = self._token_currency()
        if (tariff.currency, tariff.decimals) != (code, decimals):
            raise TariffCurrencyMismatch(
                f"the tariff is in {tariff.currency} with {tariff.decimals} decimals; bills are "
                f"in the settlement token's {code} with {decimals} decimals"
            )
