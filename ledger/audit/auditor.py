"""One audit: a reading bundle (a file, or a gateway's `GET /v1/bundle` stream) and bills
checked against the chain's events (docs/audit.md is the reference of every check and code).

The bundle is read once. Reading lines go in chunks to `--jobs` worker processes
(`ledger.audit.signatures`: parse, decode, leaf, key, signature); a bundle that is a plain file
(not compressed, not a pipe) the workers read themselves, a range of whole lines each, so that
this process splits, pickles and sends no line. Everything that needs the lines in order (the
bundle's form, each batch's coverage and root, the readings per meter) runs here, on the
workers' results taken back in order. A bounded window of chunks is in flight, so
memory holds the chunks in flight, one batch's leaves and, per reading, a small tuple (its
time, registers, leaf and batch: what the sequence, duplicate and settlement checks need).

Scope: the chain's anchored batches the audit must find in full in the bundle are all of them,
or those of `--batches A-B`, or those with a reading in `--from`..`--to` (their
`ReadingBatchAnchored` time range meets it). Settlements are checked when their slot lies within
the audited batches' time span, bill runs when their period meets it.
"""

from __future__ import annotations

import gc
import gzip
import multiprocessing
import os
import stat
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, NamedTuple

from ledger.anchoring.bundle import (
    FORMAT,
    MAX_LINE_BYTES,
    BundleBatch,
    BundleError,
    BundleHeader,
    BundleMalformed,
    BundleReading,
    BundleTrailer,
    BundleTruncated,
    bounded_lines,
    open_bundle,
    parse_line,
)
from ledger.anchoring.merkle import MerkleError, MerkleTree
from ledger.audit.bills import audit_bills, packages_from_file, packages_from_gateway
from ledger.audit.chain import AuditInputError, ChainBatch, ChainFacts, PinnedBoundary
from ledger.audit.complaints import audit_complaints
from ledger.audit.report import WARNING, AuditReport
from ledger.audit.signatures import (
    READING_PREFIX,
    CheckedReading,
    MalformedLine,
    RangeSegment,
    SentReading,
    check_chunk,
    check_chunk_segment,
    check_lines,
    check_range,
    init_worker,
)
from ledger.complaints.sla import ServiceLevels
from ledger.meters.registry import meter_id_text
from ledger.readings.native import LEAF_VERSION

CHUNK_LINES = 1_000
"""Reading lines per task sent to a worker: large enough that the pickling and the queue cost
little per reading, small enough that the window in flight stays a few MB."""
CHUNKS_PER_WORKER = 4
"""Chunks in flight per worker, so none waits for the next while the parent catches up."""
MAX_NAMED = 100
"""Per batch, the withheld readings named one by one; beyond, one discrepancy counts the rest."""
OMISSION_SEARCH_LEAVES = 512
"""A batch whose rebuilt root differs from the chain's is searched for one reading the chain's
root leaves out (one root rebuilt per leaf left out, so quadratic) up to this many leaves."""
RANGE_BYTES = 1 << 20
"""Bytes of a bundle file a worker reads at a time (whole lines, so a little less): about a
thousand reading lines, as many as in a chunk of a stream."""
WH_PER_KWH = 1000


@dataclass(frozen=True)
class AuditOptions:
    """What `ledger audit` was asked (see `ledger audit --help`)."""

    rpc_url: str
    deployment: Path
    bundle: Path | None = None
    gateway: str | None = None
    token: str | None = None
    bills: Path | None = None
    from_ts: int | None = None
    to_ts: int | None = None
    batches: tuple[int, int] | None = None
    jobs: int = 0
    """Worker processes for the readings; 0: every core. 1: checked in this process."""
    complaint_levels: ServiceLevels = field(default_factory=ServiceLevels)
    """The auditor's complaint targets (LEDGER_COMPLAINT_*; 30 min / 2 h / 8 h by default)."""


Progress = Callable[[int], None]
"""Called with the number of readings just checked."""


class _Chunk(NamedTuple):
    """Consecutive reading lines, the first of them line number `first`."""

    first: int
    lines: list[bytes]


class _Range(NamedTuple):
    """A bundle file's bytes `start`..`end`, whole lines, the first of them line number `first`."""

    start: int
    end: int
    first: int


