"""/docs and /redoc render in a real browser that can reach nothing but the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import cast

import pytest
from playwright.sync_api import Browser, Page, Route

from ledger.node import LedgerNode
from ledger.settings import Settings
from tests.browser.conftest import screenshot_path
from tests.fixtures.billing import serving

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    # The docs pages need no chain: a stand-in node with settings is enough.
    with serving(cast(LedgerNode, SimpleNamespace(settings=Settings()))) as url:
        yield url


def _offline_page(browser: Browser, base_url: str) -> tuple[Page, list[str]]:
    """A page whose requests to any other origin are refused (and recorded), as on a machine
    without internet."""
    page = browser.new_page()
    refused: list[str] = []

    def only_the_gateway(route: Route) -> None:
        if route.request.url.startswith(base_url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_gateway)
    return page, refused


def test_swagger_ui_shows_the_routes_with_no_other_host_reachable(
    browser: Browser, base_url: str
) -> None:
    page, refused = _offline_page(browser, base_url)
    page.goto(f"{base_url}/docs")
    page.locator(".opblock").first.wait_for()
    assert page.locator(".opblock-summary-path", has_text="/healthz").count() == 1
    page.screenshot(path=screenshot_path("docs-swagger-offline"))
    assert refused == []


def test_redoc_shows_the_routes_with_no_other_host_reachable(
    browser: Browser, base_url: str
) -> None:
    page, refused = _offline_page(browser, base_url)
    page.goto(f"{base_url}/redoc")
    page.get_by_text("/healthz").first.wait_for()
    page.screenshot(path=screenshot_path("docs-redoc-offline"))
    assert refused == []


def test_the_gateway_address_leads_to_the_customer_page(browser: Browser, base_url: str) -> None:
    page, refused = _offline_page(browser, base_url)
    page.goto(base_url)
    assert page.url == f"{base_url}/app/"
    page.locator("#sign-in").wait_for()
    assert refused == []
