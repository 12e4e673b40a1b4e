"""Green Button usage data: one meter's consumption as an ESPI 3.3 (NAESB REQ.21) Atom feed.

`usage_feed` is a pure function of the meter's intervals (`usage.consumption`) and, optionally,
the bill of the period; the same inputs give the same bytes (entry ids are name-based UUIDs,
times come from the caller). The feed (docs/usage.md, "Green Button"):

- `UsagePoint` (electricity) -> two `MeterReading`s: grid import (`flowDirection` 1, forward)
  and export (19, reverse), each with its `ReadingType` (Wh: `uom` 72, `powerOfTenMultiplier`
  0, `accumulationBehaviour` 4, delta data per interval) and one `IntervalBlock` per local day
  holding an `IntervalReading` per interval. An estimated interval carries a `ReadingQuality`
  per rule: 9 (linear interpolation) for `gap_pro_rata_by_seconds`, 8 (machine computed from
  other data) for `average_rate` and `no_readings`.
- With a bill: a `UsageSummary` of the bill's period, amounts in hundred-thousandths of the
  currency (ESPI's unit; a bill's minor units converted exactly when it has at most 5 decimals,
  rounded half to even otherwise), one `LineItem` per bill line, and this meter's import Wh as
  `overallConsumptionLastPeriod`. `billLastPeriod` is the bill's amount due, for all the
  customer's meters.

Links: every entry has `self` and `up` links, and the resources chain by `related` links
(UsagePoint -> MeterReading, UsageSummary; MeterReading -> ReadingType, IntervalBlock). They
are names under the export's URL, not routes the gateway serves.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from xml.etree import ElementTree as ET

from ledger.billing.compute import round_minor
from ledger.billing.usage import Interval, interval_bounds

ATOM = "http://www.w3.org/2005/Atom"
ESPI = "http://naesb.org/espi"
# Prefixes of the output (ElementTree keeps them process-wide: these are the usual ones).
ET.register_namespace("atom", ATOM)
ET.register_namespace("espi", ESPI)

FORWARD, REVERSE = 1, 19
"""`flowDirection`: delivered to the customer (grid import) and received from it (export)."""
_QUALITY = {"gap_pro_rata_by_seconds": 9, "average_rate": 8, "no_readings": 8}
_MIXED_QUALITY, _VALID_QUALITY = 13, 0
_ISO_4217 = {
    "USD": 840, "EUR": 978, "AUD": 36, "CAD": 124, "CHF": 756, "CNY": 156, "DKK": 208,
    "GBP": 826, "JPY": 392, "NOK": 578, "RUB": 643, "SEK": 752, "INR": 356,
}  # fmt: skip
"""The currencies ESPI's `Currency` enumerates; a bill in another one has no `currency`."""
_ITEM_KIND = {
    "grid_import": 3,  # energy usage fee
    "feed_in": 6,  # energy generation credit
    "p2p_purchase": 3,
    "p2p_sale": 6,
    "fixed_daily": 2,  # energy delivery fee (standing charge)
}
ESPI_UNIT_DECIMALS = 5
"""ESPI amounts are in hundred-thousandths of the currency."""
WH = 72


