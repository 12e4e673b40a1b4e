"""The audit's pass over a bundle, with the chain's facts given in memory (no chain): the checks
the tamper tests (tests/integration/test_audit.py) do not reach, and the bundle's form."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from ledger.anchoring.bundle import FORMAT, MAX_LINE_BYTES, BundleMalformed
from ledger.anchoring.merkle import MerkleTree
from ledger.audit.auditor import AuditOptions, Auditor, run_audit
from ledger.audit.chain import ChainBatch, ChainFacts, PinnedBoundary, Settlement
from ledger.audit.report import AuditReport
from ledger.meters.keys import KeyAlgorithm, MeterPrivateKey, encode_public_key, generate_key
from ledger.meters.registry import KeyEpochView, meter_id_bytes
from ledger.readings.native import Reading, anchored_leaf, sign_reading

CHAIN_ID = 1337
SELLER = meter_id_bytes("SELLER-1")
BUYER = meter_id_bytes("BUYER-1")
START = 1_800_000_000
SLOT = 3600


def line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


class Ledger:
    """Signed readings in batches, and the facts a chain would hold of them."""

    def __init__(self) -> None:
        self.keys: dict[bytes, MeterPrivateKey] = {
            SELLER: generate_key(KeyAlgorithm.P256),
            BUYER: generate_key(KeyAlgorithm.P256),
        }
        self.batches: list[list[tuple[Reading, bytes]]] = []

    def batch(self, readings: list[Reading]) -> None:
        self.batches.append([(r, sign_reading(self.keys[r.meter_id], r)) for r in readings])

    def facts(self) -> ChainFacts:
        batches = {}
        for batch_id, batch in enumerate(self.batches, start=1):
            leaves = [anchored_leaf(r.encode(), r.encode(), sig) for r, sig in batch]
            times = [r.timestamp for r, _ in batch]
            batches[batch_id] = ChainBatch(
                batch_id, MerkleTree(leaves).root, len(batch), min(times), max(times), batch_id
            )
        meters = {
            meter: (KeyEpochView(0, KeyAlgorithm.P256, encode_public_key(key.public_key()), 0, 0),)
            for meter, key in self.keys.items()
        }
        return ChainFacts(CHAIN_ID, {}, 0, SLOT, 900, meters=meters, batches=batches)

    def lines(self) -> list[bytes]:
        out = [line({"type": "header", "format": FORMAT, "selection": {}, "created_at": "x"})]
        for batch_id, batch in enumerate(self.batches, start=1):
            out.append(
                line({"type": "batch", "batch_id": batch_id, "root": "0x" + "11" * 32,
                      "count": len(batch), "from_ts": 0, "to_ts": 0, "tx_hash": None,
                      "block_number": None, "final": True, "leaf_version": 2})
            )  # fmt: skip
            for index, (r, signature) in enumerate(batch):
                out.append(
                    line({"type": "reading", "batch_id": batch_id, "leaf_index": index,
                          "meter_id": "0x" + r.meter_id.hex(), "seq": r.seq,
                          "timestamp": r.timestamp, "import_wh": r.import_wh,
                          "export_wh": r.export_wh, "status": 0, "key_epoch": 0,
                          "source": "native", "canonical": "0x" + r.encode().hex(),
                          "signature": "0x" + signature.hex(),
                          "leaf": "0x" + "22" * 32, "proof": []})
                )  # fmt: skip
        readings = sum(len(b) for b in self.batches)
        out.append(line({"type": "trailer", "batches": len(self.batches), "readings": readings}))
        return out


def reading(meter: bytes, seq: int, import_wh: int = 0, export_wh: int = 0) -> Reading:
    return Reading(
        chain_id=CHAIN_ID,
        meter_id=meter,
        seq=seq,
        timestamp=START + seq * 900,
        import_wh=import_wh,
        export_wh=export_wh,
    )


def audit(facts: ChainFacts, lines: list[bytes], jobs: int = 1) -> AuditReport:
    report = AuditReport(CHAIN_ID, {})
    auditor = Auditor(facts, AuditOptions(rpc_url="", deployment=Path()), report)
    auditor.read_bundle(lines, jobs, None)
    auditor.finish()
    return report


def codes(report: AuditReport) -> list[str]:
    return sorted(d.code for d in report.discrepancies)


@pytest.fixture
def ledger() -> Ledger:
    made = Ledger()
    made.batch([reading(SELLER, s, 10 * s, 20 * s) for s in range(4)])
    made.batch([reading(BUYER, s, 30 * s) for s in range(4)])
    return made


def test_a_sound_bundle_of_the_chains_batches_has_no_discrepancy(ledger: Ledger) -> None:
    report = audit(ledger.facts(), ledger.lines())

    assert report.discrepancies == []
    assert (report.counts["readings"], report.counts["batches"]) == (8, 2)


def test_worker_processes_find_what_one_process_finds(ledger: Ledger) -> None:
    ledger.batch([reading(SELLER, 2, 999, 999)])  # a second reading under seller seq 2

    assert codes(audit(ledger.facts(), ledger.lines(), jobs=2)) == codes(
        audit(ledger.facts(), ledger.lines(), jobs=1)
    )


def test_two_different_readings_under_one_meter_and_seq_are_a_conflict(ledger: Ledger) -> None:
    ledger.batch([reading(SELLER, 2, 999, 999)])

    report = audit(ledger.facts(), ledger.lines())

    (conflict,) = [d.record for d in report.discrepancies if d.code == "reading_conflict"]
    assert (conflict["meter"], conflict["seq"], conflict["batch_id"]) == ("SELLER-1", 2, 3)
    assert conflict["other_batch_id"] == 1


def test_a_register_lower_than_at_the_previous_seq_is_named(ledger: Ledger) -> None:
    ledger.batch([reading(BUYER, 4, 5)])  # import falls from 90 to 5

    report = audit(ledger.facts(), ledger.lines())

    assert codes(report) == ["register_decreased"]
    assert report.discrepancies[0].record["seq"] == 4


def test_a_batch_the_chain_never_anchored_is_named(ledger: Ledger) -> None:
    facts = ledger.facts()
    ledger.batch([reading(BUYER, 4, 200)])

    report = audit(facts, ledger.lines())

    assert [(d.code, d.record) for d in report.discrepancies] == [
        ("batch_not_on_chain", {"batch_id": 3})
    ]


def test_an_anchored_batch_of_the_scope_missing_from_the_bundle_is_named(ledger: Ledger) -> None:
    facts = ledger.facts()
    ledger.batches.pop()

    report = audit(facts, ledger.lines())

    assert [(d.code, d.record) for d in report.discrepancies] == [
        ("batch_missing_from_bundle", {"batch_id": 2})
    ]


def test_a_reading_before_its_batch_line_makes_the_bundle_malformed(ledger: Ledger) -> None:
    lines = ledger.lines()
    lines[1], lines[2] = lines[2], lines[1]

    with pytest.raises(BundleMalformed, match="bundle line 2"):
        audit(ledger.facts(), lines)


def _traded(ledger: Ledger, paid: int) -> ChainFacts:
    """A trade of seller -> buyer over the slot [START, START + SLOT), boundaries pinned from
    seq 0 and seq 4 of each meter (readings every 900 s)."""
    ledger.batch([reading(SELLER, 4, 40, 80), reading(BUYER, 4, 120)])
    facts = ledger.facts()
    for meter, (at_start, at_end) in {
        SELLER: ((0, 0), (40, 80)),
        BUYER: ((0, 0), (120, 0)),
    }.items():
        facts.boundaries[(meter, START)] = PinnedBoundary(meter, START, 0, *at_start)
        facts.boundaries[(meter, START + SLOT)] = PinnedBoundary(meter, START + SLOT, 4, *at_end)
    # delivered = min(100 contracted, 80 exported, 120 imported) = 80 Wh at 250,000 a kWh
    facts.settlements.append(
        Settlement(7, 80, paid, 25_000 - paid, SELLER, BUYER, START, 100, 250_000, 25_000)
    )
    return facts


def test_a_settlement_recomputed_from_its_pinned_readings_matches_the_chain(
    ledger: Ledger,
) -> None:
    report = audit(_traded(ledger, paid=20_000), ledger.lines())

    assert report.discrepancies == []
    assert report.counts["settlements"] == 1


def test_a_settlement_that_paid_other_than_its_evidence_gives_is_named(ledger: Ledger) -> None:
    report = audit(_traded(ledger, paid=20_001), ledger.lines())

    assert [(d.code, d.record) for d in report.discrepancies] == [
        ("settlement_mismatch", {"trade_id": 7})
    ]


def test_run_audit_refuses_both_a_bundle_and_a_gateway(ledger: Ledger) -> None:
    from ledger.audit.chain import AuditInputError

    options = AuditOptions(rpc_url="", deployment=Path(), bundle=Path("b"), gateway="http://x")
    with pytest.raises(AuditInputError, match="exactly one"):
        run_audit(options, facts=ledger.facts())


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_endless_reading_line_is_refused_naming_its_line_after_the_lines_before_it(
    ledger: Ledger, tmp_path: Path, jobs: int
) -> None:
    # A gateway the auditor does not trust sends a line that never ends: the audit names it as
    # soon as it has read 1 MiB of it, rather than read it whole into memory (64 MiB here).
    lines = ledger.lines()
    path = tmp_path / "bundle.jsonl"
    path.write_bytes(b"".join(lines[:4]) + b'{"type":"reading"' + b" " * (64 * MAX_LINE_BYTES))
    options = AuditOptions(rpc_url="", deployment=Path(), bundle=path, jobs=jobs)

    tracemalloc.start()
    try:
        with pytest.raises(BundleMalformed, match=f"^bundle line 5: longer than {MAX_LINE_BYTES} "):
            run_audit(options, facts=ledger.facts())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MAX_LINE_BYTES


def test_a_settlement_outside_the_audited_batches_time_span_is_not_checked(
    ledger: Ledger,
) -> None:
    facts = _traded(ledger, paid=20_001)
    ledger.batches = ledger.batches[:1]  # the seller's first four readings only: before the slot
    facts.batches = {1: facts.batches[1]}

    report = audit(facts, ledger.lines())

    assert report.discrepancies == []
    assert report.counts["settlements"] == 0


def test_a_batch_the_gateway_says_holds_version_1_leaves_is_named_unprovable(
    ledger: Ledger,
) -> None:
    lines = ledger.lines()
    lines[1] = lines[1].replace(b'"leaf_version":2', b'"leaf_version":1')

    report = audit(ledger.facts(), lines)

    assert [(d.code, d.record) for d in report.discrepancies] == [
        ("batch_leaf_version_unprovable", {"batch_id": 1})
    ]


def test_readings_after_one_with_a_discrepancy_in_the_same_chunk_are_booked_as_before() -> None:
    # One batch, one chunk: a forged signature at leaf 1 and a second reading under seq 2 at
    # leaf 4 leave the parent's few-step booking for `_reading`, and back.
    made = Ledger()
    made.batch([reading(SELLER, s, 10 * s) for s in range(4)] + [reading(SELLER, 2, 999)])
    forged, _ = made.batches[0][1]
    made.batches[0][1] = (forged, sign_reading(made.keys[SELLER], reading(SELLER, 9)))
    report = AuditReport(CHAIN_ID, {})
    auditor = Auditor(made.facts(), AuditOptions(rpc_url="", deployment=Path()), report)

    auditor.read_bundle(made.lines(), 1, None)
    auditor.finish()

    named = {(d.code, d.record.get("leaf_index")) for d in report.discrepancies}
    assert named == {("reading_signature_invalid", 1), ("reading_conflict", 4)}
    assert (report.counts["readings"], report.counts["batches"]) == (5, 1)
    assert auditor.sound_leaf(SELLER, 1) is None
    assert auditor.sound_leaf(SELLER, 2) is not None and auditor.sound_leaf(SELLER, 3) is not None


def _seller_readings(*rows: tuple[int, int, int, int]) -> list[Reading]:
    """SELLER's readings as (seq, timestamp, import_wh, export_wh)."""
    return [
        Reading(chain_id=CHAIN_ID, meter_id=SELLER, seq=seq, timestamp=at, import_wh=imp,
                export_wh=exp)
        for seq, at, imp, exp in rows
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("rows", "named"),
    [
        # Each way a meter's run can be out of order, once, the rest of the run in order.
        (((1, 900, 5, 5), (2, 1800, 6, 6), (4, 3600, 8, 8)), [("sequence_gap", None)]),
        (((1, 900, 5, 5), (2, 900, 6, 6), (3, 2700, 7, 7)), [("timestamp_not_increasing", 2)]),
        (((1, 900, 5, 5), (2, 1800, 6, 6), (3, 1700, 7, 7)), [("timestamp_not_increasing", 3)]),
        (((1, 900, 5, 5), (2, 1800, 4, 6), (3, 2700, 7, 7)), [("register_decreased", 2)]),
        (((1, 900, 5, 5), (2, 1800, 6, 6), (3, 2700, 7, 5)), [("register_decreased", 3)]),
        (((1, 900, 5, 5), (2, 1800, 5, 5), (3, 2700, 5, 5)), []),  # registers may stay
    ],
)
def test_each_break_in_a_meters_sequence_is_named_and_a_run_in_order_passes(
    rows: tuple[tuple[int, int, int, int], ...], named: list[tuple[str, int | None]]
) -> None:
    made = Ledger()
    made.batch(_seller_readings(*rows))
    made.batch([reading(BUYER, s, 30 * s) for s in range(1, 40)])  # in order

    report = audit(made.facts(), made.lines())

    assert [(d.code, d.record.get("seq")) for d in report.discrepancies] == named
    assert all(d.record["meter"] == "SELLER-1" for d in report.discrepancies)
    assert report.counts["meters"] == 2
