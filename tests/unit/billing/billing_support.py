"""Builders for the billing core's tests: tariff texts, readings, inputs, and line lookups."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ledger.billing.compute import BillInputs, BillReading, SettledTrade, compute_bill
from ledger.billing.tariff import Tariff, parse_tariff
from ledger.billing.timeline import Assignment

METER = bytes.fromhex("aa" * 32)
OTHER_METER = bytes.fromhex("bb" * 32)
NEIGHBOUR = bytes.fromhex("cc" * 32)
CUSTOMER = "0x" + "22" * 20
REGISTRY = "0x" + "11" * 20
HOUR = 3600
DAY = 24 * HOUR

# Monday 2 November 2026, 00:00 UTC: a week of weekdays follows (Sat 7, Sun 8).
MONDAY = int(dt.datetime(2026, 11, 2, tzinfo=dt.UTC).timestamp())

# A UTC tariff: weekdays valley 0-6, flat 6-18, peak 18-22, valley 22-24; weekends valley.
WEEKDAY = ["valley"] * 6 + ["flat"] * 12 + ["peak"] * 4 + ["valley"] * 2
WEEKEND = ["valley"] * 24
PRICES = {"peak": 400000, "flat": 300000, "valley": 200000}


def tariff_text(
    *,
    prices: Mapping[str, Any] | None = None,
    weekday: Sequence[Any] | None = None,
    weekend: Sequence[Any] | None = None,
    time_zone: str = "UTC",
    rounding: str = "half_even",
    fixed_daily_minor: Any = 100000,
    feed_in_minor_per_kwh: Any = 50000,
    holidays: Sequence[str] = (),
    currency: str = "ELC",
    decimals: Any = 6,
    name: str = "test tariff",
    extra: str = "",
) -> str:
    """A tariff file with one season (all months) unless `extra` adds more lines."""

    def toml(value: Any) -> str:
        if isinstance(value, str):
            return f'"{value}"'
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list | tuple):
            return "[" + ", ".join(toml(v) for v in value) + "]"
        return str(value)

    lines = [
        'format = "energy-ledger/tariff/v1"',
        f"name = {toml(name)}",
        f"currency = {toml(currency)}",
        f"decimals = {toml(decimals)}",
        f"time_zone = {toml(time_zone)}",
        f"rounding = {toml(rounding)}",
        f"fixed_daily_minor = {toml(fixed_daily_minor)}",
        f"feed_in_minor_per_kwh = {toml(feed_in_minor_per_kwh)}",
        f"holidays = {toml(list(holidays))}",
        extra,
        "[prices_minor_per_kwh]",
        *(f"{band} = {toml(price)}" for band, price in (prices or PRICES).items()),
        "[[seasons]]",
        'name = "all year"',
        "months = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]",
        f"weekday = {toml(list(weekday or WEEKDAY))}",
        f"weekend = {toml(list(weekend or WEEKEND))}",
    ]
    return "\n".join(lines) + "\n"


def make_tariff(**kwargs: Any) -> Tariff:
    return parse_tariff(tariff_text(**kwargs).encode())


def readings(
    points: Iterable[tuple[int, int] | tuple[int, int, int]],
    *,
    meter: bytes = METER,
    first_seq: int = 1,
    seqs: Sequence[int] | None = None,
    batch_id: int = 1,
) -> list[BillReading]:
    """Readings from (timestamp, import_wh[, export_wh]) points, seqs consecutive by default."""
    made = []
    for index, point in enumerate(points):
        timestamp, import_wh = point[0], point[1]
        export_wh = point[2] if len(point) == 3 else 0
        seq = seqs[index] if seqs is not None else first_seq + index
        made.append(BillReading(meter, seq, timestamp, import_wh, export_wh, batch_id))
    return made


def inputs(
    start: int,
    end: int,
    by_meter: Mapping[bytes, Sequence[BillReading]],
    *,
    tariffs: Sequence[Tariff] | None = None,
    assignments: Sequence[Assignment] | None = None,
    trades: Sequence[SettledTrade] = (),
    pending: Sequence[int] = (),
    currency: tuple[str, int] = ("ELC", 6),
    label: str | None = None,
) -> BillInputs:
    """Inputs for CUSTOMER's meters (the keys of `by_meter`), one tariff from before the period
    unless `tariffs`/`assignments` say otherwise."""
    tariffs = list(tariffs) if tariffs is not None else [make_tariff()]
    if assignments is None:
        assignments = [Assignment(tariffs[0].hash, start - DAY)]
    return BillInputs(
        chain_id=1337,
        bill_registry=REGISTRY,
        customer=CUSTOMER,
        period_start=start,
        period_end=end,
        period_label=label,
        meters=tuple(by_meter),
        readings=dict(by_meter),
        tariffs={t.hash: t for t in tariffs},
        assignments=list(assignments),
        trades=list(trades),
        pending_trades=list(pending),
        replaces=None,
        currency=currency,
    )


def bill(start: int, end: int, points: Iterable[Any], **kwargs: Any) -> dict[str, Any]:
    """The bill of METER alone for readings at `points`."""
    return compute_bill(inputs(start, end, {METER: readings(points)}, **kwargs))


def quantities(
    document: Mapping[str, Any], kind: str = "grid_import", *, estimated: bool | None = None
) -> dict[str, int]:
    """Wh per band of the lines of `kind` (estimated or not, or both when None)."""
    found: dict[str, int] = {}
    for line in document["lines"]:
        if line["kind"] != kind or (estimated is not None and line["estimated"] != estimated):
            continue
        found[line["band"]] = found.get(line["band"], 0) + line["quantity"]
    return found


def lines_of(document: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    return [line for line in document["lines"] if line["kind"] == kind]


def hex32(value: bytes) -> str:
    return "0x" + value.hex()
