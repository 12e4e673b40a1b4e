"""Reading bundles from a store, without a chain: what the writer puts in, what the reader lets
through, and what each refuses with which code."""

from __future__ import annotations

import gzip
import io
import json
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.anchoring.bundle import (
    FORMAT,
    MAX_LINE_BYTES,
    BundleBatch,
    BundleHeader,
    BundleReading,
    BundleSelection,
    BundleTrailer,
    bounded_lines,
    bundle_lines,
    check_selection,
    export_bundle,
    open_bundle,
    read_bundle,
    write_bundle,
)
from ledger.anchoring.merkle import MerkleTree
from ledger.anchoring.merkle import verify as verify_proof
from ledger.errors import LedgerError
from ledger.readings.native import Reading, reading_leaf
from ledger.store.backends import utc_now_iso
from ledger.store.batches import BatchRecord, BatchStatus, PendingLeaf
from ledger.store.database import Store
from ledger.store.readings import StoredReading

METER = b"METER-BUNDLE-01".ljust(32, b"\x00")
FIRST_TS = 1_700_000_000
OCMF_RECORD = (
    'OCMF|{"FV":"1.0","RD":[{"RV":"1.5","RU":"kWh"}]}|{"SA":"ECDSA-secp256r1-SHA256","SD":"3044"}'
)


def stored_reading(seq: int, *, ocmf: bool = False) -> StoredReading:
    reading = Reading(
        chain_id=1337,
        meter_id=METER,
        seq=seq,
        timestamp=FIRST_TS + 900 * seq,
        import_wh=1_000 + 250 * seq,
        export_wh=10 * seq,
    )
    canonical = reading.encode()
    return StoredReading(
        meter_id=METER,
        seq=seq,
        timestamp=reading.timestamp,
        import_wh=reading.import_wh,
        export_wh=reading.export_wh,
        status=0,
        canonical=canonical,
        signature=bytes([seq % 256]) * 64,
        key_epoch=1,
        leaf=reading_leaf(canonical),
        receipt_id=uuid.uuid4().hex,
        received_at=utc_now_iso(),
        source="ocmf" if ocmf else "native",
        raw=OCMF_RECORD.encode() if ocmf else None,
    )


def add_batch(store: Store, seqs: range, *, anchored: bool = True) -> BatchRecord:
    """Stores readings `seqs` of METER as one batch (anchored unless told otherwise)."""
    rows = [stored_reading(seq, ocmf=seq % 5 == 0) for seq in seqs]
    with store.reading_transaction() as writer:
        for row in rows:
            writer.insert_reading(row)
    batch = BatchRecord(
        batch_id=store.last_batch_id() + 1,
        root=MerkleTree([row.leaf for row in rows]).root,
        count=len(rows),
        from_ts=rows[0].timestamp,
        to_ts=rows[-1].timestamp,
        status=BatchStatus.INTENT,
        tx_hash=None,
        block_number=None,
        created_at=utc_now_iso(),
        anchored_at=None,
    )
    members = [PendingLeaf(r.meter_id, r.seq, r.timestamp, r.leaf) for r in rows]
    store.create_batch_intent(batch, members)
    if anchored:
        store.mark_anchored(batch.batch_id, b"\x11" * 32, 7, utc_now_iso(), final_at=utc_now_iso())
    found = store.batch(batch.batch_id)
    assert found is not None
    return found


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "ledger.db")
    yield opened
    opened.close()


def items_of(store: Store, selection: BundleSelection) -> list[object]:
    return list(read_bundle(bundle_lines(store, selection)))


def code_of(error: pytest.ExceptionInfo[LedgerError]) -> str:
    return error.value.code


def test_every_reading_of_a_selected_batch_is_written_with_a_proof_of_its_root(
    store: Store,
) -> None:
    first = add_batch(store, range(1, 8))
    second = add_batch(store, range(8, 11))

    items = items_of(store, BundleSelection.batch_range(1, 2))

    header, *body, trailer = items
    assert isinstance(header, BundleHeader) and header.format == FORMAT
    assert trailer == BundleTrailer(batches=2, readings=10)
    roots = {b.batch_id: b.root for b in body if isinstance(b, BundleBatch)}
    assert roots == {1: first.root, 2: second.root}
    readings = [r for r in body if isinstance(r, BundleReading)]
    assert [r.seq for r in readings] == list(range(1, 11))
    for reading in readings:
        assert reading.leaf == reading_leaf(reading.canonical)
        assert verify_proof(list(reading.proof), roots[reading.batch_id], reading.leaf)
        stored = store.reading(METER, reading.seq)
        assert stored is not None
        assert (reading.signature, reading.key_epoch) == (stored.signature, stored.key_epoch)


