"""The complaints pages in Chromium (docs/customer-page.md, docs/complaints.md).

The customer signs in with the injected wallet (tests/browser/wallet.py), opens a complaint from
a bill line in one click, writes its text and the wallet signs the EIP-712 `Open` message
(eth_signTypedData_v4) that the gateway relays; the complaint is listed waiting with its time
left. Once the operator responds (over the API), the customer's page shows the step with its
block time and "met"; a resolved complaint is rated and reopened from the page, each signed by
the wallet. The service page shows the operator (its pasted token) the queue, soonest breach
first, records a step, and shows the month's statistics with a chart; an auditor signed in with
a wallet reads the same without the step form.

One billed ledger serves the module (tests/fixtures/billing.py), with one issuing run; each
test opens its own complaints.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from playwright.sync_api import Browser, Page

from ledger.sim.market_day import advance_chain_to
from tests.browser.conftest import screenshot_path
from tests.browser.wallet import TestWallet, install_wallet
from tests.fixtures.billing import BilledLedger, billed_ledger, serving
from tests.fixtures.chain import dev_account

pytestmark = [pytest.mark.browser, pytest.mark.chain]

TOKEN = "operator-secret-for-complaint-page-tests"
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}
AUDITOR = dev_account(3)  # not one of the ledger's customers (dev accounts 1 and 2)

Gateway = tuple[BilledLedger, str]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data_dir = tmp_path_factory.mktemp("complaints-page") / "data"
    with billed_ledger(data_dir, operator_token=TOKEN) as billed, serving(billed.node) as url:
        response = httpx.post(
            f"{url}/v1/bills/runs",
            json={"period_start": billed.period_start, "period_end": billed.period_end},
            headers=OPERATOR,
            timeout=60,
        )
        assert response.status_code == 201, response.text
        registry = billed.node.deployment.meter_registry
        billed.node.chain.transact(
            registry.functions.grantRole(keccak(text="AUDITOR_ROLE"), AUDITOR.address)
        )
        yield billed, url


def _customer_key(billed: BilledLedger) -> LocalAccount:
    account = dev_account(1)
    assert account.address == billed.customers[0]
    return account


def _signed_in_page(browser: Browser, gateway: Gateway) -> tuple[Page, TestWallet]:
    """The customer page with the first customer's key in the wallet, signed in with it."""
    billed, base_url = gateway
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    wallet = install_wallet(page, _customer_key(billed), billed.chain_id)
    page.goto(f"{base_url}/app/")
    page.wait_for_selector("body[data-ready='true']")
    page.click("#sign-in")
    page.wait_for_selector("#bills-section:not([hidden]) .open-bill")
    return page, wallet


def _first_bill(base_url: str, customer: str) -> dict[str, Any]:
    listing = httpx.get(f"{base_url}/v1/customers/{customer}/bills", headers=OPERATOR, timeout=30)
    bill: dict[str, Any] = listing.json()["bills"][0]
    return bill


def _line_ref(bill_hash: str, index: int) -> str:
    """docs/complaints.md: keccak256(bill hash || uint32 line index, big-endian)."""
    return "0x" + keccak(bytes.fromhex(bill_hash[2:]) + index.to_bytes(4, "big")).hex()


def _complain_about_line(page: Page, line: int, text: str) -> int:
    """Opens the first bill, clicks the line's "Complain about this line" (-1: the last line's),
    writes `text` and sends it (the wallet signs); returns the new complaint's id once its
    detail is shown."""
    page.click(".open-bill")
    page.wait_for_selector("#bill-lines tbody tr .complain-line")
    page.locator("#bill-lines tbody tr").nth(line).locator(".complain-line").click()
    page.fill("#complaint-text", text)
    page.click("#complaint-submit")
    page.wait_for_selector(f"#complaint-detail:not([hidden]) >> text={text}")
    return int(page.get_attribute("#complaint-detail", "data-complaint-id") or 0)


