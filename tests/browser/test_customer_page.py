"""The customer page in Chromium: the customer signs in with a browser wallet (an injected
EIP-1193 provider backed by the customer's test key, tests/browser/wallet.py) through the
gateway's Sign-In with Ethereum, sees their bill with its lines, and the "verified on chain"
panel whose check runs in the browser against the chain's JSON-RPC (Anvil) passes for an issued
bill and fails once the gateway's stored copy of a bill line is changed. An operator's access
token still opens a customer's bills. In a Chinese browser the page speaks Chinese, with dates,
numbers and money formatted for zh-CN, until the language switch turns it English.

One billed ledger serves the module (tests/fixtures/billing.py: two customers, six hours of
signed, anchored readings), with one issuing run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from playwright.sync_api import Browser, Page

from ledger.billing.document import canonical_json
from tests.browser.conftest import screenshot_path
from tests.browser.wallet import TestWallet, install_wallet
from tests.fixtures.billing import BilledLedger, billed_ledger, serving
from tests.fixtures.chain import dev_account

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


def _account_of(billed: BilledLedger, customer: str) -> LocalAccount:
    """The test key of `customer` (the fixture's customers are dev accounts 1, 2, ...)."""
    account = dev_account(billed.customers.index(customer) + 1)
    assert account.address == customer
    return account


def _sign_in_with_wallet(
    page: Page, gateway: tuple[BilledLedger, str], customer: str
) -> TestWallet:
    """Opens the page with `customer`'s key in the injected wallet and signs in with it (the
    page's "Sign in with your wallet" button); returns once the customer's bills are listed."""
    billed, base_url = gateway
    wallet = install_wallet(page, _account_of(billed, customer), billed.chain_id)
    page.goto(f"{base_url}/app/")
    page.wait_for_selector("body[data-ready='true']")
    page.click("#sign-in")
    page.wait_for_selector("#bills-section:not([hidden]) .open-bill")
    return wallet


def _open_first_bill(page: Page) -> None:
    """Opens the first listed bill and waits until the panel has a verdict."""
    page.click(".open-bill")
    page.wait_for_selector(VERDICT_SETTLED)


def _checks(page: Page) -> dict[str, str]:
    statuses: dict[str, str] = page.eval_on_selector_all(
        "#checks li",
        "items => Object.fromEntries(items.map(i => [i.dataset.check, i.dataset.status]))",
    )
    return statuses


def test_a_wallet_signs_the_customer_in_with_the_gateways_sign_in_message(
    browser: Browser, gateway: tuple[BilledLedger, str]
) -> None:
    billed, base_url = gateway
    customer = billed.customers[0]
    page = browser.new_page()
    wallet = _sign_in_with_wallet(page, gateway, customer)
    assert page.get_attribute("#who", "data-role") == "customer"
    assert page.get_attribute("#who", "data-address") == customer
    [message] = wallet.signed
    nonce_answer = httpx.post(f"{base_url}/v1/auth/nonce", timeout=30).json()
    assert message.startswith(f"{nonce_answer['domain']} wants you to sign in")
    assert f"\nURI: {nonce_answer['uri']}\n" in message
    assert f"\nChain ID: {billed.chain_id}\n" in message


def test_a_signed_in_customer_sees_their_own_bills(
    browser: Browser, gateway: tuple[BilledLedger, str]
) -> None:
    billed, base_url = gateway
    customer = billed.customers[0]
    page = browser.new_page()
    _sign_in_with_wallet(page, gateway, customer)
    listed = page.eval_on_selector_all(".open-bill", "buttons => buttons.map(b => b.dataset.hash)")
    assert listed == [bill["bill_hash"] for bill in _bills(base_url, customer)]


def test_panel_passes_every_check_of_a_signed_in_customers_bill(
    browser: Browser, gateway: tuple[BilledLedger, str]
) -> None:
    billed, _ = gateway
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _sign_in_with_wallet(page, gateway, billed.customers[0])
    _open_first_bill(page)
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
    _sign_in_with_wallet(page, gateway, billed.customers[0])
    _open_first_bill(page)
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
    _sign_in_with_wallet(page, gateway, customer)
    _open_first_bill(page)
    checks = _checks(page)
    page.screenshot(path=screenshot_path("customer-page-tampered"), full_page=True)
    assert page.get_attribute("#verdict", "data-status") == "fail"
    assert checks["bill_hash"] == "fail" and checks["bill_anchor"] == "fail"
    assert checks["chain"] == "pass"


def test_an_operators_access_token_opens_a_customers_bill(
    browser: Browser, gateway: tuple[BilledLedger, str]
) -> None:
    billed, base_url = gateway
    customer = billed.customers[0]
    page = browser.new_page()
    page.goto(f"{base_url}/app/")
    page.wait_for_selector("body[data-ready='true']")
    page.click("#token-sign-in summary")
    page.fill("#token", TOKEN)
    page.fill("#customer-address", customer)
    page.click("#use-token")
    _open_first_bill(page)
    assert page.text_content("#bill-hash") == _bills(base_url, customer)[0]["bill_hash"]


# --- language ----------------------------------------------------------------------------------

ZH_DATE = re.compile(r"\d{4}年\d{1,2}月\d{1,2}日")
EN_DATE = re.compile(r"[A-Z][a-z]{2} \d{1,2}, \d{4}")


def _money(minor: int, decimals: int, code: str) -> str:
    """What the page should show for an amount in en and zh-CN (the same pattern in both):
    the code, a no-break space, grouped whole units, at least two and at most `decimals`
    fraction digits, exactly."""
    whole, fraction = divmod(abs(minor), 10**decimals)
    digits = f"{fraction:0{decimals}d}".rstrip("0").ljust(2, "0")
    return f"{'-' if minor < 0 else ''}{code}\xa0{whole:,}.{digits}"


def _chinese_page(browser: Browser, gateway: tuple[BilledLedger, str]) -> Page:
    """A browser whose language is zh-CN (and clock Asia/Shanghai), signed in, a bill open."""
    billed, _ = gateway
    context = browser.new_context(
        locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    _sign_in_with_wallet(page, gateway, billed.customers[0])
    _open_first_bill(page)
    return page


def _by_day_labels(page: Page) -> list[str]:
    labels: list[str] = page.evaluate(
        "() => Chart.getChart(document.querySelector('#usage-by-day')).data.labels"
    )
    return labels


def test_a_chinese_browser_sees_the_page_in_chinese_with_chinese_dates_and_amounts(
    browser: Browser, gateway: tuple[BilledLedger, str]
) -> None:
    billed, base_url = gateway
    page = _chinese_page(browser, gateway)
    document = _bills(base_url, billed.customers[0])[0]["document"]
    currency = document["currency"]
    page.screenshot(path=screenshot_path("customer-page-zh-CN"), full_page=True)
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.text_content("h1") == "能源账本"
    assert page.text_content("#verdict") == "链上验证通过：所有检查均已通过。"
    assert ZH_DATE.search(page.text_content("#bill-period") or "")
    assert all(re.fullmatch(r"\d{1,2}月\d{1,2}日", label) for label in _by_day_labels(page))
    assert page.text_content("#bill-total") == _money(
        document["total_minor"], currency["decimals"], currency["code"]
    )
    line = document["lines"][0]  # grid energy: Wh, priced per kWh
    quantity, unit_price = page.locator("#bill-lines tbody tr").first.locator("td.num").all()[:2]
    assert quantity.text_content() == f"{line['quantity']:,} 瓦时"
    assert unit_price.text_content() == (
        _money(line["unit_price_minor"], currency["decimals"], currency["code"]) + " / 千瓦时"
    )


def test_the_language_switch_turns_a_chinese_page_english(
    browser: Browser, gateway: tuple[BilledLedger, str]
) -> None:
    page = _chinese_page(browser, gateway)
    page.select_option("#language", "en")
    assert page.get_attribute("html", "lang") == "en"
    assert page.text_content("h1") == "Energy ledger"
    assert page.text_content("#verdict") == "Verified on chain: every check passed."
    assert EN_DATE.search(page.text_content("#bill-period") or "")
    assert EN_DATE.search(page.text_content(".open-bill") or "")
    assert all(re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}", label) for label in _by_day_labels(page))
    assert "Wh" in (page.text_content("#bill-lines tbody tr td.num") or "")
