"""Green Button export (ledger/billing/greenbutton.py), validated against the ESPI 3.3 schemas
carried in tests/data/interop/espi."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import xmlschema

from ledger.billing.compute import MeterReadings
from ledger.billing.greenbutton import ATOM, ESPI, espi_amount, usage_feed
from ledger.billing.usage import consumption, interval_bounds
from tests.unit.billing.billing_support import DAY, HOUR, METER, MONDAY, readings

ESPI_DIR = Path(__file__).parents[2] / "data" / "interop" / "espi"
EXAMPLE_BILL = Path(__file__).parents[2] / "data" / "bills" / "example-bill.json"
NS = {"atom": ATOM, "espi": ESPI}


@cache
def schema() -> xmlschema.XMLSchema:
    # allow="local": the schemas' import of the W3C xml.xsd over https is never fetched
    # (xmlschema knows that namespace itself), so the suite runs offline.
    return xmlschema.XMLSchema(str(ESPI_DIR / "usage.xsd"), allow="local")


def feed(*, hours: int = 48, seqs: list[int] | None = None, bill: bool = False) -> bytes:
    points = [(MONDAY + h * HOUR, 100 * h + h * h, 7 * h) for h in range(hours + 1)]
    columns = MeterReadings.of(METER, readings(points, seqs=seqs))
    intervals = consumption(columns, interval_bounds(MONDAY, MONDAY + hours * HOUR, "hour", "UTC"))
    document = json.loads(EXAMPLE_BILL.read_text()) if bill else None
    return usage_feed(
        meter_id=METER,
        meter_name="MTR-0001",
        intervals=intervals,
        time_zone="UTC",
        generated_at=MONDAY + 3 * DAY,
        base_url="http://127.0.0.1:8000/v1/meters/MTR-0001/export.xml",
        bill=document,
        bill_hash=b"\x01" * 32 if bill else None,
    )


def test_a_two_day_usage_feed_validates_against_the_espi_schema() -> None:
    schema().validate(ET.fromstring(feed()))


def test_a_feed_with_a_bill_validates_with_its_usage_summary() -> None:
    root = ET.fromstring(feed(bill=True))
    schema().validate(root)
    assert len(root.findall(".//espi:UsageSummary", NS)) == 1


def test_the_schema_refuses_a_feed_with_a_wrong_element() -> None:
    # The check has teeth: a misspelt element inside an ESPI resource fails validation.
    broken = feed().replace(b"espi:flowDirection>", b"espi:flowDirektion>")
    assert not schema().is_valid(ET.fromstring(broken))


def test_the_feed_has_one_interval_block_per_day_for_import_and_export() -> None:
    root = ET.fromstring(feed(hours=48))
    blocks = root.findall(".//espi:IntervalBlock", NS)
    assert len(blocks) == 4
    assert [len(b.findall("espi:IntervalReading", NS)) for b in blocks] == [24, 24, 24, 24]


def test_interval_values_are_the_hours_wh_import_then_export() -> None:
    root = ET.fromstring(feed(hours=2))
    values = [int(v.text or "") for v in root.findall(".//espi:IntervalReading/espi:value", NS)]
    assert values == [101, 103, 7, 7]


def test_reading_types_say_wh_forward_and_reverse() -> None:
    root = ET.fromstring(feed(hours=1))
    kinds = root.findall(".//espi:ReadingType", NS)
    assert [(k.findtext("espi:uom", namespaces=NS), k.findtext("espi:flowDirection", namespaces=NS))
            for k in kinds] == [("72", "1"), ("72", "19")]  # fmt: skip


def test_an_estimated_hour_carries_the_interpolation_quality() -> None:
    root = ET.fromstring(feed(hours=3, seqs=[1, 2, 5, 6]))
    first_block = root.find(".//espi:IntervalBlock", NS)
    assert first_block is not None
    qualities = [
        [q.text for q in item.findall("espi:ReadingQuality/espi:quality", NS)]
        for item in first_block.findall("espi:IntervalReading", NS)
    ]
    assert qualities == [[], ["9"], []]


def test_the_same_inputs_give_the_same_bytes() -> None:
    assert feed(bill=True) == feed(bill=True)


def test_a_six_decimal_amount_is_rounded_half_even_to_hundred_thousandths() -> None:
    assert [espi_amount(x, 6) for x in (1644270, 15, 25, -15)] == [164427, 2, 2, -2]


def test_a_two_decimal_amount_is_converted_exactly() -> None:
    assert espi_amount(1234, 2) == 1234000


def test_a_feed_needs_an_interval() -> None:
    with pytest.raises(ValueError):
        usage_feed(
            meter_id=METER,
            meter_name="MTR-0001",
            intervals=[],
            time_zone="UTC",
            generated_at=MONDAY,
            base_url="http://x/",
        )