def _step(base_url: str, complaint_id: int, step: str, text: str) -> dict[str, Any]:
    body: dict[str, Any] = {"step": step, "text": text}
    if step == "assign":
        body["handler"] = "STAFF-0042"
    response = httpx.post(
        f"{base_url}/v1/complaints/{complaint_id}/steps", json=body, headers=OPERATOR, timeout=60
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _reload_detail(page: Page, complaint_id: int) -> None:
    """The customer goes back to the tab (which lists the complaints afresh) and opens it."""
    page.click("#tabs button[data-tab='complaints']")
    page.click(f".complaint-row[data-complaint-id='{complaint_id}'] .open-complaint")


def test_a_bill_lines_complain_button_opens_the_form_prefilled_with_that_line(
    browser: Browser, gateway: Gateway
) -> None:
    billed, base_url = gateway
    page, _ = _signed_in_page(browser, gateway)
    page.click(".open-bill")
    page.locator("#bill-lines tbody tr").nth(1).locator(".complain-line").click()

    bill = _first_bill(base_url, billed.customers[0])
    assert page.is_visible("#complaint-form")
    assert not page.is_visible("#bill-section")
    assert page.get_attribute("#complaint-form", "data-kind") == "bill_line"
    assert page.get_attribute("#complaint-form", "data-ref") == _line_ref(bill["bill_hash"], 1)
    assert "line 2" in (page.text_content("#complaint-subject") or "")


def test_a_complaint_from_a_bill_line_is_signed_by_the_wallet_and_listed_waiting(
    browser: Browser, gateway: Gateway
) -> None:
    billed, base_url = gateway
    page, wallet = _signed_in_page(browser, gateway)

    complaint_id = _complain_about_line(page, 0, "Line 1 counts energy I did not use.")

    bill = _first_bill(base_url, billed.customers[0])
    [typed] = wallet.signed_typed_data
    assert typed["primaryType"] == "Open"
    assert typed["message"]["subjectRef"] == _line_ref(bill["bill_hash"], 0)
    stored = httpx.get(
        f"{base_url}/v1/complaints/{complaint_id}", headers=OPERATOR, timeout=30
    ).json()
    assert (stored["subject_kind"], stored["subject_ref"]) == (
        "bill_line",
        _line_ref(bill["bill_hash"], 0),
    )
    assert stored["customer"] == billed.customers[0]
    row = page.locator(f".complaint-row[data-complaint-id='{complaint_id}']")
    assert row.get_attribute("data-status") == "open"
    assert (row.locator(".breach").text_content() or "").startswith("in ")
    response = page.locator("#complaint-detail tr[data-step='responded']")
    assert response.get_attribute("data-state") == "waiting"
    assert "left" in (response.locator(".state").text_content() or "")


def test_the_operators_response_shows_on_the_customers_page_with_its_block_time_and_met(
    browser: Browser, gateway: Gateway
) -> None:
    _, base_url = gateway
    page, _ = _signed_in_page(browser, gateway)
    complaint_id = _complain_about_line(page, 0, "The peak line looks too high.")
    answered = _step(base_url, complaint_id, "respond", "We are checking the readings.")

    _reload_detail(page, complaint_id)

    response = page.locator("#complaint-detail tr[data-step='responded'][data-state='met']")
    response.wait_for()
    page.screenshot(path=screenshot_path("complaints-customer"), full_page=True)
    assert response.locator("td[data-at]").get_attribute("data-at") == str(answered["step_at"])
    assert "We are checking the readings." in (response.text_content() or "")
    assigned = page.locator("#complaint-detail tr[data-step='assigned']")
    assert assigned.get_attribute("data-state") == "waiting"


def test_a_customer_rates_a_resolved_complaint_with_a_signature(
    browser: Browser, gateway: Gateway
) -> None:
    _, base_url = gateway
    page, wallet = _signed_in_page(browser, gateway)
    # The bill's last line: how many lines it has depends on the hour the fixture's six-hour
    # period starts at (its tariff bands, whether it holds a local midnight and so a daily
    # charge); two, one per meter, at the least. Line 2 was missing at some hours of the day.
    complaint_id = _complain_about_line(page, -1, "This line's amount looks too high.")
    for step in ("respond", "assign", "plan", "resolve"):
        _step(base_url, complaint_id, step, f"{step}: done")
    _reload_detail(page, complaint_id)

    page.wait_for_selector("#complaint-rate:not([hidden])")
    page.select_option("#complaint-rating", "4")
    page.click("#complaint-rate-button")

    page.wait_for_selector("#complaint-detail[data-status='rated']")
    assert wallet.signed_typed_data[-1]["primaryType"] == "Rate"
    stored = httpx.get(
        f"{base_url}/v1/complaints/{complaint_id}", headers=OPERATOR, timeout=30
    ).json()
    assert stored["rounds"][0]["rating"] == 4


def test_a_customer_reopens_a_resolved_complaint_as_a_new_round(
    browser: Browser, gateway: Gateway
) -> None:
    _, base_url = gateway
    page, wallet = _signed_in_page(browser, gateway)
    complaint_id = _complain_about_line(page, 1, "The valley price is not the tariff's.")
    for step in ("respond", "assign", "plan", "resolve"):
        _step(base_url, complaint_id, step, f"{step}: done")
    _reload_detail(page, complaint_id)

    page.wait_for_selector("#complaint-reopen:not([hidden])")
    page.fill("#complaint-reopen-text", "The corrected bill still has it.")
    page.click("#complaint-reopen-button")

    page.wait_for_selector("#complaint-detail[data-status='open'] .complaint-round[data-round='2']")
    assert wallet.signed_typed_data[-1]["primaryType"] == "Reopen"
    stored = httpx.get(
        f"{base_url}/v1/complaints/{complaint_id}", headers=OPERATOR, timeout=30
    ).json()
    assert (stored["round"], stored["rounds"][1]["text"]) == (2, "The corrected bill still has it.")


# --- the service page --------------------------------------------------------------------------


def _open_complaint_over_the_page(browser: Browser, gateway: Gateway, text: str) -> int:
    page, _ = _signed_in_page(browser, gateway)
    complaint_id = _complain_about_line(page, 0, text)
    page.close()
    return complaint_id


def _operator_service_page(browser: Browser, gateway: Gateway) -> Page:
    _, base_url = gateway
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(f"{base_url}/app/service")
    page.wait_for_selector("body[data-ready='true']")
    page.fill("#operator-token", TOKEN)
    page.click("#use-token")
    page.wait_for_selector("#stats-steps tbody tr")
    return page


def _queue_ids(page: Page) -> list[int]:
    ids: list[str] = page.eval_on_selector_all(
        ".queue-row", "rows => rows.map(r => r.dataset.complaintId)"
    )
    return [int(i) for i in ids]


def test_the_service_page_shows_the_operator_the_queue_soonest_breach_first(
    browser: Browser, gateway: Gateway
) -> None:
    _, base_url = gateway
    _open_complaint_over_the_page(browser, gateway, "Nobody answers the phone.")

    page = _operator_service_page(browser, gateway)

    queue = httpx.get(f"{base_url}/v1/complaints/queue", headers=OPERATOR, timeout=30).json()
    assert _queue_ids(page) == [c["complaint_id"] for c in queue["complaints"]]
    breaches = [c["time_to_breach_s"] for c in queue["complaints"]]
    timed = [b for b in breaches if b is not None]
    assert timed == sorted(timed) and len(timed) >= 1


def test_the_operator_records_a_step_on_the_service_page_and_its_time_is_the_blocks(
    browser: Browser, gateway: Gateway
) -> None:
    billed, base_url = gateway
    complaint_id = _open_complaint_over_the_page(browser, gateway, "The meter's clock is off.")
    page = _operator_service_page(browser, gateway)

    page.click(f".queue-row[data-complaint-id='{complaint_id}'] .open-complaint")
    page.wait_for_selector("#step-form:not([hidden])")
    assert page.input_value("#step-name") == "respond"
    page.fill("#step-text", "We have your complaint.")
    page.click("#step-submit")

    page.wait_for_selector("#service-detail[data-status='responded']")
    stored = httpx.get(
        f"{base_url}/v1/complaints/{complaint_id}", headers=OPERATOR, timeout=30
    ).json()
    responded = stored["rounds"][0]["steps"][0]
    shown = page.locator("#service-rounds tr[data-step='responded'] td[data-at]")
    assert shown.get_attribute("data-at") == str(responded["at"])
    block = billed.node.chain.w3.eth.get_block("latest")
    assert responded["at"] <= int(block["timestamp"])
    assert responded["text"] == "We have your complaint."


def test_the_service_page_draws_the_months_statistics_with_a_chart_and_the_negative_list(
    browser: Browser, gateway: Gateway
) -> None:
    billed, base_url = gateway
    _open_complaint_over_the_page(browser, gateway, "The bill came late.")
    # 45 minutes on the chain's clock: every complaint still unanswered misses its first
    # response's 30-minute target and goes on the negative list.
    chain = billed.node.chain
    advance_chain_to(chain, int(chain.w3.eth.get_block("latest")["timestamp"]) + 45 * 60)
    page = _operator_service_page(browser, gateway)

    month = page.input_value("#stats-month")
    stats = httpx.get(
        f"{base_url}/v1/complaints/statistics",
        params={"month": month},
        headers=OPERATOR,
        timeout=30,
    ).json()
    page.screenshot(path=screenshot_path("complaints-service"), full_page=True)
    assert page.text_content("#stats-count") == str(stats["count"]) and stats["count"] >= 1
    shown_steps = page.eval_on_selector_all(
        "#stats-steps tbody tr", "rows => rows.map(r => r.dataset.step)"
    )
    assert shown_steps == [s["step"] for s in stats["steps"]]
    chart: dict[str, Any] = page.evaluate(
        """() => { const c = Chart.getChart(document.querySelector('#stats-chart'));
                   return { labels: c.data.labels, median: c.data.datasets[0].data }; }"""
    )
    assert len(chart["labels"]) == len(stats["steps"])
    assert chart["median"] == [
        None if s["median_s"] is None else s["median_s"] / 60 for s in stats["steps"]
    ]
    unanswered = [b for b in stats["breaches"] if b["step"] == "responded" and not b["answered"]]
    assert unanswered, stats["breaches"]
    shown_breaches = page.eval_on_selector_all(
        "#breaches tbody tr",
        "rows => rows.map(r => [Number(r.dataset.complaintId), r.dataset.step])",
    )
    assert shown_breaches == [[b["complaint_id"], b["step"]] for b in stats["breaches"]]


def test_an_auditor_signed_in_with_a_wallet_reads_the_queue_and_statistics_but_records_nothing(
    browser: Browser, gateway: Gateway
) -> None:
    billed, base_url = gateway
    complaint_id = _open_complaint_over_the_page(browser, gateway, "Reading 12 is missing.")
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    install_wallet(page, AUDITOR, billed.chain_id)
    page.goto(f"{base_url}/app/service.html")
    page.wait_for_selector("body[data-ready='true']")

    page.click("#auditor-sign-in")
    page.wait_for_selector("#stats-steps tbody tr")

    assert page.get_attribute("#who", "data-role") == "auditor"
    queue = httpx.get(f"{base_url}/v1/complaints/queue", headers=OPERATOR, timeout=30).json()
    assert _queue_ids(page) == [c["complaint_id"] for c in queue["complaints"]]
    page.click(f".queue-row[data-complaint-id='{complaint_id}'] .open-complaint")
    page.wait_for_selector(f"#service-detail[data-complaint-id='{complaint_id}']")
    assert page.is_hidden("#step-form")


def test_the_operators_token_is_kept_for_the_tab_only(browser: Browser, gateway: Gateway) -> None:
    page = _operator_service_page(browser, gateway)

    kept = page.evaluate("() => sessionStorage.getItem('complaintsOperatorToken')")
    local = page.evaluate("() => Object.values(localStorage)")
    assert kept == TOKEN
    assert TOKEN not in local


def test_a_refused_token_is_not_kept_and_the_page_says_why(
    browser: Browser, gateway: Gateway
) -> None:
    _, base_url = gateway
    page = browser.new_page()
    page.goto(f"{base_url}/app/service")
    page.wait_for_selector("body[data-ready='true']")
    page.fill("#operator-token", "not-the-operators-token")
    page.click("#use-token")

    page.wait_for_selector("#error:has-text('401')")
    assert page.evaluate("() => sessionStorage.getItem('complaintsOperatorToken')") is None
    assert page.is_hidden("#queue-section")


def test_a_customer_signing_in_on_the_service_page_is_told_it_is_not_an_auditor(
    browser: Browser, gateway: Gateway
) -> None:
    billed, base_url = gateway
    page = browser.new_page()
    install_wallet(page, _customer_key(billed), billed.chain_id)
    page.goto(f"{base_url}/app/service")
    page.wait_for_selector("body[data-ready='true']")

    page.click("#auditor-sign-in")

    page.wait_for_selector("#error:has-text('does not hold the auditor role')")
    assert page.is_hidden("#queue-section")


def test_an_operator_viewing_an_account_with_its_token_sees_its_complaints_but_cannot_act(
    browser: Browser, gateway: Gateway
) -> None:
    billed, base_url = gateway
    complaint_id = _open_complaint_over_the_page(browser, gateway, "Viewed by the operator.")
    page = browser.new_page()
    page.goto(f"{base_url}/app/")
    page.wait_for_selector("body[data-ready='true']")
    page.click("#token-sign-in summary")
    page.fill("#token", TOKEN)
    page.fill("#customer-address", billed.customers[0])
    page.click("#use-token")
    page.click(".open-bill")
    page.wait_for_selector("#bill-lines tbody tr")

    assert page.locator(".complain-line").count() == 0
    page.click("#tabs button[data-tab='complaints']")
    page.wait_for_selector(f".complaint-row[data-complaint-id='{complaint_id}']")
    assert page.is_hidden("#new-complaint")


def test_a_chinese_browser_shows_the_complaint_clocks_in_chinese(
    browser: Browser, gateway: Gateway
) -> None:
    billed, base_url = gateway
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
    page = context.new_page()
    install_wallet(page, _customer_key(billed), billed.chain_id)
    page.goto(f"{base_url}/app/")
    page.wait_for_selector("body[data-ready='true']")
    page.click("#sign-in")
    page.wait_for_selector(".open-bill")

    _complain_about_line(page, 0, "峰时电量不对。")

    assert page.text_content("#tabs button[data-tab='complaints']") == "投诉"
    waiting = page.locator("#complaint-detail tr[data-step='responded'] .state")
    assert (waiting.text_content() or "").startswith("等待中，剩余 ")
    assert "分钟" in (waiting.text_content() or "")