class BundleFile(NamedTuple):
    """A bundle that is an uncompressed regular file, open: with worker processes, each reads
    the lines it checks itself (`check_range`), and this process only finds where the ranges
    of whole lines start and which line number each starts at."""

    path: str
    stream: IO[bytes]


_TIMESTAMP, _IMPORT_WH, _EXPORT_WH = (
    CheckedReading._fields.index(name) for name in ("timestamp", "import_wh", "export_wh")
)
"""Positions in a `SentReading`: the audit keeps each reading as the tuple its worker sent (no
second object per reading; `CheckedReading._make` names the fields where speed does not matter)."""


class Auditor:
    """One audit's state over the bundle's lines (see the module docstring)."""

    def __init__(self, facts: ChainFacts, options: AuditOptions, report: AuditReport) -> None:
        self.facts = facts
        self.options = options
        self.report = report
        self.scope = scoped_batches(facts, options)
        self.seen_batches: set[int] = set()
        self.readings: dict[bytes, dict[int, SentReading]] = {}
        """Every reading of the bundle by meter and seq (the first one, for a duplicate)."""
        self._batch: BundleBatch | None = None
        self._leaves: dict[int, SentReading] = {}
        self._last_leaf = -1
        self._header_seen = self._trailer_seen = False
        self._lines = 0
        self._counted_batches = self._counted_readings = 0
        self._boundaries_checked: set[tuple[bytes, int, int]] = set()

    # --- the bundle ------------------------------------------------------------------------------

    def read_bundle(
        self, lines: Iterable[bytes] | BundleFile, jobs: int, progress: Progress | None
    ) -> None:
        """Checks every line of a bundle (raises BundleError for a bundle not of the format)."""
        with _cyclic_gc_paused():
            for item in self._checked(lines, jobs):
                if isinstance(item, list):
                    self._readings(item)
                    if progress is not None:
                        progress(len(item))
                else:
                    self._item(item)
        if not self._trailer_seen:
            raise BundleTruncated(f"the bundle ends at line {self._lines} without its trailer")

    def _checked(self, source: Iterable[bytes] | BundleFile, jobs: int) -> Iterator[RangeSegment]:
        """The bundle's lines in order: other lines as (number, raw), reading lines checked, in
        runs, by the workers (or here with one job)."""
        if isinstance(source, BundleFile) and jobs <= 1:
            source = bounded_lines(source.stream)
        if jobs <= 1:
            assert not isinstance(source, BundleFile)
            init_worker(self.facts.chain_id, self.facts.meters)
            for chunk_or_line in self._chunks(source):
                if isinstance(chunk_or_line, _Chunk):
                    yield check_chunk(chunk_or_line.first, chunk_or_line.lines)
                else:
                    yield chunk_or_line
            return
        window: deque[_Pending] = deque()
        with ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=multiprocessing.get_context(_start_method()),
            initializer=init_worker,
            initargs=(self.facts.chain_id, self.facts.meters),
        ) as pool:
            entries = (
                self._ranges(source.stream)
                if isinstance(source, BundleFile)
                else self._chunks(source)
            )
            for entry in entries:
                if isinstance(entry, _Range):
                    assert isinstance(source, BundleFile)
                    window.append(pool.submit(check_range, source.path, *entry))
                elif isinstance(entry, _Chunk):
                    window.append(pool.submit(check_chunk_segment, *entry))
                else:
                    window.append(entry)
                while len(window) > jobs * CHUNKS_PER_WORKER:
                    yield from _resolved(window.popleft())
            while window:
                yield from _resolved(window.popleft())

    def _ranges(self, stream: IO[bytes]) -> Iterator[_Range | tuple[int, bytes]]:
        """Consecutive ranges of whole lines of a bundle file, about RANGE_BYTES each (a longer
        line alone); or, where a line is longer than MAX_LINE_BYTES, its first MAX_LINE_BYTES + 1
        bytes as (number, raw), as `bounded_lines` gives it, and nothing after it."""
        start = 0
        number = self._lines + 1
        while True:
            stream.seek(start)
            block = stream.read(RANGE_BYTES)
            if not block:
                break
            end = len(block) if len(block) < RANGE_BYTES else block.rfind(b"\n") + 1
            if end == 0:  # a line longer than a range: read alone, as `bounded_lines` reads it
                stream.seek(start)
                block = stream.readline(MAX_LINE_BYTES + 1)
                if len(block) > MAX_LINE_BYTES and not block.endswith(b"\n"):
                    self._lines = number
                    yield (number, block)
                    return
                end = len(block)
            lines = block.count(b"\n", 0, end) + (block[end - 1] != 0x0A)
            yield _Range(start, start + end, number)
            number += lines
            start += end
        self._lines = number - 1

    def _chunks(self, lines: Iterable[bytes]) -> Iterator[_Chunk | tuple[int, bytes]]:
        """Runs of consecutive reading lines, at most CHUNK_LINES each, and every other line as
        (number, raw)."""
        chunk: list[bytes] = []
        first = number = self._lines
        for number, raw in enumerate(lines, self._lines + 1):
            if raw.startswith(READING_PREFIX):
                if not chunk:
                    first = number
                chunk.append(raw)
                if len(chunk) >= CHUNK_LINES:
                    self._lines = number
                    yield _Chunk(first, chunk)
                    chunk = []
                continue
            self._lines = number
            if chunk:
                yield _Chunk(first, chunk)
                chunk = []
            yield (number, raw)
        self._lines = number
        if chunk:
            yield _Chunk(first, chunk)

    def _item(self, numbered: tuple[int, bytes]) -> None:
        number, raw = numbered
        if self._trailer_seen:
            if raw.strip():
                raise BundleMalformed(number, "a line after the trailer")
            return
        item = parse_line(number, raw)
        if not self._header_seen:
            if not isinstance(item, BundleHeader):
                raise BundleMalformed(number, "a bundle starts with its header line")
            self._header_seen = True
        elif isinstance(item, BundleHeader):
            raise BundleMalformed(number, "a second header line")
        elif isinstance(item, BundleBatch):
            if self._batch is not None:
                if item.batch_id <= self._batch.batch_id:
                    raise BundleMalformed(
                        number, f"batch {item.batch_id} after batch {self._batch.batch_id}"
                    )
                self._finish_batch()
            self._batch, self._leaves, self._last_leaf = item, {}, -1
            self._counted_batches += 1
        elif isinstance(item, BundleReading):
            # A reading line written differently than this ledger writes them (other key order
            # or spacing): checked here rather than in a worker.
            init_worker(self.facts.chain_id, self.facts.meters)
            (checked,) = check_lines(number, [raw])
            self._reading(checked)
        elif isinstance(item, BundleTrailer):
            if (item.batches, item.readings) != (self._counted_batches, self._counted_readings):
                raise BundleMalformed(
                    number,
                    f"the trailer counts {item.batches} batches and {item.readings} readings; "
                    f"the bundle holds {self._counted_batches} and {self._counted_readings}",
                )
            if self._batch is not None:
                self._finish_batch()
            self._trailer_seen = True

    def _readings(self, chunk: list[SentReading | MalformedLine]) -> None:
        """`_reading` for each of a chunk's checked lines, in order. What nearly every reading
        is (sound, of the current batch, after the last leaf, its (meter, seq) not seen before)
        is booked here in a few steps: at the audit's rate, the steps of `_reading` and the
        named tuples it reads were a noticeable share of a reading's cost. Anything else goes
        through `_reading`, which names it."""
        batch = self._batch
        if batch is None or not self._header_seen or self._trailer_seen:
            for checked in chunk:
                self._reading(_restored(checked))
            return
        batch_id, leaves, readings = batch.batch_id, self._leaves, self.readings
        last, booked = self._last_leaf, 0
        for checked in chunk:
            if not isinstance(checked, MalformedLine):
                # Unpacked in full: a starred target costs seven times as much.
                _, of_batch, leaf_index, meter_id, seq, _, _, _, _, problems = checked
                if of_batch == batch_id and leaf_index > last and not problems:
                    by_seq = readings.get(meter_id)
                    if by_seq is None:
                        by_seq = readings[meter_id] = {}
                    if seq not in by_seq:
                        by_seq[seq] = checked
                        leaves[leaf_index] = checked
                        last = leaf_index
                        booked += 1
                        continue
            self._book(last, booked)
            booked = 0
            self._reading(_restored(checked))
            last = self._last_leaf
        self._book(last, booked)

    def _book(self, last_leaf: int, readings: int) -> None:
        self._last_leaf = last_leaf
        self._counted_readings += readings
        self.report.counts["readings"] += readings

    def _reading(self, checked: CheckedReading | MalformedLine) -> None:
        if isinstance(checked, MalformedLine):
            raise BundleMalformed(checked.line, checked.message.split(": ", 1)[-1])
        if not self._header_seen or self._trailer_seen:
            raise BundleMalformed(checked.line, "a reading outside the header and trailer")
        if self._batch is None or checked.batch_id != self._batch.batch_id:
            raise BundleMalformed(
                checked.line, f"a reading of batch {checked.batch_id} outside its batch"
            )
        if checked.leaf_index <= self._last_leaf:
            raise BundleMalformed(
                checked.line, f"leaf {checked.leaf_index} after leaf {self._last_leaf}"
            )
        self._last_leaf = checked.leaf_index
        self._counted_readings += 1
        self.report.counts["readings"] += 1
        sent: SentReading = tuple(checked)  # type: ignore[assignment]
        self._leaves[checked.leaf_index] = sent
        for code, message in checked.problems:
            self.report.add(code, message, **_reading_record(checked))
        by_seq = self.readings.setdefault(checked.meter_id, {})
        earlier = by_seq.get(checked.seq)
        if earlier is not None:
            first = CheckedReading._make(earlier)
            same = first.leaf == checked.leaf
            self.report.add(
                "reading_duplicate" if same else "reading_conflict",
                (
                    f"the same reading is also in batch {first.batch_id}"
                    if same
                    else f"another reading under this meter and seq is in batch {first.batch_id}"
                ),
                other_batch_id=first.batch_id,
                **_reading_record(checked),
            )
            return
        by_seq[checked.seq] = sent

    def _finish_batch(self) -> None:
        batch = self._batch
        assert batch is not None
        self.seen_batches.add(batch.batch_id)
        self.report.counts["batches"] += 1
        on_chain = self.facts.batches.get(batch.batch_id)
        if on_chain is None:
            self.report.add(
                "batch_not_on_chain",
                "the bundle holds a batch the ReadingLedger never anchored",
                batch_id=batch.batch_id,
            )
            return
        if batch.leaf_version != LEAF_VERSION:
            self.report.add(
                "batch_leaf_version_unprovable",
                f"the gateway says the batch holds version-{batch.leaf_version} leaves: this "
                f"ReadingLedger's fraud proofs rebuild version-{LEAF_VERSION} leaves, so no "
                "forged reading of the batch could ever be proven on chain",
                batch_id=batch.batch_id,
            )
        if batch.count != on_chain.count:
            self.report.add(
                "batch_count_mismatch",
                f"the gateway says {batch.count} readings, the chain's event {on_chain.count}",
                batch_id=batch.batch_id,
            )
        missing = [i for i in range(on_chain.count) if i not in self._leaves]
        for index in missing[:MAX_NAMED]:
            self.report.add(
                "reading_withheld",
                f"leaf {index} of the {on_chain.count} the chain anchored is not in the bundle",
                batch_id=batch.batch_id,
                leaf_index=index,
            )
        if len(missing) > MAX_NAMED:
            self.report.add(
                "reading_withheld",
                f"{len(missing) - MAX_NAMED} more leaves of the batch are not in the bundle",
                batch_id=batch.batch_id,
                missing=len(missing) - MAX_NAMED,
            )
        beyond = [i for i in self._leaves if i >= on_chain.count]
        if beyond:
            self.report.add(
                "batch_extra_readings",
                f"readings at leaf indexes {beyond[:10]} beyond the {on_chain.count} anchored",
                batch_id=batch.batch_id,
            )
        # In leaf order: the bundle's leaf indexes only increase (checked as they come).
        ordered = list(self._leaves.values())
        rebuilt = _root([c[8] for c in ordered])  # SentReading's leaf
        if rebuilt != on_chain.root:
            self._root_mismatch(on_chain, [CheckedReading._make(c) for c in ordered], rebuilt)

    def _root_mismatch(
        self, on_chain: ChainBatch, ordered: list[CheckedReading], rebuilt: bytes | None
    ) -> None:
        shown = "none (no tree)" if rebuilt is None else "0x" + rebuilt.hex()
        self.report.add(
            "batch_root_mismatch",
            f"the root rebuilt from the bundle's {len(ordered)} readings is {shown}, the "
            f"chain's is 0x{on_chain.root.hex()}",
            batch_id=on_chain.batch_id,
        )
        if len(ordered) < 2 or len(ordered) > OMISSION_SEARCH_LEAVES:
            return
        leaves = [c.leaf for c in ordered]
        for position, left_out in enumerate(ordered):
            if _root(leaves[:position] + leaves[position + 1 :]) == on_chain.root:
                self.report.add(
                    "reading_not_in_anchored_root",
                    "the batch's root on chain commits to every reading of the batch but this "
                    "one: it was accepted, and left out of what was anchored",
                    batch_id=on_chain.batch_id,
                    leaf_index=left_out.leaf_index,
                    meter_id="0x" + left_out.meter_id.hex(),
                    meter=meter_id_text(left_out.meter_id),
                    seq=left_out.seq,
                )
                return

    def sound_leaf(self, meter_id: bytes, seq: int) -> bytes | None:
        """The leaf of the bundle's reading (meter, seq) when it was found sound (its signature
        checked under the meter's key at its time), else None: a bill's check of the same leaf
        need not verify its signature again."""
        seen = self.readings.get(meter_id, {}).get(seq)
        if seen is None:
            return None
        reading = CheckedReading._make(seen)
        return reading.leaf if not reading.problems else None

    # --- after the bundle ------------------------------------------------------------------------

    def finish(self) -> None:
        """The checks that need every reading: coverage, sequences, settlements."""
        for batch_id in sorted(set(self.scope) - self.seen_batches):
            batch = self.facts.batches[batch_id]
            self.report.add(
                "batch_missing_from_bundle",
                f"the chain anchored this batch ({batch.count} readings, times {batch.from_ts}.."
                f"{batch.to_ts}) in the audit's scope; the bundle does not hold it",
                batch_id=batch_id,
            )
        for batch_id in sorted(set(self.scope) & set(self.facts.proven_bad)):
            meter_id, seq = self.facts.proven_bad[batch_id]
            self.report.add(
                "batch_proven_bad",
                "a fraud proof on chain (ReadingBatchProvenBad) showed a reading of this batch bad",
                batch_id=batch_id,
                meter_id="0x" + meter_id.hex(),
                meter=meter_id_text(meter_id),
                seq=seq,
            )
        self._sequences()
        self._settlements()

    def _sequences(self) -> None:
        registers = itemgetter(_TIMESTAMP, _IMPORT_WH, _EXPORT_WH)
        for meter_id, by_seq in self.readings.items():
            self.report.counts["meters"] += 1
            meter: dict[str, Any] = {
                "meter_id": "0x" + meter_id.hex(),
                "meter": meter_id_text(meter_id),
            }
            seqs = sorted(by_seq)
            b_at, b_import, b_export = registers(by_seq[seqs[0]])
            for before, after in zip(seqs, seqs[1:], strict=False):
                a_at, a_import, a_export = b_at, b_import, b_export
                b_at, b_import, b_export = registers(by_seq[after])
                if after != before + 1:
                    self.report.add(
                        "sequence_gap",
                        f"no reading with seq {before + 1}..{after - 1} in the bundle",
                        severity=WARNING,
                        first_missing_seq=before + 1,
                        last_missing_seq=after - 1,
                        **meter,
                    )
                if b_import < a_import or b_export < a_export:
                    self.report.add(
                        "register_decreased",
                        f"registers {a_import}/{a_export} Wh at seq {before}, "
                        f"{b_import}/{b_export} Wh at seq {after} (import/export)",
                        seq=after,
                        **meter,
                    )
                if b_at <= a_at:
                    self.report.add(
                        "timestamp_not_increasing",
                        f"seq {after} is timed {b_at}, not after seq {before} ({a_at})",
                        seq=after,
                        **meter,
                    )

    def _settlements(self) -> None:
        span = _time_span(self.facts, self.scope)
        if span is None:
            return
        slot_s = self.facts.slot_s
        export_settled: dict[tuple[bytes, int], int] = {}
        import_settled: dict[tuple[bytes, int], int] = {}
        for settlement in self.facts.settlements:
            slot, end = settlement.slot_start, settlement.slot_start + slot_s
            # A settlement outside the span shares its slot with none inside: skipping it leaves
            # the energy already settled in every audited slot whole.
            if not (span[0] <= slot and end <= span[1]):
                continue
            exported = self._slot_energy(settlement.trade_id, settlement.seller_meter, slot, end)
            imported = self._slot_energy(settlement.trade_id, settlement.buyer_meter, slot, end)
            self.report.counts["settlements"] += 1
            if exported is None or imported is None:
                continue
            export_left = exported[1] - export_settled.get((settlement.seller_meter, slot), 0)
            import_left = imported[0] - import_settled.get((settlement.buyer_meter, slot), 0)
            delivered = min(settlement.quantity_wh, export_left, import_left)
            export_settled[(settlement.seller_meter, slot)] = (
                export_settled.get((settlement.seller_meter, slot), 0) + delivered
            )
            import_settled[(settlement.buyer_meter, slot)] = (
                import_settled.get((settlement.buyer_meter, slot), 0) + delivered
            )
            paid = delivered * settlement.price_per_kwh // WH_PER_KWH
            stated = (settlement.delivered_wh, settlement.paid, settlement.refunded)
            recomputed = (delivered, paid, settlement.escrow - paid)
            if stated != recomputed:
                self.report.add(
                    "settlement_mismatch",
                    f"TradeSettled says delivered {stated[0]} Wh, paid {stated[1]}, refunded "
                    f"{stated[2]}; the pinned registers give {recomputed[0]} Wh, "
                    f"{recomputed[1]}, {recomputed[2]}",
                    trade_id=settlement.trade_id,
                )

    def _slot_energy(
        self, trade_id: int, meter_id: bytes, start: int, end: int
    ) -> tuple[int, int] | None:
        """(import, export) of a meter between the slot's pinned boundaries, each boundary
        checked against its evidence in the bundle; None when a boundary is not pinned."""
        registers = []
        for time in (start, end):
            pinned = self.facts.boundaries.get((meter_id, time))
            if pinned is None:
                self.report.add(
                    "settlement_boundary_not_pinned",
                    f"no BoundaryPinned event for the meter at {time}",
                    trade_id=trade_id,
                    meter_id="0x" + meter_id.hex(),
                    meter=meter_id_text(meter_id),
                )
                return None
            self._boundary_evidence(trade_id, pinned.meter_id, time, pinned.seq, pinned)
            registers.append((pinned.import_wh, pinned.export_wh))
        (import_start, export_start), (import_end, export_end) = registers
        return import_end - import_start, export_end - export_start

    def _boundary_evidence(
        self, trade_id: int, meter_id: bytes, time: int, seq: int, pinned: PinnedBoundary
    ) -> None:
        key = (meter_id, time, trade_id)
        if key in self._boundaries_checked:
            return
        self._boundaries_checked.add(key)
        record: dict[str, Any] = {
            "trade_id": trade_id,
            "meter_id": "0x" + meter_id.hex(),
            "meter": meter_id_text(meter_id),
            "seq": seq,
            "boundary": time,
        }
        by_seq = self.readings.get(meter_id, {})
        seen = by_seq.get(seq)
        if seen is None:
            self.report.add(
                "settlement_evidence_missing",
                "the reading the boundary was pinned from is not in the bundle",
                **record,
            )
            return
        reading = CheckedReading._make(seen)
        problems = []
        if (reading.import_wh, reading.export_wh) != (pinned.import_wh, pinned.export_wh):
            problems.append(
                f"pinned registers {pinned.import_wh}/{pinned.export_wh} Wh, the bundle's signed "
                f"reading {reading.import_wh}/{reading.export_wh} Wh"
            )
        if not time <= reading.timestamp < time + self.facts.boundary_window_s:
            problems.append(f"the reading's time {reading.timestamp} is outside the window")
        previous = by_seq.get(seq - 1)
        previous_at = None if previous is None else CheckedReading._make(previous).timestamp
        if seq > 0 and previous_at is not None and previous_at >= time:
            problems.append(f"seq {seq - 1} is timed {previous_at}, not before {time}")
        if problems:
            self.report.add("settlement_evidence_mismatch", "; ".join(problems), **record)
        elif reading.problems:
            self.report.add(
                "settlement_evidence_invalid",
                "the boundary reading fails its own checks (listed under its batch)",
                **record,
            )


