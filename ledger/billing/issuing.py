"""Computing the bills of an issuing run: one customer at a time, in this process or in several.

`BillComputer.outcome(customer)` reads everything one customer's bill depends on from the store
(meters, tariff assignments, readings in final anchored batches, trades of the period), computes
the document with `compute_bill`, serialises it canonically and compares it with the customer's
current bill: the result is a new bill, a correction, "unchanged", or a skip with its reason.
It needs no chain: the chain's facts a bill names (chain id, addresses, the token's currency, the
market's slot length) come in a `RunContext`.

A large run computes its customers in worker processes (`compute_outcomes`): the work per
customer is a month of readings read and reduced in Python, a few milliseconds a bill on one
core while the others wait. Each worker opens its own connection to the same database
(SQLite in WAL mode lets readers run beside the gateway; PostgreSQL serves them as clients) and
returns the canonical bytes, so the parent only records and anchors.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ledger.anchoring.merkle import keccak256
from ledger.billing.compute import BillInputs, MeterReadings, SettledTrade, compute_bill
from ledger.billing.document import canonical_json
from ledger.billing.tariff import Tariff, TariffError, parse_tariff
from ledger.billing.timeline import Assignment
from ledger.errors import LedgerError
from ledger.store.bills import BillStore
from ledger.store.database import Store

PARALLEL_FROM = 200
"""Runs with fewer customers are computed in the calling process (starting workers costs
about a second)."""
_CHUNK = 50


@dataclass(frozen=True)
class RunContext:
    """What every bill of a run shares (plain values: it is sent to worker processes)."""

    period_start: int
    period_end: int
    label: str | None
    chain_id: int
    bill_registry: str
    currency: tuple[str, int]
    slot_s: int
    final_batches: frozenset[int]


@dataclass(frozen=True)
class Computed:
    """A bill to issue: its canonical bytes and what the run records of it."""

    customer: str
    period_start: int
    period_end: int
    document: bytes
    bill_hash: bytes
    total_minor: int
    estimated: bool
    batches: tuple[int, ...]  # the reading batches its readings are in
    replaces: bytes | None


@dataclass(frozen=True)
class Skipped:
    customer: str
    code: str
    message: str


UNCHANGED = "unchanged"
Outcome = Computed | Skipped | str


class UnknownTariff(LedgerError):
    """A tariff not published on chain, or whose text this gateway does not hold."""

    code = "unknown_tariff"
    http_status = 404


class BillComputer:
    """One customer's bill from the store (see the module docstring)."""

    def __init__(self, bills: BillStore, context: RunContext) -> None:
        self._bills = bills
        self._context = context
        self._tariffs: dict[bytes, Tariff] = {}

    def tariff(self, digest: bytes) -> Tariff:
        cached = self._tariffs.get(digest)
        if cached is None:
            text = self._bills.tariff_text(digest)
            if text is None:
                raise UnknownTariff(f"this gateway holds no text for tariff 0x{digest.hex()}")
            cached = self._tariffs[digest] = parse_tariff(text)
        return cached

    def outcome(self, customer: str) -> Outcome:
        context = self._context
        assignments = self._bills.assignments(customer)
        start, end = max(context.period_start, assignments[0][0]), context.period_end
        try:
            tariffs = {digest: self.tariff(digest) for _, digest in assignments}
        except (UnknownTariff, TariffError) as error:
            return Skipped(customer, error.code, str(error))
        current = self._bills.current_bills_overlapping(customer, start, end)
        if any((b.period_start, b.period_end) != (start, end) for b in current):
            return Skipped(
                customer,
                "bill_period_overlaps",
                "a current bill covers part of this period only: correct that bill first",
            )
        previous = current[0] if current else None
        meters = self._bills.meters_of(customer)
        settled, pending = self._trades(meters, start, end)
        inputs = BillInputs(
            chain_id=context.chain_id,
            bill_registry=context.bill_registry,
            customer=customer,
            period_start=start,
            period_end=end,
            period_label=context.label if start == context.period_start else None,
            meters=tuple(meters),
            readings={m: self._readings(m, start, end) for m in meters},
            tariffs=tariffs,
            assignments=tuple(Assignment(digest, valid_from) for valid_from, digest in assignments),
            trades=tuple(settled),
            pending_trades=tuple(pending),
            # Recomputed as the current bill was, to see whether anything changed.
            replaces=None if previous is None else previous.replaces,
            currency=context.currency,
        )
        try:
            document = compute_bill(inputs)
        except LedgerError as error:
            return Skipped(customer, error.code, str(error))
        data = canonical_json(document)
        if previous is not None:
            if keccak256(data) == previous.bill_hash:
                return UNCHANGED
            document["replaces"] = "0x" + previous.bill_hash.hex()
            data = canonical_json(document)
        return Computed(
            customer=customer,
            period_start=start,
            period_end=end,
            document=data,
            bill_hash=keccak256(data),
            total_minor=int(document["total_minor"]),
            estimated=any(line["estimated"] for line in document["lines"]),
            batches=tuple(sorted({int(run[3]) for run in document["reading_batches"]})),
            replaces=None if previous is None else previous.bill_hash,
        )

    def _readings(self, meter: bytes, start: int, end: int) -> MeterReadings:
        columns = self._bills.anchored_readings(meter, start, end, self._context.final_batches)
        return MeterReadings(meter, *columns)

    def _trades(
        self, meters: Sequence[bytes], start: int, end: int
    ) -> tuple[list[SettledTrade], list[int]]:
        settled: list[SettledTrade] = []
        pending: list[int] = []
        for row in self._bills.trades_of_meters(meters, start, end):
            if row.outcome == "settled":
                settled.append(
                    SettledTrade(
                        trade_id=row.trade_id,
                        seller_meter=row.seller_meter,
                        buyer_meter=row.buyer_meter,
                        slot_start=row.delivery_start,
                        slot_end=row.delivery_start + self._context.slot_s,
                        delivered_wh=row.delivered_wh,
                        paid=row.paid,
                    )
                )
            elif row.outcome is None:
                pending.append(row.trade_id)
        return settled, pending


