"""Issuing runs that a crash interrupts finish with the same run id and root, never a second one.

A run is committed as an intent before `anchorBills` is sent. Two crashes are simulated on a
real chain: the transaction was never sent (the chain went away), and it was mined but the
gateway died before marking the run anchored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ledger.billing.issuing import Computed, RunContext, compute_outcomes
from ledger.billing.registry import BillRegistryClient
from ledger.errors import ChainUnavailable, ContractRevert
from ledger.store.bills import ReadingColumns
from tests.fixtures.billing import BilledLedger, billed_ledger


def _nonce(billed: BilledLedger) -> int:
    chain = billed.node.chain
    return int(chain.w3.eth.get_transaction_count(chain.operator.address, "pending"))


class _Crash(Exception):
    """Stands for the process dying at that point."""


def test_a_run_whose_anchoring_was_never_sent_is_sent_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with billed_ledger(tmp_path / "data", hours=2) as billed:
        service = billed.node.billing
        registry: Any = service.registry

        def unreachable(**_: Any) -> None:
            raise ChainUnavailable(rpc_url="http://chain", reason="connection refused")

        monkeypatch.setattr(registry, "anchor_bills", unreachable)
        with pytest.raises(ChainUnavailable):
            service.issue(billed.period_start, billed.period_end)
        opened = service.bills.open_run()
        assert opened is not None and opened.run_id == 1
        monkeypatch.undo()

        resumed = service.issue(billed.period_start, billed.period_end)
        assert resumed.resumed_run_id == 1
        assert resumed.issued == [] and resumed.unchanged == len(billed.customers)
        assert service.bills.open_run() is None
        chain_run = BillRegistryClient(billed.node.chain, billed.node.deployment)
        assert chain_run.run_count() == 1
        assert chain_run.run(1).root == opened.root


def test_a_run_mined_before_a_crash_is_marked_anchored_without_sending_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with billed_ledger(tmp_path / "data", hours=2) as billed:
        service = billed.node.billing
        store: Any = service.bills
        real_mark = store.mark_run_anchored

        def die_after_mining(*_: Any, **__: Any) -> None:
            raise _Crash

        monkeypatch.setattr(store, "mark_run_anchored", die_after_mining)
        with pytest.raises(_Crash):
            service.issue(billed.period_start, billed.period_end)
        monkeypatch.setattr(store, "mark_run_anchored", real_mark)
        sent = _nonce(billed)

        resumed = service.issue(billed.period_start, billed.period_end)
        assert resumed.resumed_run_id == 1 and resumed.issued == []
        assert _nonce(billed) == sent  # nothing sent again
        run = service.bills.run(1)
        assert run is not None and run.status == "anchored" and run.block_number
        assert BillRegistryClient(billed.node.chain, billed.node.deployment).run_count() == 1


def test_a_run_the_registry_refuses_leaves_no_bill_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with billed_ledger(tmp_path / "data", hours=2) as billed:
        service = billed.node.billing
        # Claim reading batches the ReadingLedger never anchored: the registry refuses the run.
        monkeypatch.setattr(service.bills, "last_final_batch", lambda: 10**6)
        monkeypatch.setattr(
            service.bills, "anchored_readings", lambda *a, **k: ReadingColumns.of_rows([])
        )
        with pytest.raises(ContractRevert) as refused:
            service.issue(billed.period_start, billed.period_end)
        assert refused.value.code == "bill_registry_reading_batch_not_anchored"
        assert service.bills.runs() == [] and service.bills.open_run() is None
        assert service.bills.bills_of(billed.customers[0]) == []


def test_worker_processes_compute_the_same_bills_as_the_calling_process(tmp_path: Path) -> None:
    with billed_ledger(tmp_path / "data", hours=2, meters_per_customer=(2, 1, 1)) as billed:
        node = billed.node
        service = node.billing
        bills = service.bills
        context = RunContext(
            period_start=billed.period_start,
            period_end=billed.period_end,
            label=None,
            chain_id=node.chain.chain_id,
            bill_registry=node.deployment.addresses["BillRegistry"],
            currency=("ELC", 6),
            slot_s=3600,
            final_batches=bills.final_batches(),
        )
        customers = bills.customers_assigned_before(billed.period_end)
        here = list(compute_outcomes(bills, node.store.location, context, customers, workers=1))
        spread = list(
            compute_outcomes(
                bills, node.store.location, context, customers, workers=2, parallel_from=1
            )
        )
        assert len(here) == len(customers) == 3
        assert all(isinstance(outcome, Computed) for outcome in here)
        assert spread == here