def _reading_record(checked: CheckedReading) -> dict[str, Any]:
    """How a discrepancy names a reading (built only for one: this runs per reading found)."""
    return {
        "batch_id": checked.batch_id,
        "leaf_index": checked.leaf_index,
        "meter_id": "0x" + checked.meter_id.hex(),
        "meter": meter_id_text(checked.meter_id),
        "seq": checked.seq,
    }


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """The cyclic garbage collector paused while the bundle is read: the parent keeps a tuple per
    reading (no cycles among them), and each collection of the oldest generation walks them all
    again, about a fifth of the parent's time on a 40,000-reading bundle (more on a month's).
    Reference counting still frees everything that is let go."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _start_method() -> str:
    """fork when this process runs one thread (the command): a worker then starts at once,
    where spawn re-imports the ledger (about 1.5 s a worker). spawn beside other threads (a
    gateway in the same process, as in tests): fork would copy their locks in whatever state."""
    return "fork" if threading.active_count() == 1 else "spawn"


_Pending = Future[list[RangeSegment]] | tuple[int, bytes]
"""An entry of the window of lines in flight: a chunk or range a worker checks, or another line."""


def _resolved(entry: _Pending) -> list[RangeSegment]:
    return entry.result() if isinstance(entry, Future) else [entry]


def _restored(checked: SentReading | MalformedLine) -> CheckedReading | MalformedLine:
    return checked if isinstance(checked, MalformedLine) else CheckedReading._make(checked)


def _root(leaves: list[bytes]) -> bytes | None:
    try:
        return MerkleTree(leaves).root
    except MerkleError:
        return None


def scoped_batches(facts: ChainFacts, options: AuditOptions) -> dict[int, ChainBatch]:
    """The chain's batches the audit must find in full (see the module docstring)."""
    if options.batches is not None:
        first, last = options.batches
        return {i: b for i, b in facts.batches.items() if first <= i <= last}
    if options.from_ts is not None or options.to_ts is not None:
        low = options.from_ts if options.from_ts is not None else 0
        high = options.to_ts if options.to_ts is not None else 2**64
        return {i: b for i, b in facts.batches.items() if b.from_ts < high and b.to_ts >= low}
    return dict(facts.batches)


