"""The bills table group: at most one current bill per customer and period, corrections replace
what they name and keep it on record (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from ledger.store.backends import u64
from ledger.store.bills import BillAlreadyIssued, BillRun, BillStore, NewBill
from ledger.store.database import Store

CUSTOMER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
NOVEMBER = (1_793_491_200, 1_796_083_200)


def _run(run_id: int) -> BillRun:
    return BillRun(
        run_id=run_id,
        period_start=NOVEMBER[0],
        period_end=NOVEMBER[1],
        period_label="2026-11",
        root=bytes([run_id]) * 32,
        bill_count=1,
        first_reading_batch=1,
        last_reading_batch=1,
        status="intent",
        tx_hash=None,
        block_number=None,
        created_at="",
        anchored_at=None,
    )


def _bill(
    tag: int, *, replaces: bytes | None = None, period: tuple[int, int] = NOVEMBER
) -> NewBill:
    return NewBill(
        bill_hash=bytes([tag]) * 32,
        customer=CUSTOMER,
        period_start=period[0],
        period_end=period[1],
        document=b"{}",
        total_minor=100 * tag,
        estimated=False,
        replaces=replaces,
    )


def test_a_second_bill_for_the_same_customer_and_period_without_a_correction_link_is_refused(
    store: Store,
) -> None:
    bills = BillStore(store)
    bills.record_run(_run(1), [_bill(1)])
    with pytest.raises(BillAlreadyIssued):
        bills.record_run(_run(2), [_bill(2)])
    assert bills.run(2) is None  # nothing of the refused run was written
    assert bills.bill(bytes([2]) * 32) is None


def test_a_bill_over_an_overlapping_period_is_refused_too(store: Store) -> None:
    bills = BillStore(store)
    bills.record_run(_run(1), [_bill(1)])
    with pytest.raises(BillAlreadyIssued):
        bills.record_run(_run(2), [_bill(2, period=(NOVEMBER[0] + 86_400, NOVEMBER[1] + 86_400))])


def test_a_correction_replaces_the_bill_it_names_and_both_stay_on_record(store: Store) -> None:
    bills = BillStore(store)
    first, second = bytes([1]) * 32, bytes([2]) * 32
    bills.record_run(_run(1), [_bill(1)])
    bills.record_run(_run(2), [_bill(2, replaces=first)])
    old, new = bills.bill(first), bills.bill(second)
    assert old is not None and old.replaced_by == second
    assert new is not None and new.replaces == first and new.replaced_by is None
    assert [b.bill_hash for b in bills.current_bills_overlapping(CUSTOMER, *NOVEMBER)] == [second]
    assert {b.bill_hash for b in bills.bills_of(CUSTOMER)} == {first, second}


def test_a_correction_of_a_bill_that_was_already_replaced_is_refused(store: Store) -> None:
    bills = BillStore(store)
    first = bytes([1]) * 32
    bills.record_run(_run(1), [_bill(1)])
    bills.record_run(_run(2), [_bill(2, replaces=first)])
    with pytest.raises(BillAlreadyIssued):
        bills.record_run(_run(3), [_bill(3, replaces=first)])


def test_a_run_stays_open_until_marked_anchored(store: Store) -> None:
    bills = BillStore(store)
    bills.record_run(_run(1), [_bill(1)])
    opened = bills.open_run()
    assert opened is not None and opened.run_id == 1 and opened.status == "intent"
    bills.mark_run_anchored(1, tx_hash=b"\x11" * 32, block_number=7)
    assert bills.open_run() is None
    anchored = bills.run(1)
    assert anchored is not None and anchored.status == "anchored" and anchored.block_number == 7
    assert bills.run_bill_hashes(1) == [bytes([1]) * 32]


def test_dropping_a_refused_run_makes_the_bill_it_corrected_current_again(store: Store) -> None:
    bills = BillStore(store)
    first = bytes([1]) * 32
    bills.record_run(_run(1), [_bill(1)])
    bills.mark_run_anchored(1, tx_hash=b"\x11" * 32, block_number=7)
    bills.record_run(_run(2), [_bill(2, replaces=first)])
    bills.drop_run(2)
    assert bills.run(2) is None and bills.bill(bytes([2]) * 32) is None
    restored = bills.bill(first)
    assert restored is not None and restored.replaced_by is None


def test_a_bill_reads_the_readings_in_final_anchored_batches_around_its_period(
    store: Store,
) -> None:
    meter = b"M".ljust(32, b"\0")
    with store.write() as db:
        for batch_id, status, final_at in ((1, "anchored", "x"), (2, "intent", None)):
            db.execute(
                "INSERT INTO batches (batch_id, root, count, from_ts, to_ts, status, created_at, "
                "final_at) VALUES (?, ?, 1, ?, ?, ?, '', ?)",
                (batch_id, bytes([batch_id]) * 32, u64(0), u64(0), status, final_at),
            )
        for seq in range(7):
            batch = None if seq == 6 else (2 if seq == 4 else 1)
            db.execute(
                "INSERT INTO readings (meter_id, seq, timestamp, import_wh, export_wh, status, "
                "canonical, signature, key_epoch, leaf, receipt_id, received_at, batch_id) "
                "VALUES (?, ?, ?, ?, ?, 0, ?, ?, 0, ?, ?, '', ?)",
                (
                    meter,
                    u64(seq),
                    u64(100 * (seq + 1)),
                    u64(10 * seq),
                    u64(seq),
                    b"",
                    b"",
                    bytes([seq]) * 32,
                    f"r{seq}",
                    batch,
                ),
            )
    rows = BillStore(store).anchored_readings(meter, 250, 450)
    # seq 1 (t=200) is the last at or before the start; seq 4 (t=500) is in a batch that is
    # not anchored, so seq 5 (t=600) is the first at or after the end; seq 6 is pending.
    assert rows.rows() == [
        (1, 200, 10, 1, 1),
        (2, 300, 20, 2, 1),
        (3, 400, 30, 3, 1),
        (5, 600, 50, 5, 1),
    ]


def test_the_period_bounds_are_found_among_gaps_in_the_sequence(store: Store) -> None:
    meter = b"G".ljust(32, b"\0")
    seqs = [0, 1, 5, 6, 9, 20]  # readings missing between them (gaps)
    with store.write() as db:
        db.execute(
            "INSERT INTO batches (batch_id, root, count, from_ts, to_ts, status, created_at, "
            "final_at) VALUES (1, ?, 1, ?, ?, 'anchored', '', 'x')",
            (bytes(32), u64(0), u64(0)),
        )
        for seq in seqs:
            db.execute(
                "INSERT INTO readings (meter_id, seq, timestamp, import_wh, export_wh, status, "
                "canonical, signature, key_epoch, leaf, receipt_id, received_at, batch_id) "
                "VALUES (?, ?, ?, ?, ?, 0, ?, ?, 0, ?, ?, '', 1)",
                (
                    meter,
                    u64(seq),
                    u64(1000 + 10 * seq),
                    u64(0),
                    u64(0),
                    b"",
                    b"",
                    bytes([seq]) * 32,
                    f"g{seq}",
                ),
            )
    bills = BillStore(store)
    assert list(bills.anchored_readings(meter, 1055, 1085).seqs) == [5, 6, 9]
    assert list(bills.anchored_readings(meter, 1000, 1090).seqs) == [0, 1, 5, 6, 9]
    assert list(bills.anchored_readings(meter, 1049, 1091).seqs) == [1, 5, 6, 9, 20]
    assert list(bills.anchored_readings(meter, 500, 600).seqs) == [0]
    assert list(bills.anchored_readings(meter, 5000, 6000).seqs) == [20]


def test_register_values_of_any_bytes_come_back_exactly_from_the_packed_read(store: Store) -> None:
    # Bytes that are no valid UTF-8 (0xff, a lone 0xc3), NULs, and the largest uint64: the
    # packed read joins the stored bytes as they are, whatever they hold.
    meter = b"\xff\x00\xc3".ljust(32, b"\x80")
    values = [
        (0, 100, 0, 0, 1),
        (1, 200, 0xFF_C3_00_80_FF_00_C3_28, 0x00_00_00_00_00_00_00_FF, 1),
        (2, 2**64 - 1, 2**64 - 1, 2**63, 2**40),
    ]
    with store.write() as db:
        for batch_id in (1, 2**40):
            db.execute(
                "INSERT INTO batches (batch_id, root, count, from_ts, to_ts, status, created_at, "
                "final_at) VALUES (?, ?, 1, ?, ?, 'anchored', '', 'x')",
                (batch_id, bytes(32), u64(0), u64(0)),
            )
        for seq, timestamp, imported, exported, batch_id in values:
            db.execute(
                "INSERT INTO readings (meter_id, seq, timestamp, import_wh, export_wh, status, "
                "canonical, signature, key_epoch, leaf, receipt_id, received_at, batch_id) "
                "VALUES (?, ?, ?, ?, ?, 0, ?, ?, 0, ?, ?, '', ?)",
                (
                    meter,
                    u64(seq),
                    u64(timestamp),
                    u64(imported),
                    u64(exported),
                    b"",
                    b"",
                    bytes([seq]) * 32,
                    f"b{seq}",
                    batch_id,
                ),
            )
    assert BillStore(store).anchored_readings(meter, 0, 2**64 - 1).rows() == values
