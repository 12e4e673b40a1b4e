"""Addresses in the README and docs are copied by users: each must carry a valid EIP-55 checksum,
or the gateway refuses it (`invalid_meter`) and the example does not work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from eth_utils.address import to_checksum_address

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ADDRESS = re.compile(r"(?<![0-9a-fA-F])0x[0-9a-fA-F]{40}(?![0-9a-fA-F])")


def mixed_case_addresses(page: Path) -> list[str]:
    """The addresses written with a checksum (all-lowercase hex carries none)."""
    return [a for a in ADDRESS.findall(page.read_text()) if a[2:] != a[2:].lower()]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_checksummed_address_in_the_docs_has_a_valid_eip55_checksum(page: Path) -> None:
    bad = [a for a in mixed_case_addresses(page) if to_checksum_address(a) != a]
    assert bad == [], (
        f"{page.name}: bad EIP-55 checksum, should be {[to_checksum_address(a) for a in bad]}"
    )


def test_the_readme_has_checksummed_addresses_to_check() -> None:
    assert mixed_case_addresses(ROOT / "README.md")  # the check above is not vacuous