def usage_feed(
    *,
    meter_id: bytes,
    meter_name: str,
    intervals: Sequence[Interval],
    time_zone: str,
    generated_at: int,
    base_url: str,
    bill: Mapping[str, Any] | None = None,
    bill_hash: bytes | None = None,
) -> bytes:
    """The Atom feed (UTF-8 XML bytes with declaration) of the meter's `intervals`.

    Args:
        meter_id: the meter's 32-byte id; `meter_name` how it is shown (its serial).
        intervals: consecutive intervals of the period, e.g. one per local hour.
        time_zone: the zone whose local days cut the IntervalBlocks.
        generated_at: Unix seconds stamped as the feed's `updated` time.
        base_url: the export's URL; links and ids are names under it.
        bill: a bill document (docs/bills.md) of the same period, for the UsageSummary;
            `bill_hash` its hash.
    """
    if not intervals:
        raise ValueError("a usage feed needs at least one interval")
    meter_hex = "0x" + meter_id.hex()
    base = base_url.rstrip("/")
    stamp = _atom_time(generated_at)
    usage_point = f"{base}/UsagePoint/1"

    def entry_id(path: str) -> str:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"{path}?meter={meter_hex}").urn

    feed = ET.Element(f"{{{ATOM}}}feed")
    ET.SubElement(feed, f"{{{ATOM}}}id").text = entry_id(base)
    ET.SubElement(feed, f"{{{ATOM}}}title").text = f"Green Button usage of meter {meter_name}"
    ET.SubElement(feed, f"{{{ATOM}}}updated").text = stamp
    _link(feed, "self", base, "espi-feed/UsagePoint")

    def entry(
        path: str, up: str, kind: str, title: str, related: Sequence[tuple[str, str]] = ()
    ) -> ET.Element:
        node = ET.SubElement(feed, f"{{{ATOM}}}entry")
        ET.SubElement(node, f"{{{ATOM}}}id").text = entry_id(path)
        _link(node, "self", path, f"espi-entry/{kind}")
        _link(node, "up", up, f"espi-feed/{kind}")
        for href, related_kind in related:
            _link(node, "related", href, f"espi-feed/{related_kind}")
        ET.SubElement(node, f"{{{ATOM}}}published").text = stamp
        ET.SubElement(node, f"{{{ATOM}}}title").text = title
        ET.SubElement(node, f"{{{ATOM}}}updated").text = stamp
        content = ET.SubElement(node, f"{{{ATOM}}}content")
        return ET.SubElement(content, f"{{{ESPI}}}{kind}")

    related = [(f"{usage_point}/MeterReading", "MeterReading")]
    if bill is not None:
        related.append((f"{usage_point}/UsageSummary", "UsageSummary"))
    point = entry(usage_point, f"{base}/UsagePoint", "UsagePoint", f"Meter {meter_name}", related)
    category = ET.SubElement(point, _espi("ServiceCategory"))
    _add(category, "kind", 0)  # electricity

    days = interval_bounds(intervals[0].start, intervals[-1].end, "day", time_zone)
    lengths = {i.end - i.start for i in intervals}
    for number, (direction, name) in enumerate(
        ((FORWARD, "grid import"), (REVERSE, "export")), start=1
    ):
        reading = f"{usage_point}/MeterReading/{number}"
        reading_type = f"{base}/ReadingType/{number}"
        entry(
            reading,
            f"{usage_point}/MeterReading",
            "MeterReading",
            f"{name.capitalize()}, Wh per interval",
            [(reading_type, "ReadingType"), (f"{reading}/IntervalBlock", "IntervalBlock")],
        )
        kind = entry(reading_type, f"{base}/ReadingType", "ReadingType", f"Wh, {name}")
        _add(kind, "accumulationBehaviour", 4)  # delta data: Wh in the interval
        _add(kind, "commodity", 1)  # electricity, secondary metered
        _add(kind, "dataQualifier", 12)  # normal
        _add(kind, "flowDirection", direction)
        if len(lengths) == 1:
            _add(kind, "intervalLength", next(iter(lengths)))
        _add(kind, "kind", 12)  # energy
        _add(kind, "powerOfTenMultiplier", 0)
        _add(kind, "uom", WH)
        for day_number, (day_start, day_end) in enumerate(zip(days, days[1:], strict=False), 1):
            in_day = [i for i in intervals if day_start <= i.start < day_end]
            if not in_day:
                continue
            block = entry(
                f"{reading}/IntervalBlock/{day_number}",
                f"{reading}/IntervalBlock",
                "IntervalBlock",
                f"{name.capitalize()} from {_atom_time(in_day[0].start)}",
            )
            _period(block, "interval", in_day[0].start, in_day[-1].end)
            for interval in in_day:
                value = interval.import_wh if direction == FORWARD else interval.export_wh
                item = ET.SubElement(block, _espi("IntervalReading"))
                for rule in interval.estimate_rules:
                    _add(ET.SubElement(item, _espi("ReadingQuality")), "quality", _QUALITY[rule])
                _period(item, "timePeriod", interval.start, interval.end)
                _add(item, "value", value)

    if bill is not None:
        summary_path = f"{usage_point}/UsageSummary/1"
        hash_text = "" if bill_hash is None else f" 0x{bill_hash.hex()}"
        summary = entry(
            summary_path, f"{usage_point}/UsageSummary", "UsageSummary", f"Bill{hash_text}"
        )
        _usage_summary(summary, bill, intervals, generated_at)

    body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return body


