"""Consumption and exports over HTTP on a simulated month (api/routes/usage.py, docs/usage.md).

Two households metered for October 2026 in Europe/Berlin and billed, on a real chain and
gateway (`ledger.sim.month.simulated_month`); the owner signs in with its key.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import httpx
import pytest
import xmlschema

from ledger.sim.day_plan import customer_account
from ledger.sim.month import simulated_month
from tests.fixtures.sign_in import bearer, sign_in

pytestmark = [pytest.mark.chain, pytest.mark.slow]

ESPI_SCHEMA = Path(__file__).parents[1] / "data" / "interop" / "espi" / "usage.xsd"
HOUSEHOLDS, SEED = 2, 1
DAY = 86_400


@dataclass
class Month:
    summary: dict[str, Any]
    client: httpx.Client
    owner: dict[str, str]  # the first household's session headers
    stranger: dict[str, str]  # the second household's
    meter: str
    bill: str


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Month]:
    data_dir = tmp_path_factory.mktemp("usage-month") / "data"
    with (
        simulated_month(
            data_dir,
            month="2026-10",
            time_zone="Europe/Berlin",
            households=HOUSEHOLDS,
            pv=1,
            trading_days=1,
            seed=SEED,
        ) as (summary, url, _),
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        accounts = {a.address: a for a in (customer_account(SEED, i) for i in range(HOUSEHOLDS))}
        first, second = summary["bills"][0], summary["bills"][1]
        yield Month(
            summary,
            client,
            bearer(sign_in(client, accounts[first["customer"]])),
            bearer(sign_in(client, accounts[second["customer"]])),
            first["meter_id"],
            first["bill_hash"],
        )


def period(month: Month) -> dict[str, int]:
    return {"period_from": month.summary["period_start"], "period_to": month.summary["period_end"]}


def test_a_month_by_day_has_31_days_in_one_page(month: Month) -> None:
    answer = month.client.get(
        f"/v1/meters/{month.meter}/consumption",
        params={**period(month), "group_by": "day"},
        headers=month.owner,
    )
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert (page["count"], len(page["results"]), page["next"]) == (31, 31, None)
    assert page["results"][0]["start_local"] == "2026-10-01T00:00:00+02:00"


def test_hours_of_the_month_page_with_next_and_previous_links(month: Month) -> None:
    params: dict[str, int | str] = {
        **period(month),
        "group_by": "hour",
        "page_size": 100,
        "page": 2,
    }
    page = month.client.get(
        f"/v1/meters/{month.meter}/consumption", params=params, headers=month.owner
    ).json()
    # October 2026 in Berlin: 31 days, the last Sunday with 25 hours.
    assert page["count"] == 31 * 24 + 1
    assert "page=3" in page["next"] and "page=1" in page["previous"]
    assert len(page["results"]) == 100


def test_another_customer_gets_the_404_of_an_unknown_meter(month: Month) -> None:
    answer = month.client.get(
        f"/v1/meters/{month.meter}/consumption", params=period(month), headers=month.stranger
    )
    unknown = month.client.get(
        "/v1/meters/NO-SUCH-METER/consumption", params=period(month), headers=month.stranger
    )
    assert answer.status_code == unknown.status_code == 404
    assert answer.json()["error"]["code"] == unknown.json()["error"]["code"]


def test_an_anonymous_caller_must_sign_in(month: Month) -> None:
    answer = month.client.get(f"/v1/meters/{month.meter}/export.csv", params=period(month))
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "sign_in_required")


def test_a_period_over_a_year_is_refused_with_period_too_long(month: Month) -> None:
    params = {"period_from": 0, "period_to": 400 * DAY}
    answer = month.client.get(
        f"/v1/meters/{month.meter}/consumption", params=params, headers=month.owner
    )
    assert (answer.status_code, answer.json()["error"]["code"]) == (422, "period_too_long")


def test_the_csv_export_has_an_hour_a_row_summing_to_the_daily_totals(month: Month) -> None:
    csv_answer = month.client.get(
        f"/v1/meters/{month.meter}/export.csv", params=period(month), headers=month.owner
    )
    assert csv_answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_answer.text)))
    days = month.client.get(
        f"/v1/meters/{month.meter}/consumption",
        params={**period(month), "group_by": "day"},
        headers=month.owner,
    ).json()["results"]
    assert len(rows) == 31 * 24 + 1
    assert sum(int(r["import_wh"]) for r in rows) == sum(d["import_wh"] for d in days)


def test_the_json_export_carries_every_reading_of_a_day_with_its_proof(month: Month) -> None:
    start = month.summary["period_start"]
    answer = month.client.get(
        f"/v1/meters/{month.meter}/export.json",
        params={"period_from": start, "period_to": start + DAY},
        headers=month.owner,
    )
    assert answer.status_code == 200, answer.text
    exported = answer.json()
    assert exported["count"] == 96
    assert all(r["anchor"] is not None and r["anchor"]["proof"] for r in exported["readings"])


def test_the_green_button_export_of_the_months_bill_validates_against_espi(
    month: Month,
) -> None:
    answer = month.client.get(
        f"/v1/meters/{month.meter}/export.xml", params={"bill": month.bill}, headers=month.owner
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/atom+xml")
    root = ET.fromstring(answer.content)
    xmlschema.XMLSchema(str(ESPI_SCHEMA), allow="local").validate(root)
    ns = {"espi": "http://naesb.org/espi"}
    assert len(root.findall(".//espi:UsageSummary", ns)) == 1
    assert len(root.findall(".//espi:IntervalBlock", ns)) == 2 * 31


def test_another_customers_bill_is_not_found_for_the_green_button_export(month: Month) -> None:
    other_bill = month.summary["bills"][1]["bill_hash"]
    answer = month.client.get(
        f"/v1/meters/{month.meter}/export.xml", params={"bill": other_bill}, headers=month.owner
    )
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "bill_not_found")