def _time_span(facts: ChainFacts, scope: dict[int, ChainBatch]) -> tuple[int, int] | None:
    if not scope:
        return None
    return min(b.from_ts for b in scope.values()), max(b.to_ts for b in scope.values())


# --- the bundle's source -------------------------------------------------------------------------


@contextmanager
def bundle_source(options: AuditOptions, facts: ChainFacts) -> Iterator[Iterator[bytes]]:
    """The bundle's lines: the file's, or those of the gateway's stream of the audit's scope,
    each read up to `bounded_lines`' limit (the source is not trusted with the memory).

    Raises:
        AuditInputError: the file cannot be opened; the gateway refuses or does not answer.
    """
    if options.bundle is not None:
        with _opened_file(options.bundle) as stream:
            yield bounded_lines(stream)
        return
    assert options.gateway is not None
    if options.from_ts is not None or options.to_ts is not None:
        query: dict[str, Any] = {"from": options.from_ts or 0, "to": options.to_ts or 2**64 - 1}
    else:
        if options.batches is None and not facts.batches:
            raise AuditInputError("the chain holds no anchored batch yet: nothing to audit")
        first, last = options.batches or (1, max(facts.batches))
        query = {"batches": f"{first}-{last}"}
    url = options.gateway.rstrip("/") + "/v1/bundle?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(url)
    if options.token:
        request.add_header("Authorization", f"Bearer {options.token}")
    try:
        answer = urllib.request.urlopen(request, timeout=120)  # noqa: S310 - the user's URL
    except urllib.error.HTTPError as error:
        raise AuditInputError(f"GET {url}: HTTP {error.code} {error.read()[:300]!r}") from None
    except (urllib.error.URLError, OSError) as error:
        raise AuditInputError(f"GET {url}: {error}") from None
    with answer:
        yield bounded_lines(answer)