# --- worker processes ---------------------------------------------------------------------------

_worker: BillComputer | None = None


def _start_worker(location: Path | str, context: RunContext) -> None:
    global _worker  # noqa: PLW0603 - one computer per worker process, made once
    # The parent opened the store, so its schema is this release's: no upgrade check here.
    _worker = BillComputer(BillStore(Store(location, upgrade_schema=False)), context)


def _compute_chunk(customers: Sequence[str]) -> list[Outcome]:
    assert _worker is not None, "the worker was not started"
    return [_worker.outcome(customer) for customer in customers]


def compute_outcomes(
    bills: BillStore,
    location: Path | str,
    context: RunContext,
    customers: Sequence[str],
    *,
    workers: int,
    progress: Callable[[Iterable[str]], Iterable[str]] | None = None,
    parallel_from: int = PARALLEL_FROM,
) -> Iterator[Outcome]:
    """Each customer's outcome, in the order given: in this process for a run of fewer than
    `parallel_from` customers or one worker, in `workers` processes otherwise."""
    ticks = progress(customers) if progress is not None else customers
    if workers <= 1 or len(customers) < parallel_from:
        computer = BillComputer(bills, context)
        for customer in ticks:
            yield computer.outcome(customer)
        return
    chunks = [customers[i : i + _CHUNK] for i in range(0, len(customers), _CHUNK)]
    tick = iter(ticks)
    # spawn: the gateway runs threads (anchorer, indexer), which a forked child must not inherit.
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(location, context),
    ) as pool:
        # map() submits every chunk at once, which starts the workers here.
        with _main_module_hidden_from_workers():
            results = pool.map(_compute_chunk, chunks)
        for outcomes in results:
            for outcome in outcomes:
                next(tick, None)
                yield outcome


@contextmanager
def _main_module_hidden_from_workers() -> Iterator[None]:
    """Workers started inside do not import the caller's main module.

    A spawned worker first imports the parent's `__main__` (the `ledger` command, uvicorn, a
    bench) to find functions defined there; the workers here run only this module's functions,
    and that import (web3, the API, ...) took longer than computing a thousand bills. Without a
    `__spec__` or `__file__` on `__main__`, multiprocessing leaves it out of what a worker
    prepares."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    names = ("__spec__", "__file__")
    saved = {name: main.__dict__[name] for name in names if name in main.__dict__}
    main.__dict__["__spec__"] = None
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.update(saved)
