"""Billing's queries and writes: tariffs and runs from the chain's events (the read model), and
the gateway's tariff texts, issuing runs and bills (`bill_tables.py`).

Everything a bill is computed from is read here in a few queries per customer: the customer's
meters and tariff assignments (indexed from the chain), each meter's readings in final anchored
batches around the period, and the settled trades of its meters. Rows come back as plain tuples
of integers and bytes; `ledger/billing/service.py` turns them into the billing core's inputs.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ledger.errors import LedgerError
from ledger.store.backends import from_u64, u64, uint, utc_now_iso
from ledger.store.read_model import Connection, Database, LogRef


class BillAlreadyIssued(LedgerError):
    """A customer already has a current bill for a period overlapping this one, and the new
    bill does not name it as the bill it replaces."""

    code = "bill_already_issued"
    http_status = 409


# --- the read model: BillRegistry's events ---------------------------------------------------


def add_tariff(db: Connection, log: LogRef, *, tariff_hash: bytes, valid_from: int) -> None:
    """TariffPublished."""
    db.execute(
        "INSERT INTO chain_tariffs (tariff_hash, valid_from, block_number, tx_hash, log_index) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (tariff_hash, u64(valid_from), *log.params()),
    )


def add_tariff_assignment(
    db: Connection, log: LogRef, *, customer: str, tariff_hash: bytes, valid_from: int
) -> None:
    """TariffAssigned."""
    db.execute(
        "INSERT INTO chain_tariff_assignments (customer, valid_from, tariff_hash, block_number, "
        "tx_hash, log_index) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (customer, u64(valid_from), tariff_hash, *log.params()),
    )


def add_chain_bill_run(
    db: Connection,
    log: LogRef,
    *,
    run_id: int,
    root: bytes,
    bill_count: int,
    period_start: int,
    period_end: int,
    first_reading_batch: int,
    last_reading_batch: int,
) -> None:
    """BillsAnchored."""
    db.execute(
        "INSERT INTO chain_bill_runs (run_id, root, bill_count, period_start, period_end, "
        "first_reading_batch, last_reading_batch, block_number, tx_hash, log_index) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (
            run_id,
            root,
            bill_count,
            u64(period_start),
            u64(period_end),
            first_reading_batch,
            last_reading_batch,
            *log.params(),
        ),
    )


@dataclass(frozen=True)
class PublishedTariff:
    tariff_hash: bytes
    valid_from: int
    block_number: int
    text: bytes | None  # None: published on chain, but this gateway does not hold its text
    name: str | None


@dataclass(frozen=True)
class ChainBillRun:
    """A run as the chain's BillsAnchored event recorded it."""

    run_id: int
    root: bytes
    bill_count: int
    period_start: int
    period_end: int
    first_reading_batch: int
    last_reading_batch: int
    block_number: int
    tx_hash: bytes


@dataclass(frozen=True)
class BillRun:
    """One row of `bill_runs`."""

    run_id: int
    period_start: int
    period_end: int
    period_label: str | None
    root: bytes
    bill_count: int
    first_reading_batch: int
    last_reading_batch: int
    status: str  # 'intent' | 'anchored'
    tx_hash: bytes | None
    block_number: int | None
    created_at: str
    anchored_at: str | None


@dataclass(frozen=True)
class StoredBill:
    """One row of `bills`."""

    bill_hash: bytes
    run_id: int
    leaf_index: int
    customer: str
    period_start: int
    period_end: int
    document: bytes
    total_minor: int
    estimated: bool
    replaces: bytes | None
    replaced_by: bytes | None
    created_at: str


@dataclass(frozen=True)
class NewBill:
    """A bill an issuing run is about to record (its leaf position is its index in the run)."""

    bill_hash: bytes
    customer: str
    period_start: int
    period_end: int
    document: bytes
    total_minor: int
    estimated: bool
    replaces: bytes | None


@dataclass(frozen=True)
class TradeRow:
    """A trade of one of a customer's meters, with its settlement (None while open)."""

    trade_id: int
    seller_meter: bytes
    buyer_meter: bytes
    delivery_start: int
    outcome: str | None  # 'settled' | 'refunded' | None (open)
    delivered_wh: int
    paid: int


