"""The customer page in Chromium: a bill with its lines, and the "verified on chain" panel whose
check runs in the browser against the chain's JSON-RPC (Anvil), passing for an issued bill and
failing once the gateway's stored copy of a bill line is changed.

One billed ledger serves the module (tests/fixtures/billing.py: two customers, six hours of
signed, anchored readings), with one issuing run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from ledger.billing.document import canonical_json
from tests.browser.conftest import screenshot_path
from tests.fixtures.billing import BilledLedger, billed_ledger, serving

pytestmark = [pytest.mark.browser, pytest.mark.chain]

TOKEN = "operator-secret-for-page-tests"
VERDICT_SETTLED = "#verdict[data-status='pass'], #verdict[data-status='fail']"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BilledLedger, str]]:
    data_dir = tmp_path_factory.mktemp("page") / "data"
    with billed_ledger(data_dir, operator_token=TOKEN) as billed, serving(billed.node) as url:
        response = httpx.post(
            f"{url}/v1/bills/runs",
            json={"period_start": billed.period_start, "period_end": billed.period_end},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
        )
        assert response.status_code == 201, response.text
        yield billed, url


def _open_first_bill(page: Page, base_url: str, customer: str) -> None:
    """Opens the page, signs in with the operator's token for `customer`, opens their bill
    and waits until the panel has a verdict."""
    page.goto(f"{base_url}/app/")
    page.wait_for_selector("body[data-ready='true']")
    page.click("#token-sign-in summary")
    page.fill("#token", TOKEN)
    page.fill("#customer-address", customer)
    page.click("#use-token")
    page.click(".open-bill")
    page.wait_for_selector(VERDICT_SETTLED)


def _checks(page: Page) -> dict[str, str]:
    statuses: dict[str, str] = page.eval_on_selector_all(
        "#checks li",
        "items => Object.fromEntries(items.map(i => [i.dataset.check, i.dataset.status]))",
    )
    return statuses


def test_panel_passes_every_check_of_an_issued_bill(
    browser: Browser, gateway: tuple[BilledLedger, str]
) -> None:
    billed, base_url = gateway
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _open_first_bill(page, base_url, billed.customers[0])
    checks = _checks(page)
    page.screenshot(path=screenshot_path("customer-page-verified"), full_page=True)
    assert page.get_attribute("#verdict", "data-status") == "pass", checks
    assert {"chain", "bill_hash", "bill_anchor"} <= set(checks)
    assert sum(1 for check in checks if check.startswith("reading-")) >= 2
    assert set(checks.values()) == {"pass"}


def test_page_shows_every_line_of_the_bill(
    browser: Browser, gateway: tuple[BilledLedger, str]
) -> None:
    billed, base_url = gateway
    page = browser.new_page()
    _open_first_bill(page, base_url, billed.customers[0])
    bill = _bills(base_url, billed.customers[0])[0]
    assert page.locator("#bill-lines tbody tr").count() == len(bill["document"]["lines"])
    assert page.text_content("#bill-hash") == bill["bill_hash"]


def _bills(base_url: str, customer: str) -> list[dict[str, Any]]:
    listing = httpx.get(
        f"{base_url}/v1/customers/{customer}/bills",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    ).json()
    bills: list[dict[str, Any]] = listing["bills"]
    return bills


def _tamper_first_line(billed: BilledLedger, base_url: str, customer: str) -> None:
    """Raises the first line's amount by one minor unit in the gateway's stored document."""
    bill = _bills(base_url, customer)[0]
    document = bill["document"]
    document["lines"][0]["amount_minor"] += 1
    with billed.node.store.write() as db:
        db.execute(
            "UPDATE bills SET document = ? WHERE bill_hash = ?",
            (canonical_json(document), bytes.fromhex(bill["bill_hash"][2:])),
        )


def test_panel_fails_when_the_gateways_copy_of_a_bill_line_is_changed(
    browser: Browser, gateway: tuple[BilledLedger, str]
) -> None:
    billed, base_url = gateway
    customer = billed.customers[1]
    _tamper_first_line(billed, base_url, customer)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _open_first_bill(page, base_url, customer)
    checks = _checks(page)
    page.screenshot(path=screenshot_path("customer-page-tampered"), full_page=True)
    assert page.get_attribute("#verdict", "data-status") == "fail"
    assert checks["bill_hash"] == "fail" and checks["bill_anchor"] == "fail"
    assert checks["chain"] == "pass"
