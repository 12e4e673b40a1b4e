"""`/`, `/docs`, `/redoc` and the customer and service pages' files over HTTP: everything a page
loads is served by the gateway (no CDN), so the docs work on a machine without internet.

The pages need no chain: the app is built around a stand-in node that has only settings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import cast

import httpx
import pytest

from ledger.node import LedgerNode
from ledger.settings import Settings
from tests.fixtures.billing import serving

_LOADED_URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*['"]([^'"]+)['"]""")


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    node = cast(LedgerNode, SimpleNamespace(settings=Settings()))
    with serving(node) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        yield http


def _urls_loaded_by(html: str) -> list[str]:
    return [a or b for a, b in _LOADED_URL.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc", "/app/", "/app/service.html"])
def test_page_loads_nothing_from_another_host(client: httpx.Client, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    urls = _urls_loaded_by(response.text)
    assert urls, "the page loads no script or style at all"
    assert [url for url in urls if "//" in url] == []


@pytest.mark.parametrize("page", ["/docs", "/redoc", "/app/", "/app/service.html"])
def test_every_file_a_page_loads_is_served_by_the_gateway(client: httpx.Client, page: str) -> None:
    base = page[: page.rindex("/") + 1] if page.startswith("/app/") else "/"
    for url in _urls_loaded_by(client.get(page).text):
        path = url if url.startswith("/") else base + url
        assert client.get(path).status_code == 200, path


def test_redoc_asks_for_no_web_fonts(client: httpx.Client) -> None:
    assert "fonts.googleapis.com" not in client.get("/redoc").text


def test_root_leads_to_the_customer_page(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/app/"


def test_the_service_address_leads_to_the_complaints_service_page(client: httpx.Client) -> None:
    response = client.get("/app/service")
    assert response.status_code == 307
    assert response.headers["location"] == "/app/service.html"


def test_assets_serve_only_the_packages_distribution_folders(client: httpx.Client) -> None:
    assert client.get("/assets/ethers/ethers.umd.min.js").status_code == 200
    assert client.get("/assets/ethers/../package.json").status_code == 404
    assert client.get("/assets/solc/package.json").status_code == 404


def test_pages_are_not_in_the_api_schema(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/", "/app", "/app/service", "/docs", "/redoc"} & set(paths)