class ReadingColumns(NamedTuple):
    """A meter's readings as columns, by seq: one tuple of integers per field. A bill reads
    about 3,000 readings a meter-month; columns come out of one `struct` call each, where a
    tuple per reading would cost more than the bill's whole computation."""

    seqs: tuple[int, ...]
    timestamps: tuple[int, ...]
    imports: tuple[int, ...]
    exports: tuple[int, ...]
    batch_ids: tuple[int, ...]

    def rows(self) -> list[tuple[int, int, int, int, int]]:
        """(seq, timestamp, import Wh, export Wh, batch id) per reading."""
        return list(zip(*self, strict=True))

    @classmethod
    def of_rows(cls, rows: Sequence[tuple[int, int, int, int, int]]) -> ReadingColumns:
        if not rows:
            return _NO_READINGS
        return cls(*(tuple(column) for column in zip(*rows, strict=True)))


_NO_READINGS = ReadingColumns((), (), (), (), ())

# Five values holding every batched row of a meter's seq range (pending rows are left out): the
# seqs, timestamps, imports and exports each as one byte string of 8-byte big-endian values (as
# stored), and the batch ids as comma-separated text. SQLite: group_concat joins the BLOBs'
# bytes as they are (the database is UTF-8, so the TEXT it makes holds the same bytes) and
# CAST(... AS BLOB) hands them back untouched. One aggregate per column, over the covering index
# `readings_for_bills` in its (meter_id, seq) order, took 40 % less time than one aggregate of
# `seq || timestamp || ...` over an ORDER BY subquery; SQLite does not promise that order, so
# `_packed_columns` checks it.
_PACKED_READINGS = {
    "sqlite": (
        "SELECT CAST(group_concat(seq, '') AS BLOB), CAST(group_concat(timestamp, '') AS BLOB), "
        "CAST(group_concat(import_wh, '') AS BLOB), CAST(group_concat(export_wh, '') AS BLOB), "
        "group_concat(batch_id) FROM readings "
        "WHERE meter_id = ? AND seq >= ? AND seq <= ? AND batch_id IS NOT NULL"
    ),
    "postgresql": (
        "SELECT string_agg(seq, ''::bytea ORDER BY seq), "
        "string_agg(timestamp, ''::bytea ORDER BY seq), "
        "string_agg(import_wh, ''::bytea ORDER BY seq), "
        "string_agg(export_wh, ''::bytea ORDER BY seq), "
        "string_agg(batch_id::text, ',' ORDER BY seq) FROM readings WHERE meter_id = ? "
        "AND seq >= ? AND seq <= ? AND batch_id IS NOT NULL"
    ),
}

_RUN_COLUMNS = (
    "run_id, period_start, period_end, period_label, root, bill_count, first_reading_batch, "
    "last_reading_batch, status, tx_hash, block_number, created_at, anchored_at"
)
_BILL_COLUMNS = (
    "bill_hash, run_id, leaf_index, customer, period_start, period_end, document, total_minor, "
    "estimated, replaces, replaced_by, created_at"
)


def _optional_bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _run(row: Sequence[Any]) -> BillRun:
    return BillRun(
        run_id=int(row[0]),
        period_start=int(row[1]),
        period_end=int(row[2]),
        period_label=None if row[3] is None else str(row[3]),
        root=bytes(row[4]),
        bill_count=int(row[5]),
        first_reading_batch=int(row[6]),
        last_reading_batch=int(row[7]),
        status=str(row[8]),
        tx_hash=_optional_bytes(row[9]),
        block_number=None if row[10] is None else int(row[10]),
        created_at=str(row[11]),
        anchored_at=None if row[12] is None else str(row[12]),
    )


def _bill(row: Sequence[Any]) -> StoredBill:
    return StoredBill(
        bill_hash=bytes(row[0]),
        run_id=int(row[1]),
        leaf_index=int(row[2]),
        customer=str(row[3]),
        period_start=int(row[4]),
        period_end=int(row[5]),
        document=bytes(row[6]),
        total_minor=int(row[7]),
        estimated=bool(row[8]),
        replaces=_optional_bytes(row[9]),
        replaced_by=_optional_bytes(row[10]),
        created_at=str(row[11]),
    )


