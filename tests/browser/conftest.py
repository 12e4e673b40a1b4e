"""Chromium for the page tests: Debian's package (/usr/bin/chromium, which `make test` and
.ci/run install when missing) driven by Playwright through `executable_path`. No browser is ever
downloaded (`playwright install` is not used), and the browser is told not to reach the network
on its own (component updates, background requests), so a test sees only the requests its page
makes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REPORTS = Path(__file__).resolve().parents[2] / "reports"


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium is missing: `apt-get install chromium`"
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    yield chromium
    chromium.close()


def screenshot_path(name: str) -> Path:
    REPORTS.mkdir(exist_ok=True)
    return REPORTS / f"{name}.png"