def test_an_ocmf_reading_carries_the_record_its_signature_signs(store: Store) -> None:
    add_batch(store, range(5, 7))

    readings = [r for r in items_of(store, BundleSelection.batch_range(1, 1))]

    ocmf = [r for r in readings if isinstance(r, BundleReading) and r.source == "ocmf"]
    native = [r for r in readings if isinstance(r, BundleReading) and r.source == "native"]
    assert [(r.seq, r.ocmf) for r in ocmf] == [(5, OCMF_RECORD)]
    assert [(r.seq, r.ocmf) for r in native] == [(6, None)]


def test_a_time_range_selects_the_whole_batches_whose_readings_meet_it(store: Store) -> None:
    add_batch(store, range(1, 5))  # FIRST_TS + 900 .. + 3600
    add_batch(store, range(5, 9))  # FIRST_TS + 4500 .. + 7200
    add_batch(store, range(9, 13))  # FIRST_TS + 8100 .. + 10800

    items = items_of(store, BundleSelection.time_range(FIRST_TS + 3600, FIRST_TS + 4501))

    assert [b.batch_id for b in items if isinstance(b, BundleBatch)] == [1, 2]
    assert [r.seq for r in items if isinstance(r, BundleReading)] == list(range(1, 9))


def test_a_batch_not_anchored_is_in_no_time_range_bundle(store: Store) -> None:
    add_batch(store, range(1, 5))
    add_batch(store, range(5, 9), anchored=False)

    items = items_of(store, BundleSelection.time_range(0, 2**64 - 1))

    assert [b.batch_id for b in items if isinstance(b, BundleBatch)] == [1]


def test_a_reading_missing_from_the_store_shows_as_a_batch_count_above_its_lines(
    store: Store,
) -> None:
    add_batch(store, range(1, 5))
    with store.write() as db:
        db.execute("DELETE FROM readings WHERE leaf_index = 2")

    items = items_of(store, BundleSelection.batch_range(1, 1))

    (batch,) = [b for b in items if isinstance(b, BundleBatch)]
    assert batch.count == 4
    assert [r.leaf_index for r in items if isinstance(r, BundleReading)] == [0, 1, 3]


def test_a_bundle_of_many_readings_is_written_in_memory_far_below_its_size(
    store: Store,
) -> None:
    for first in range(0, 8_000, 400):
        add_batch(store, range(first, first + 400))
    written = 0

    class Sink:
        def write(self, data: bytes) -> int:
            nonlocal written
            written += len(data)
            return len(data)

    tracemalloc.start()
    try:
        counts = write_bundle(store, BundleSelection.batch_range(1, 20), Sink())  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert counts == (20, 8_000)
    assert written > 10_000_000
    assert peak < written / 10, (peak, written)


def test_an_export_to_a_gz_path_is_compressed_and_reads_back(store: Store, tmp_path: Path) -> None:
    add_batch(store, range(1, 4))
    path = tmp_path / "bundle.jsonl.gz"

    counts = export_bundle(store, BundleSelection.batch_range(1, 1), path)

    assert counts == (1, 3)
    assert gzip.decompress(path.read_bytes()).startswith(b'{"type":"header"')
    with open_bundle(path) as stream:
        assert list(read_bundle(stream))[-1] == BundleTrailer(batches=1, readings=3)


@pytest.mark.parametrize("text", ["5-3", "0-2", "a-b", "1-", "-4", "", "\u00b2-3", "1-2-3"])
def test_a_batch_range_that_is_not_one_is_bundle_invalid_range(text: str) -> None:
    with pytest.raises(LedgerError) as error:
        BundleSelection.parse_batches(text)
    assert code_of(error) == "bundle_invalid_range"


@pytest.mark.parametrize(("start", "end"), [(10, 10), (11, 10), (-1, 5), (0, 2**64)])
def test_a_time_range_that_is_empty_or_out_of_bounds_is_bundle_invalid_range(
    start: int, end: int
) -> None:
    with pytest.raises(LedgerError) as error:
        BundleSelection.time_range(start, end)
    assert code_of(error) == "bundle_invalid_range"


def test_batch_ids_the_store_does_not_hold_are_bundle_unknown_batches_named(
    store: Store,
) -> None:
    add_batch(store, range(1, 3))

    with pytest.raises(LedgerError) as error:
        check_selection(store, BundleSelection.batch_range(1, 3))

    assert code_of(error) == "bundle_unknown_batches"
    assert error.value.http_status == 404
    assert "no batch 2, 3 in 1-3" in str(error.value)


def test_a_batch_not_anchored_in_a_batch_range_is_bundle_batches_not_anchored(
    store: Store,
) -> None:
    add_batch(store, range(1, 3))
    add_batch(store, range(3, 5), anchored=False)

    with pytest.raises(LedgerError) as error:
        check_selection(store, BundleSelection.batch_range(1, 2))

    assert code_of(error) == "bundle_batches_not_anchored"
    assert "2 (intent)" in str(error.value)