def _seq_bound(db: Connection, meter_id: bytes, time: int, *, before: bool) -> int:
    """The seq of the meter's last stored reading at or before `time` (`before`), or of its
    first at or after it; the meter's first (last) seq when there is none.

    Timestamps rise with seq, so this is a binary search over seq by primary-key lookups: a
    few dozen index probes, where `timestamp <= ? ORDER BY seq DESC LIMIT 1` would read every
    row after `time` (readings have no index on their timestamp)."""
    # ORDER BY ... LIMIT 1 rather than min()/max(): PostgreSQL has no min(bytea).
    first = db.execute(
        "SELECT seq FROM readings WHERE meter_id = ? ORDER BY seq LIMIT 1", (meter_id,)
    ).fetchone()
    if first is None:
        return 0
    last = db.execute(
        "SELECT seq FROM readings WHERE meter_id = ? ORDER BY seq DESC LIMIT 1", (meter_id,)
    ).fetchone()
    low, high = from_u64(first[0]), from_u64(last[0])

    def at_or_after(seq: int) -> tuple[int, int]:
        row = db.execute(
            "SELECT seq, timestamp FROM readings WHERE meter_id = ? AND seq >= ? "
            "ORDER BY seq LIMIT 1",
            (meter_id, u64(seq)),
        ).fetchone()
        return from_u64(row[0]), from_u64(row[1])

    if before:
        # The greatest stored seq whose timestamp is <= time (or the first seq).
        found = low
        while low <= high:
            middle = (low + high) // 2
            seq, timestamp = at_or_after(middle)
            if timestamp <= time:
                found, low = seq, seq + 1
            else:
                high = middle - 1
        return found
    # The least stored seq whose timestamp is >= time (or the last seq).
    found = high
    while low <= high:
        middle = (low + high) // 2
        seq, timestamp = at_or_after(middle)
        if timestamp >= time:
            found, high = seq, middle - 1
        else:
            low = seq + 1
    return found


def _anchored_seq(db: Connection, meter_id: bytes, time: int, *, before: bool) -> int | None:
    """The seq of the meter's last reading in a final anchored batch at or before `time`
    (`before`), or its first at or after it."""
    order = "DESC" if before else ""
    compare = "<=" if before else ">="
    row = db.execute(
        "SELECT r.seq FROM readings r JOIN batches b ON b.batch_id = r.batch_id "
        "WHERE r.meter_id = ? AND b.status = 'anchored' AND b.final_at IS NOT NULL "
        f"AND r.timestamp {compare} ? ORDER BY r.seq {order} LIMIT 1",  # noqa: S608
        (meter_id, u64(time)),
    ).fetchone()
    return None if row is None else from_u64(row[0])


def _packed_columns(db: Connection, meter_id: bytes, low: int, high: int) -> ReadingColumns:
    """The meter's batched readings with seq in [low, high], by seq (`_PACKED_READINGS`)."""
    *packed, batch_ids = db.execute(
        _PACKED_READINGS[db.name], (meter_id, u64(low), u64(high))
    ).fetchone()
    if not packed[0]:
        return _NO_READINGS
    unpack = struct.Struct(f">{len(packed[0]) // 8}Q").unpack
    seqs, timestamps, imports, exports = (unpack(bytes(column)) for column in packed)
    columns = ReadingColumns(
        seqs, timestamps, imports, exports, tuple(map(int, batch_ids.split(",")))
    )
    if list(columns.seqs) != sorted(columns.seqs):
        # SQLite aggregates in the index's order in practice but does not promise it.
        return ReadingColumns.of_rows(sorted(columns.rows()))
    return columns


