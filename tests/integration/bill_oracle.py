"""A second implementation of the bill computation, written from docs/bills.md alone.

Nothing here comes from `ledger.billing` (nor from the rest of `ledger`): the tariff is read
with `tomllib`, band hours with `zoneinfo`, and every rule (segments, the split rule, estimates,
netting, rounding, line order, the document) is this file's own reading of the page. Tests use it
as an oracle: a bill the gateway issued must equal `recompute_bill` over the raw inputs, line by
line (`describe_differences` names each field that differs).

It is written to be obviously right rather than fast: it walks the period in 900-second pieces
and every interval part by part, which is quick enough for a month of 15-minute readings.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

GRID = 900
BAND_ORDER = ("peak", "flat", "valley")
KIND_ORDER = ("grid_import", "feed_in", "p2p_purchase", "p2p_sale", "fixed_daily")
MEASURED = None  # a line's estimate rule: None for measured energy
GAP = "gap_pro_rata_by_seconds"
AVERAGE = "average_rate"
NO_READINGS = "no_readings"
SOURCE_ORDER = (MEASURED, GAP, AVERAGE)  # the order netting takes energy from a band's lines


@dataclass(frozen=True)
class OracleReading:
    meter: bytes
    seq: int
    timestamp: int
    import_wh: int
    export_wh: int
    batch_id: int


@dataclass(frozen=True)
class OracleTrade:
    trade_id: int
    seller_meter: bytes
    buyer_meter: bytes
    slot_start: int
    slot_end: int
    delivered_wh: int
    paid: int


class OracleTariff:
    """A tariff file as the page describes it (only what a bill needs; no validation)."""

    def __init__(self, text: bytes) -> None:
        self.hash = keccak(text)
        data = tomllib.loads(text.decode("utf-8"))
        self.zone = ZoneInfo(data["time_zone"])
        self.rounding: str = data["rounding"]
        self.fixed_daily: int = data["fixed_daily_minor"]
        self.feed_in: int = data["feed_in_minor_per_kwh"]
        self.prices: dict[str, int] = dict(data["prices_minor_per_kwh"])
        self.holidays = {
            day if isinstance(day, dt.date) else dt.date.fromisoformat(day)
            for day in data["holidays"]
        }
        self.season_of: dict[int, dict[str, list[str]]] = {}
        for season in data["seasons"]:
            for month in season["months"]:
                self.season_of[month] = {"weekday": season["weekday"], "weekend": season["weekend"]}

    def band_at(self, moment: int) -> str:
        local = dt.datetime.fromtimestamp(moment, self.zone)
        weekend = local.weekday() >= 5 or local.date() in self.holidays
        return self.season_of[local.month]["weekend" if weekend else "weekday"][local.hour]

    def local_date(self, moment: int) -> dt.date:
        return dt.datetime.fromtimestamp(moment, self.zone).date()


def round_amount(numerator: int, rule: str) -> int:
    """round(numerator / 1000) by the rule, symmetric around zero (docs: Amounts)."""
    magnitude = abs(numerator)
    q, r = divmod(magnitude, 1000)
    if rule == "half_up" and 2 * r >= 1000:
        q += 1
    elif rule == "half_even" and (2 * r > 1000 or (2 * r == 1000 and q % 2 == 1)):
        q += 1
    elif rule not in {"half_up", "half_even", "down"}:
        raise ValueError(f"unknown rounding {rule}")
    return -q if numerator < 0 else q


def split_parts(t0: int, t1: int, energy: int, cuts: Sequence[int]) -> list[tuple[int, int, int]]:
    """(part start, part end, Wh) of an interval cut at `cuts` (strictly inside, ascending)."""
    total = t1 - t0
    parts = []
    previous_floor = 0
    edges = [*cuts, t1]
    begin = t0
    for edge in edges:
        s_k = edge - t0
        floor_k = energy * s_k // total
        parts.append((begin, edge, floor_k - previous_floor))
        previous_floor, begin = floor_k, edge
    return parts


def _hex(raw: bytes) -> str:
    return "0x" + raw.hex()


def _runs(seqs: set[int]) -> list[list[int]]:
    """[first, last] runs of consecutive seqs, ascending."""
    runs: list[list[int]] = []
    for seq in sorted(seqs):
        if runs and runs[-1][1] + 1 == seq:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    return runs


@dataclass
class _Line:
    meter: bytes
    tariff: bytes
    band: str
    source: str | None
    import_wh: int = 0
    export_wh: int = 0
    seqs: set[int] = field(default_factory=set)
    import_trades: set[int] = field(default_factory=set)
    export_trades: set[int] = field(default_factory=set)
    import_left: int = 0
    export_left: int = 0


class _Timeline:
    def __init__(
        self,
        start: int,
        end: int,
        assignments: Sequence[tuple[int, bytes]],
        tariffs: Mapping[bytes, OracleTariff],
    ) -> None:
        self.start, self.end = start, end
        self.assignments = sorted(assignments)
        self.tariffs = tariffs
        cuts = {start, end}
        cuts.update(range(-(-start // GRID) * GRID, end, GRID))
        cuts.update(v for v, _ in self.assignments if start < v < end)
        points = sorted(c for c in cuts if start <= c <= end)
        segments: list[list[Any]] = []
        for a, b in zip(points, points[1:], strict=False):
            tariff = self.tariff_at(a)
            band = tariffs[tariff].band_at(a)
            if segments and segments[-1][2] == tariff and segments[-1][3] == band:
                segments[-1][1] = b
            else:
                segments.append([a, b, tariff, band])
        self.segments = [tuple(s) for s in segments]
        self.starts = [s[0] for s in self.segments]
        self.boundaries = self.starts[1:]  # boundaries strictly inside the period

    def tariff_at(self, moment: int) -> bytes:
        in_force = [h for v, h in self.assignments if v <= moment]
        if not in_force:
            raise ValueError(f"no tariff in force at {moment}")
        return in_force[-1]

    def segment_at(self, moment: int) -> tuple[Any, ...]:
        return self.segments[bisect_right(self.starts, moment) - 1]

    def cuts_inside(self, t0: int, t1: int) -> list[int]:
        inside = [c for c in (self.start, self.end) if t0 < c < t1]
        low, high = bisect_right(self.boundaries, t0), bisect_right(self.boundaries, t1 - 1)
        inside.extend(self.boundaries[low:high])
        return sorted(set(inside))

    def split(self, t0: int, t1: int, energy: int) -> list[tuple[tuple[Any, ...], int]]:
        """(segment, Wh) of each part of the interval inside the period, in time order."""
        if t1 == t0:
            if self.start <= t0 < self.end:
                return [(self.segment_at(t0), energy)]
            return []
        return [
            (self.segment_at(a), wh)
            for a, b, wh in split_parts(t0, t1, energy, self.cuts_inside(t0, t1))
            if a >= self.start and b <= self.end
        ]

    def bands_with_time(self, tariff: bytes) -> set[str]:
        return {s[3] for s in self.segments if s[2] == tariff}


def _used_readings(readings: Sequence[OracleReading], start: int, end: int) -> list[OracleReading]:
    if not readings:
        return []
    first = next((i for i, r in enumerate(readings) if r.timestamp == start), None)
    if first is None:
        before = [i for i, r in enumerate(readings) if r.timestamp < start]
        first = before[-1] if before else 0
    last = next((i for i, r in enumerate(readings) if r.timestamp >= end), len(readings) - 1)
    return list(readings[first : last + 1])


def recompute_bill(
    *,
    chain_id: int,
    bill_registry: str,
    customer: str,
    period_start: int,
    period_end: int,
    label: str | None,
    meters: Sequence[bytes],
    readings: Mapping[bytes, Sequence[OracleReading]],
    tariff_texts: Mapping[bytes, bytes],
    assignments: Sequence[tuple[int, bytes]],
    trades: Sequence[OracleTrade],
    pending_trades: Sequence[int],
    currency: tuple[str, int],
    replaces: bytes | None = None,
    before_netting: dict[tuple[bytes, str, str, str | None], tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """The bill document docs/bills.md defines for these inputs (each meter's readings: its
    anchored readings sorted by seq; assignments: (valid_from, tariff hash)).

    `before_netting`, when given, receives the (import, export) Wh of each energy line before
    the trades were netted out, by (meter, tariff hash 0x.., band, estimate rule)."""
    tariffs = {h: OracleTariff(text) for h, text in tariff_texts.items()}
    timeline = _Timeline(period_start, period_end, assignments, tariffs)
    start, end = period_start, period_end
    lines: dict[tuple[bytes, bytes, str, str | None], _Line] = {}
    no_reading_lines: list[dict[str, Any]] = []
    batch_of: dict[tuple[bytes, int], int] = {}
    cited: set[tuple[bytes, int]] = set()

    def line(meter: bytes, segment: tuple[Any, ...], source: str | None) -> _Line:
        key = (meter, segment[2], segment[3], source)
        if key not in lines:
            lines[key] = _Line(meter, segment[2], segment[3], source)
        return lines[key]

    for meter in sorted(meters):
        used = _used_readings(readings.get(meter, ()), start, end)
        for r in readings.get(meter, ()):
            batch_of[(meter, r.seq)] = r.batch_id
        intervals = [
            (r0, r1)
            for r0, r1 in zip(used, used[1:], strict=False)
            if (r0.timestamp < r1.timestamp and r0.timestamp < end and r1.timestamp > start)
            or (r0.timestamp == r1.timestamp and start <= r0.timestamp < end)
        ]
        positive = [(r0, r1) for r0, r1 in intervals if r0.timestamp < r1.timestamp]
        if not positive:
            if used and any(r0.timestamp == r1.timestamp for r0, r1 in intervals):
                evidence = {(meter, r.seq) for r in used}
            elif not readings.get(meter):
                evidence = set()
            else:
                all_readings = readings[meter]
                before_end = [r for r in all_readings if r.timestamp < end]
                nearest = before_end[-1] if before_end else all_readings[0]
                evidence = {(meter, nearest.seq)}
            cited |= evidence
            no_reading_lines.append(
                {
                    "kind": "grid_import",
                    "band": None,
                    "tariff": None,
                    "quantity": 0,
                    "unit": "Wh",
                    "unit_price_minor": None,
                    "price_per": None,
                    "amount_minor": 0,
                    "estimated": True,
                    "estimate_rule": NO_READINGS,
                    "evidence": {
                        "readings": [
                            [_hex(meter), a, b] for a, b in _runs({s for _, s in evidence})
                        ],
                        "trades": [],
                    },
                    "_meter": meter,
                }
            )
            continue
        total_import = total_export = 0
        for r0, r1 in intervals:
            source = GAP if r1.seq > r0.seq + 1 else MEASURED
            imports = timeline.split(r0.timestamp, r1.timestamp, r1.import_wh - r0.import_wh)
            exports = timeline.split(r0.timestamp, r1.timestamp, r1.export_wh - r0.export_wh)
            for (segment, imported), (_, exported) in zip(imports, exports, strict=True):
                target = line(meter, segment, source)
                target.import_wh += imported
                target.export_wh += exported
                target.seqs |= {r0.seq, r1.seq}
                total_import += imported
                total_export += exported
        first, last = used[0].timestamp, used[-1].timestamp
        spans = []
        if first > start:
            spans.append((start, first))
        if last < end:
            spans.append((last, end))
        covered = min(last, end) - max(first, start)
        for span_start, span_end in spans:
            missing = span_end - span_start
            imports = timeline.split(span_start, span_end, total_import * missing // covered)
            exports = timeline.split(span_start, span_end, total_export * missing // covered)
            for (segment, imported), (_, exported) in zip(imports, exports, strict=True):
                target = line(meter, segment, AVERAGE)
                target.import_wh += imported
                target.export_wh += exported
                target.seqs |= {r.seq for r in used}

    for item in lines.values():
        item.import_left, item.export_left = item.import_wh, item.export_wh
        if before_netting is not None:
            key = (item.meter, _hex(item.tariff), item.band, item.source)
            before_netting[key] = (item.import_wh, item.export_wh)
        cited |= {(item.meter, s) for s in item.seqs}

    p2p_lines: list[dict[str, Any]] = []
    own = set(meters)
    for trade in sorted(trades, key=lambda t: t.trade_id):
        for side, meter in (("import", trade.buyer_meter), ("export", trade.seller_meter)):
            if meter not in own:
                continue
            _net(lines, timeline, trade, meter, side)
            purchase = side == "import"
            p2p_lines.append(
                {
                    "kind": "p2p_purchase" if purchase else "p2p_sale",
                    "band": None,
                    "tariff": None,
                    "quantity": trade.delivered_wh,
                    "unit": "Wh",
                    "unit_price_minor": None,
                    "price_per": None,
                    "amount_minor": trade.paid if purchase else -trade.paid,
                    "estimated": False,
                    "estimate_rule": None,
                    "evidence": {"readings": [], "trades": [trade.trade_id]},
                    "_meter": meter,
                    "_trade": trade.trade_id,
                }
            )

    documents: list[dict[str, Any]] = []
    without_p2p = 0
    for item in lines.values():
        tariff = tariffs[item.tariff]
        for kind, before, after, trades_netted, price in (
            ("grid_import", item.import_wh, item.import_left, item.import_trades,
             tariff.prices[item.band]),
            ("feed_in", item.export_wh, item.export_left, item.export_trades, -tariff.feed_in),
        ):  # fmt: skip
            if kind == "feed_in" and before == 0:
                continue
            without_p2p += round_amount(before * price, tariff.rounding)
            documents.append(
                {
                    "kind": kind,
                    "band": item.band,
                    "tariff": _hex(item.tariff),
                    "quantity": after,
                    "unit": "Wh",
                    "unit_price_minor": price,
                    "price_per": "kWh",
                    "amount_minor": round_amount(after * price, tariff.rounding),
                    "estimated": item.source is not None,
                    "estimate_rule": item.source,
                    "evidence": {
                        "readings": [[_hex(item.meter), a, b] for a, b in _runs(item.seqs)],
                        "trades": sorted(trades_netted),
                    },
                    "_meter": item.meter,
                }
            )
    fixed: list[dict[str, Any]] = []
    for digest, days in _day_starts(timeline, tariffs).items():
        amount = days * tariffs[digest].fixed_daily
        without_p2p += amount
        fixed.append(
            {
                "kind": "fixed_daily",
                "band": None,
                "tariff": _hex(digest),
                "quantity": days,
                "unit": "day",
                "unit_price_minor": tariffs[digest].fixed_daily,
                "price_per": "day",
                "amount_minor": amount,
                "estimated": False,
                "estimate_rule": None,
                "evidence": {"readings": [], "trades": []},
                "_meter": b"",
            }
        )
    all_lines = documents + no_reading_lines + p2p_lines + fixed
    all_lines.sort(key=_line_order)
    for entry in all_lines:
        entry.pop("_meter")
        entry.pop("_trade", None)
    total = sum(entry["amount_minor"] for entry in all_lines)
    p2p_total = sum(e["amount_minor"] for e in all_lines if e["kind"] in KIND_ORDER[2:4])
    batches: list[list[Any]] = []
    for meter in sorted({m for m, _ in cited}):
        seqs = sorted(s for m, s in cited if m == meter)
        for seq in seqs:
            batch = batch_of[(meter, seq)]
            if (
                batches
                and batches[-1][0] == _hex(meter)
                and batches[-1][2] + 1 == seq
                and (batches[-1][3] == batch)
            ):
                batches[-1][2] = seq
            else:
                batches.append([_hex(meter), seq, seq, batch])
    return {
        "format": "energy-ledger/bill/v1",
        "chain_id": chain_id,
        "bill_registry": to_checksum_address(bill_registry),
        "customer": to_checksum_address(customer),
        "period": {"start": start, "end": end, "label": label},
        "currency": {"code": currency[0], "decimals": currency[1]},
        "tariffs": sorted({_hex(s[2]) for s in timeline.segments}),
        "meters": sorted(_hex(m) for m in meters),
        "reading_batches": batches,
        "lines": all_lines,
        "total_minor": total,
        "p2p_settled_minor": p2p_total,
        "amount_due_minor": total - p2p_total,
        "without_p2p_total_minor": without_p2p,
        "pending_trades": sorted(set(pending_trades)),
        "replaces": None if replaces is None else _hex(replaces),
    }


def _net(
    lines: Mapping[tuple[bytes, bytes, str, str | None], _Line],
    timeline: _Timeline,
    trade: OracleTrade,
    meter: bytes,
    side: str,
) -> None:
    """Removes the trade's delivered Wh from the meter's import (buyer) or export (seller)."""
    slot_end = min(trade.slot_end, timeline.end)
    if slot_end <= trade.slot_start:
        shares = [(timeline.segment_at(trade.slot_start), trade.delivered_wh)]
    else:
        shares = timeline.split(trade.slot_start, slot_end, trade.delivered_wh)
    for segment, share in shares:
        tariff, band = segment[2], segment[3]
        others = [b for b in BAND_ORDER if b != band and b in timeline.bands_with_time(tariff)]
        for each_band in (band, *others):
            for source in SOURCE_ORDER:
                item = lines.get((meter, tariff, each_band, source))
                if item is None or share == 0:
                    continue
                left = item.import_left if side == "import" else item.export_left
                taken = min(share, max(left, 0))
                if taken > 0:
                    if side == "import":
                        item.import_left -= taken
                        item.import_trades.add(trade.trade_id)
                    else:
                        item.export_left -= taken
                        item.export_trades.add(trade.trade_id)
                    share -= taken


def _day_starts(timeline: _Timeline, tariffs: Mapping[bytes, OracleTariff]) -> dict[bytes, int]:
    """Local days per tariff whose day start lies in the period (docs: Local days)."""
    counts: dict[bytes, int] = defaultdict(int)
    first = -(-timeline.start // GRID) * GRID
    seen: dict[bytes, dt.date] = {}
    for moment in range(first, timeline.end, GRID):
        tariff = timeline.tariff_at(moment)
        zone = tariffs[tariff]
        if tariff not in seen:
            seen[tariff] = zone.local_date(moment - GRID)
        today = zone.local_date(moment)
        if today > seen[tariff]:
            counts[tariff] += 1
            seen[tariff] = today
    return dict(counts)


def _line_order(item: dict[str, Any]) -> tuple[Any, ...]:
    band_rank = {b: i for i, b in enumerate(BAND_ORDER)}
    return (
        KIND_ORDER.index(item["kind"]),
        "" if item["tariff"] is None else "1" + item["tariff"],
        band_rank.get(item["band"], len(BAND_ORDER)),
        item["estimated"],
        "" if item["estimate_rule"] is None else "1" + item["estimate_rule"],
        item.get("_trade", 0),
        item["_meter"].hex(),
    )


def describe_differences(issued: Mapping[str, Any], recomputed: Mapping[str, Any]) -> list[str]:
    """Every field that differs, line by line: empty when the documents are equal."""
    differences = []
    for key in sorted(set(issued) | set(recomputed)):
        if key != "lines" and issued.get(key) != recomputed.get(key):
            differences.append(
                f"{key}: issued {issued.get(key)!r}, recomputed {recomputed.get(key)!r}"
            )
    ours, theirs = list(issued.get("lines", [])), list(recomputed.get("lines", []))
    if len(ours) != len(theirs):
        differences.append(f"line count: issued {len(ours)}, recomputed {len(theirs)}")
    for index, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                differences.append(
                    f"line {index} ({a.get('kind')} {a.get('band')} {a.get('estimate_rule')}) "
                    f"{key}: issued {a.get(key)!r}, recomputed {b.get(key)!r}"
                )
    return differences