def bundle_text(store: Store) -> list[bytes]:
    add_batch(store, range(1, 4))
    return list(bundle_lines(store, BundleSelection.batch_range(1, 1)))


def test_a_bundle_cut_before_its_trailer_is_bundle_truncated(store: Store) -> None:
    lines = bundle_text(store)[:-1]

    with pytest.raises(LedgerError) as error:
        list(read_bundle(lines))
    assert code_of(error) == "bundle_truncated"


def test_a_header_of_another_version_is_bundle_unsupported_format(store: Store) -> None:
    lines = bundle_text(store)
    lines[0] = lines[0].replace(b"/v2", b"/v3")

    with pytest.raises(LedgerError) as error:
        list(read_bundle(lines))
    assert code_of(error) == "bundle_unsupported_format"


def test_a_batch_line_says_its_leaf_version(store: Store) -> None:
    items = list(read_bundle(bundle_text(store)))

    batches = [item for item in items if isinstance(item, BundleBatch)]
    assert batches and all(b.leaf_version == 2 for b in batches)


def test_a_v1_bundle_is_read_with_its_batches_at_leaf_version_1(store: Store) -> None:
    lines = [
        line.replace(b"/v2", b"/v1").replace(b',"leaf_version":2', b"")
        for line in bundle_text(store)
    ]

    items = list(read_bundle(lines))

    batches = [item for item in items if isinstance(item, BundleBatch)]
    assert batches and all(b.leaf_version == 1 for b in batches)


def test_a_reading_with_a_short_proof_hash_is_bundle_malformed_naming_its_line(
    store: Store,
) -> None:
    lines = bundle_text(store)
    reading = json.loads(lines[3])
    reading["proof"][0] = "0x1234"
    lines[3] = json.dumps(reading).encode()

    with pytest.raises(LedgerError) as error:
        list(read_bundle(lines))
    assert code_of(error) == "bundle_malformed"
    assert str(error.value).startswith("bundle line 4: proof must be 32 bytes")


def test_a_reading_before_any_batch_line_is_bundle_malformed(store: Store) -> None:
    lines = bundle_text(store)
    lines[1], lines[2] = lines[2], lines[1]

    with pytest.raises(LedgerError) as error:
        list(read_bundle(lines))
    assert code_of(error) == "bundle_malformed"
    assert "outside its batch" in str(error.value)


def test_a_trailer_whose_counts_differ_from_the_lines_is_bundle_malformed(store: Store) -> None:
    lines = bundle_text(store)
    del lines[2]

    with pytest.raises(LedgerError) as error:
        list(read_bundle(lines))
    assert code_of(error) == "bundle_malformed"
    assert "the bundle holds 1 and 2" in str(error.value)


def test_an_export_reports_each_reading_written_to_its_progress(
    store: Store, tmp_path: Path
) -> None:
    add_batch(store, range(1, 4))
    add_batch(store, range(4, 6))
    reported: list[int] = []

    counts = export_bundle(
        store, BundleSelection.batch_range(1, 2), tmp_path / "b.jsonl", reported.append
    )

    assert counts == (2, 5)
    assert reported == [1] * 5


@pytest.mark.parametrize(
    "text",
    [b"", b"a\n", b"a\nbb\n\n", b"a\n" + b"b" * 10 + b"\n" + b"c", b"\r\nx\ry\n" + b"z" * 10],
)
def test_bounded_lines_are_the_lines_iteration_gives_when_none_is_too_long(text: bytes) -> None:
    # limit 10: a line of 10 bytes and its newline is not too long (the newline is not counted).
    assert list(bounded_lines(io.BytesIO(text), limit=10)) == list(io.BytesIO(text))


def test_a_line_over_the_limit_comes_cut_after_limit_plus_one_bytes_and_ends_the_lines() -> None:
    stream = io.BytesIO(b"a\n" + b"b" * 25 + b"\nc\n")

    assert list(bounded_lines(stream, limit=10)) == [b"a\n", b"b" * 11]
    assert stream.tell() == 2 + 11


def test_a_bundle_line_longer_than_1_mib_is_refused_without_reading_the_rest_of_it(
    store: Store,
) -> None:
    header = bundle_text(store)[0]
    endless = b'{"type":"batch","x":"' + b"y" * (4 * MAX_LINE_BYTES)  # no newline, ever
    stream = io.BytesIO(header + endless)

    with pytest.raises(LedgerError) as error:
        list(read_bundle(bounded_lines(stream)))

    assert code_of(error) == "bundle_malformed"
    assert str(error.value) == f"bundle line 2: longer than {MAX_LINE_BYTES} bytes"
    assert stream.tell() == len(header) + MAX_LINE_BYTES + 1