class BillStore:
    """Billing's reads and writes on the store's connection (see the module docstring)."""

    def __init__(self, store: Database) -> None:
        self._store = store

    # --- tariffs --------------------------------------------------------------------------

    def add_tariff_text(self, tariff_hash: bytes, text: bytes, name: str) -> None:
        """Keeps a tariff file's bytes under its hash (idempotent)."""
        with self._store.write() as db:
            db.execute(
                "INSERT INTO tariff_texts (tariff_hash, text, name, added_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (tariff_hash, text, name, utc_now_iso()),
            )

    def tariff_text(self, tariff_hash: bytes) -> bytes | None:
        with self._store.read() as db:
            row = db.execute(
                "SELECT text FROM tariff_texts WHERE tariff_hash = ?", (tariff_hash,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def published_tariffs(self) -> list[PublishedTariff]:
        """Every tariff the chain says was published, with its text where this gateway has it."""
        with self._store.read() as db:
            rows = db.execute(
                "SELECT c.tariff_hash, c.valid_from, c.block_number, t.text, t.name "
                "FROM chain_tariffs c LEFT JOIN tariff_texts t ON t.tariff_hash = c.tariff_hash "
                "ORDER BY c.block_number, c.log_index"
            ).fetchall()
        return [
            PublishedTariff(
                tariff_hash=bytes(r[0]),
                valid_from=uint(r[1]),
                block_number=int(r[2]),
                text=_optional_bytes(r[3]),
                name=None if r[4] is None else str(r[4]),
            )
            for r in rows
        ]

    def published_tariff(self, tariff_hash: bytes) -> PublishedTariff | None:
        for tariff in self.published_tariffs():
            if tariff.tariff_hash == tariff_hash:
                return tariff
        return None

    def assignments(self, customer: str) -> list[tuple[int, bytes]]:
        """The customer's tariff assignments on chain as (valid_from, tariff hash), oldest
        first."""
        with self._store.read() as db:
            rows = db.execute(
                "SELECT valid_from, tariff_hash FROM chain_tariff_assignments WHERE customer = ? "
                "ORDER BY valid_from",
                (customer,),
            ).fetchall()
        return [(uint(r[0]), bytes(r[1])) for r in rows]

    def customers_assigned_before(self, time: int) -> list[str]:
        """Customers with a tariff assignment in force before `time` (who have a bill to get
        for a period ending then), in address order."""
        with self._store.read() as db:
            rows = db.execute(
                "SELECT DISTINCT customer FROM chain_tariff_assignments WHERE valid_from < ? "
                "ORDER BY customer",
                (u64(time),),
            ).fetchall()
        return [str(r[0]) for r in rows]

    # --- what a bill is computed from ----------------------------------------------------

    def meters_of(self, customer: str) -> list[bytes]:
        """The meters the registry says `customer` owns, in id order."""
        with self._store.read() as db:
            rows = db.execute(
                "SELECT meter_id FROM chain_meters WHERE owner = ? ORDER BY meter_id", (customer,)
            ).fetchall()
        return [bytes(r[0]) for r in rows]

    def final_batches(self) -> frozenset[int]:
        """Ids of the reading batches that are anchored and final: what a bill may rely on."""
        with self._store.read() as db:
            rows = db.execute(
                "SELECT batch_id FROM batches WHERE status = 'anchored' AND final_at IS NOT NULL"
            ).fetchall()
        return frozenset(int(r[0]) for r in rows)

    def anchored_readings(
        self,
        meter_id: bytes,
        period_start: int,
        period_end: int,
        final_batches: frozenset[int] | None = None,
    ) -> ReadingColumns:
        """The meter's readings in final anchored batches from the last one at or before
        `period_start` to the first one at or after `period_end`, by seq. Readings still
        pending, or in a batch that is not final, are left out: a bill relies only on what is
        provable on chain."""
        final = self.final_batches() if final_batches is None else final_batches
        with self._store.read() as db:
            low = _seq_bound(db, meter_id, period_start, before=True)
            high = _seq_bound(db, meter_id, period_end, before=False)
            columns = _packed_columns(db, meter_id, low, high)
            if columns.seqs and final.issuperset(columns.batch_ids):
                return columns
            rows = [row for row in columns.rows() if row[4] in final]
            # A boundary reading that is stored but not (finally) anchored: the bill reaches to
            # the nearest anchored one, looked up the slow way (a join per row).
            if not rows or rows[0][1] > period_start:
                anchored = _anchored_seq(db, meter_id, period_start, before=True)
                if anchored is not None and (not rows or anchored < rows[0][0]):
                    wider = _packed_columns(db, meter_id, anchored, high).rows()
                    rows = [r for r in wider if r[4] in final]
            if not rows or rows[-1][1] < period_end:
                anchored = _anchored_seq(db, meter_id, period_end, before=False)
                if anchored is not None and (not rows or anchored > rows[-1][0]):
                    low = rows[0][0] if rows else low
                    wider = _packed_columns(db, meter_id, low, anchored).rows()
                    rows = [r for r in wider if r[4] in final]
        return ReadingColumns.of_rows(rows)

    def trades_of_meters(
        self, meters: Sequence[bytes], delivery_from: int, delivery_to: int
    ) -> list[TradeRow]:
        """Trades whose seller or buyer meter is one of `meters` and whose delivery slot starts
        in `[delivery_from, delivery_to)`, by trade id."""
        if not meters:
            return []
        marks = ", ".join("?" for _ in meters)
        with self._store.read() as db:
            rows = db.execute(
                "SELECT t.trade_id, o.seller_meter, t.buyer_meter, o.delivery_start, s.outcome, "
                "s.delivered_wh, s.paid FROM chain_trades t "
                "JOIN chain_offers o ON o.offer_id = t.offer_id "
                "LEFT JOIN chain_settlements s ON s.trade_id = t.trade_id "
                f"WHERE (o.seller_meter IN ({marks}) OR t.buyer_meter IN ({marks})) "  # noqa: S608
                "AND o.delivery_start >= ? AND o.delivery_start < ? ORDER BY t.trade_id",
                (*meters, *meters, u64(delivery_from), u64(delivery_to)),
            ).fetchall()
        return [
            TradeRow(
                trade_id=int(r[0]),
                seller_meter=bytes(r[1]),
                buyer_meter=bytes(r[2]),
                delivery_start=uint(r[3]),
                outcome=None if r[4] is None else str(r[4]),
                delivered_wh=0 if r[5] is None else uint(r[5]),
                paid=0 if r[6] is None else uint(r[6]),
            )
            for r in rows
        ]

    def signed_readings(
        self, meter_id: bytes, first_seq: int, last_seq: int
    ) -> list[tuple[int, bytes, bytes, str, bytes | None, int | None, int | None]]:
        """(seq, canonical, signature, source, raw OCMF record, batch id, leaf index) of the
        meter's stored readings with seq in `[first_seq, last_seq]`, by seq: what a bill's
        evidence carries for anyone to check the signatures and proofs."""
        with self._store.read() as db:
            rows = db.execute(
                "SELECT seq, canonical, signature, source, raw, batch_id, leaf_index FROM readings "
                "WHERE meter_id = ? AND seq >= ? AND seq <= ? ORDER BY seq",
                (meter_id, u64(first_seq), u64(last_seq)),
            ).fetchall()
        return [
            (
                from_u64(r[0]),
                bytes(r[1]),
                bytes(r[2]),
                str(r[3]),
                _optional_bytes(r[4]),
                None if r[5] is None else int(r[5]),
                None if r[6] is None else int(r[6]),
            )
            for r in rows
        ]

    def last_final_batch(self) -> int:
        """The newest final anchored reading batch (0 when none)."""
        with self._store.read() as db:
            row = db.execute(
                "SELECT max(batch_id) FROM batches WHERE status = 'anchored' "
                "AND final_at IS NOT NULL"
            ).fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    # --- runs and bills ------------------------------------------------------------------

    def open_run(self) -> BillRun | None:
        """The run committed as an intent whose anchoring has not been seen mined, if any."""
        with self._store.read() as db:
            row = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM bill_runs WHERE status = 'intent' "  # noqa: S608
                "ORDER BY run_id LIMIT 1"
            ).fetchone()
        return None if row is None else _run(row)

    def run(self, run_id: int) -> BillRun | None:
        with self._store.read() as db:
            row = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM bill_runs WHERE run_id = ?",  # noqa: S608
                (run_id,),
            ).fetchone()
        return None if row is None else _run(row)

    def runs(self) -> list[BillRun]:
        with self._store.read() as db:
            rows = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM bill_runs ORDER BY run_id"  # noqa: S608
            ).fetchall()
        return [_run(r) for r in rows]

    def last_run_id(self) -> int:
        with self._store.read() as db:
            row = db.execute("SELECT max(run_id) FROM bill_runs").fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    def chain_run(self, run_id: int) -> ChainBillRun | None:
        """The run as indexed from the chain's BillsAnchored event."""
        with self._store.read() as db:
            r = db.execute(
                "SELECT run_id, root, bill_count, period_start, period_end, first_reading_batch, "
                "last_reading_batch, block_number, tx_hash FROM chain_bill_runs WHERE run_id = ?",
                (run_id,),
            ).fetchone()
        if r is None:
            return None
        return ChainBillRun(
            run_id=int(r[0]),
            root=bytes(r[1]),
            bill_count=int(r[2]),
            period_start=uint(r[3]),
            period_end=uint(r[4]),
            first_reading_batch=int(r[5]),
            last_reading_batch=int(r[6]),
            block_number=int(r[7]),
            tx_hash=bytes(r[8]),
        )

    def current_bills_overlapping(
        self, customer: str, period_start: int, period_end: int
    ) -> list[StoredBill]:
        """The customer's current (not replaced) bills whose period overlaps the given one."""
        with self._store.read() as db:
            rows = db.execute(
                f"SELECT {_BILL_COLUMNS} FROM bills WHERE customer = ? "  # noqa: S608
                "AND replaced_by IS NULL AND period_start < ? AND period_end > ? "
                "ORDER BY period_start",
                (customer, period_end, period_start),
            ).fetchall()
        return [_bill(r) for r in rows]

    def record_run(self, run: BillRun, bills: Sequence[NewBill]) -> None:
        """Commits a run intent and its bills in one transaction, marking each replaced bill.

        Raises:
            BillAlreadyIssued: a bill's customer has a current bill overlapping its period that
                it does not replace (nothing is written).
        """
        now = utc_now_iso()
        with self._store.write() as db:
            for bill in bills:
                current = db.execute(
                    "SELECT bill_hash FROM bills WHERE customer = ? AND replaced_by IS NULL "
                    "AND period_start < ? AND period_end > ?",
                    (bill.customer, bill.period_end, bill.period_start),
                ).fetchall()
                held = {bytes(r[0]) for r in current}
                replaced = set() if bill.replaces is None else {bill.replaces}
                if held != replaced:
                    raise BillAlreadyIssued(
                        f"customer {bill.customer} already has a current bill for a period "
                        f"overlapping [{bill.period_start}, {bill.period_end}): a new bill must "
                        "name the bill it replaces"
                    )
            db.execute(
                f"INSERT INTO bill_runs ({_RUN_COLUMNS}) "  # noqa: S608
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.run_id,
                    run.period_start,
                    run.period_end,
                    run.period_label,
                    run.root,
                    run.bill_count,
                    run.first_reading_batch,
                    run.last_reading_batch,
                    run.status,
                    run.tx_hash,
                    run.block_number,
                    now,
                    run.anchored_at,
                ),
            )
            for bill in bills:
                if bill.replaces is not None:
                    db.execute(
                        "UPDATE bills SET replaced_by = ? WHERE bill_hash = ?",
                        (bill.bill_hash, bill.replaces),
                    )
            db.executemany(
                f"INSERT INTO bills ({_BILL_COLUMNS}) "  # noqa: S608
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        bill.bill_hash,
                        run.run_id,
                        index,
                        bill.customer,
                        bill.period_start,
                        bill.period_end,
                        bill.document,
                        bill.total_minor,
                        int(bill.estimated),
                        bill.replaces,
                        None,
                        now,
                    )
                    for index, bill in enumerate(bills)
                ],
            )

    def drop_run(self, run_id: int) -> None:
        """Deletes a run intent the chain refused, and its bills; the bills they would have
        replaced are current again."""
        with self._store.write() as db:
            dropped = db.execute(
                "SELECT bill_hash FROM bills WHERE run_id = ?", (run_id,)
            ).fetchall()
            # The run's bills go first: until then they are the current ones.
            db.execute("DELETE FROM bills WHERE run_id = ?", (run_id,))
            db.executemany(
                "UPDATE bills SET replaced_by = NULL WHERE replaced_by = ?",
                [(bytes(r[0]),) for r in dropped],
            )
            db.execute("DELETE FROM bill_runs WHERE run_id = ? AND status = 'intent'", (run_id,))

    def mark_run_anchored(self, run_id: int, *, tx_hash: bytes, block_number: int) -> None:
        with self._store.write() as db:
            db.execute(
                "UPDATE bill_runs SET status = 'anchored', tx_hash = ?, block_number = ?, "
                "anchored_at = ? WHERE run_id = ?",
                (tx_hash, block_number, utc_now_iso(), run_id),
            )

    def bill(self, bill_hash: bytes) -> StoredBill | None:
        with self._store.read() as db:
            row = db.execute(
                f"SELECT {_BILL_COLUMNS} FROM bills WHERE bill_hash = ?",  # noqa: S608
                (bill_hash,),
            ).fetchone()
        return None if row is None else _bill(row)

    def bills_of(self, customer: str) -> list[StoredBill]:
        """Every bill of the customer (corrected ones too), newest period first."""
        with self._store.read() as db:
            rows = db.execute(
                f"SELECT {_BILL_COLUMNS} FROM bills WHERE customer = ? "  # noqa: S608
                "ORDER BY period_start DESC, run_id DESC",
                (customer,),
            ).fetchall()
        return [_bill(r) for r in rows]

    def run_bill_hashes(self, run_id: int) -> list[bytes]:
        """The bill hashes of a run in leaf order (what its Merkle tree is built over)."""
        with self._store.read() as db:
            rows = db.execute(
                "SELECT bill_hash FROM bills WHERE run_id = ? ORDER BY leaf_index", (run_id,)
            ).fetchall()
        return [bytes(r[0]) for r in rows]