def _usage_summary(
    summary: ET.Element, bill: Mapping[str, Any], intervals: Sequence[Interval], now: int
) -> None:
    period = bill["period"]
    decimals = int(bill["currency"]["decimals"])
    _period(summary, "billingPeriod", int(period["start"]), int(period["end"]))
    _add(summary, "billLastPeriod", espi_amount(int(bill["amount_due_minor"]), decimals))
    for line in bill["lines"]:
        item = ET.SubElement(summary, _espi("costAdditionalDetailLastPeriod"))
        _add(item, "amount", espi_amount(int(line["amount_minor"]), decimals))
        _add(item, "note", _note(line)[:256])
        if line["unit"] == "Wh":
            measurement = ET.SubElement(item, _espi("measurement"))
            _add(measurement, "powerOfTenMultiplier", 0)
            _add(measurement, "uom", WH)
            _add(measurement, "value", int(line["quantity"]))
        _add(item, "itemKind", _ITEM_KIND[line["kind"]])
        _period(item, "itemPeriod", int(period["start"]), int(period["end"]))
    code = _ISO_4217.get(str(bill["currency"]["code"]))
    if code is not None:
        _add(summary, "currency", code)
    overall = ET.SubElement(summary, _espi("overallConsumptionLastPeriod"))
    _add(overall, "powerOfTenMultiplier", 0)
    _add(overall, "timeStamp", now)
    _add(overall, "uom", WH)
    _add(overall, "value", sum(i.import_wh for i in intervals))
    estimated = any(line["estimated"] for line in bill["lines"])
    _add(summary, "qualityOfReading", _MIXED_QUALITY if estimated else _VALID_QUALITY)
    _add(summary, "statusTimeStamp", now)
    _add(summary, "commodity", 1)
    profile = ""
    for tariff in bill["tariffs"]:
        candidate = f"{profile} {tariff}".strip()
        if len(candidate) > 256:
            break
        profile = candidate
    if profile:
        _add(summary, "tariffProfile", profile)


def espi_amount(amount_minor: int, decimals: int) -> int:
    """`amount_minor` (10^-decimals of the currency) in ESPI's hundred-thousandths: exact for
    up to 5 decimals, rounded half to even beyond."""
    if decimals <= ESPI_UNIT_DECIMALS:
        return amount_minor * int(10 ** (ESPI_UNIT_DECIMALS - decimals))
    return round_minor(amount_minor, 10 ** (decimals - ESPI_UNIT_DECIMALS), "half_even")


def _note(line: Mapping[str, Any]) -> str:
    parts = [str(line["kind"])]
    if line.get("band"):
        parts.append(str(line["band"]))
    if line.get("unit_price_minor") is not None:
        parts.append(f"{line['unit_price_minor']} minor units per {line['price_per']}")
    if line.get("estimated"):
        parts.append(f"estimated ({line['estimate_rule']})")
    return ", ".join(parts)


def _espi(tag: str) -> str:
    return f"{{{ESPI}}}{tag}"


def _add(parent: ET.Element, tag: str, value: int | str) -> ET.Element:
    child = ET.SubElement(parent, _espi(tag))
    child.text = str(value)
    return child


def _period(parent: ET.Element, tag: str, start: int, end: int) -> None:
    """A DateTimeInterval: `duration` (seconds) then `start` (Unix seconds), ESPI's order."""
    interval = ET.SubElement(parent, _espi(tag))
    _add(interval, "duration", end - start)
    _add(interval, "start", start)


def _link(parent: ET.Element, rel: str, href: str, kind: str) -> None:
    ET.SubElement(parent, f"{{{ATOM}}}link", {"href": href, "rel": rel, "type": kind})


def _atom_time(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
