"""The complaint tables: the read model's steps and the gateway's texts, on SQLite and
PostgreSQL."""

from __future__ import annotations

from ledger.store import complaints
from ledger.store.database import Store
from ledger.store.read_model import LogRef

CUSTOMER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
OTHER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def _add(store: Store, row: complaints.StepRow) -> None:
    log = LogRef(row.block_number, bytes([row.block_number]) * 32, row.log_index)
    with store.write() as db:
        complaints.add_step(db, log, row)


def _opened(complaint_id: int, customer: str, block: int) -> complaints.StepRow:
    return complaints.StepRow(
        complaint_id=complaint_id,
        step="opened",
        round=1,
        at=1_790_000_000 + block,
        customer=customer,
        subject_kind=0,
        subject_ref=bytes(32),
        text_hash=bytes([complaint_id]) * 32,
        block_number=block,
    )


def test_a_customers_steps_are_those_of_the_complaints_it_opened_in_chain_order(
    store: Store,
) -> None:
    _add(store, _opened(1, CUSTOMER, 1))
    _add(store, _opened(2, OTHER, 2))
    _add(store, complaints.StepRow(1, "responded", 1, 1_790_000_100, block_number=3))

    found = complaints.steps(store, customer=CUSTOMER)

    assert [(row.complaint_id, row.step) for row in found] == [(1, "opened"), (1, "responded")]
    assert found[0].subject_ref == bytes(32) and found[0].customer == CUSTOMER


def test_a_step_indexed_twice_is_kept_once(store: Store) -> None:
    _add(store, _opened(1, CUSTOMER, 1))
    _add(store, _opened(1, CUSTOMER, 1))

    assert len(complaints.steps(store, complaint_id=1)) == 1


def test_texts_are_found_by_their_hash_and_a_missing_one_is_absent(store: Store) -> None:
    complaints.save_text(store, "电表读数有误", b"\x01" * 32, now=1)
    complaints.save_text(store, "电表读数有误", b"\x01" * 32, now=2)

    assert complaints.texts(store, [b"\x01" * 32, b"\x02" * 32]) == {b"\x01" * 32: "电表读数有误"}