@contextmanager
def _audit_source(
    options: AuditOptions, facts: ChainFacts, jobs: int
) -> Iterator[Iterator[bytes] | BundleFile]:
    """`bundle_source`, except that a bundle file that is regular and not compressed is given as
    a `BundleFile` when worker processes check it (they read it a range at a time)."""
    if options.bundle is None or jobs <= 1:
        with bundle_source(options, facts) as lines:
            yield lines
        return
    with _opened_file(options.bundle) as stream:
        plain = not isinstance(stream, gzip.GzipFile) and stat.S_ISREG(
            os.fstat(stream.fileno()).st_mode
        )
        yield BundleFile(str(options.bundle), stream) if plain else bounded_lines(stream)


def _opened_file(path: Path) -> IO[bytes]:
    """`open_bundle(path)`, its failure an AuditInputError."""
    try:
        return open_bundle(path)
    except OSError as error:
        raise AuditInputError(f"bundle {path}: {error}") from None


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_audit(
    options: AuditOptions,
    *,
    progress: Callable[[int], Progress] | None = None,
    facts: ChainFacts | None = None,
) -> AuditReport:
    """The whole audit (docs/audit.md). `progress`, given the number of readings to expect,
    returns the callback to count them with.

    Raises:
        AuditInputError: a missing or unusable input (exit status 2).
        BundleError: a bundle not of the format (exit status 2).
        ChainUnavailable: the chain does not answer.
    """
    if (options.bundle is None) == (options.gateway is None):
        raise AuditInputError("give exactly one of --bundle PATH and --gateway URL")
    facts = facts or ChainFacts.read(options.rpc_url, options.deployment)
    scope_info: dict[str, Any] = {
        "from": options.from_ts,
        "to": options.to_ts,
        "batches": list(options.batches) if options.batches else None,
        "source": str(options.bundle) if options.bundle else options.gateway,
        "format": FORMAT,
    }
    report = AuditReport(facts.chain_id, scope_info)
    auditor = Auditor(facts, options, report)
    scope_info["chain_batches"] = len(auditor.scope)
    expected = sum(b.count for b in auditor.scope.values())
    count = progress(expected) if progress is not None else None
    jobs = options.jobs or default_jobs()
    with _audit_source(options, facts, jobs) as lines:
        try:
            auditor.read_bundle(lines, jobs, count)
        except BundleError:
            raise
        except (OSError, EOFError) as error:
            raise AuditInputError(f"reading the bundle: {error}") from None
    auditor.finish()
    span = _time_span(facts, auditor.scope)
    runs = [
        run_id
        for run_id, run in facts.bill_runs.items()
        if span is not None and run.period_start <= span[1] and run.period_end > span[0]
    ]
    if options.bills is not None:
        audit_bills(packages_from_file(options.bills), facts, report, runs, auditor.sound_leaf)
    elif options.gateway is not None:
        packages = packages_from_gateway(options.gateway, options.token, facts.customers)
        audit_bills(packages, facts, report, runs, auditor.sound_leaf)
    else:
        report.add(
            "bills_not_checked",
            f"no bills were given (--bills PATH); {len(runs)} anchored bill runs in scope",
            severity=WARNING,
        )
    if facts.complaint_registry is not None and facts.w3 is not None:
        report.complaint_statistics = audit_complaints(
            facts.w3,
            facts.complaint_registry,
            report,
            levels=options.complaint_levels,
            head_block=facts.head,
            from_ts=options.from_ts,
            to_ts=options.to_ts,
            gateway=options.gateway,
            token=options.token,
        )
    return report
