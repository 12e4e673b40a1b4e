"""Bill documents name accounts in their EIP-55 form, as eth_utils would; a mixed-case address
whose checksum is wrong (which eth_utils 5's `is_address` lets through) is refused: it is a
mistyped address."""

from __future__ import annotations

import random

import pytest
from eth_utils.address import is_address, to_checksum_address

from ledger.billing.compute import BillInputError, _address


def _variants(rng: random.Random) -> list[str]:
    digits = rng.getrandbits(160).to_bytes(20, "big").hex()
    checksummed = to_checksum_address("0x" + digits)
    return [
        "0x" + digits,
        "0x" + digits.upper(),
        digits,
        checksummed,
        "0X" + digits,
        checksummed[:2] + checksummed[2:].swapcase(),  # mixed case, checksum broken
        "0x" + digits[:-1],
        "0x" + digits + "0",
        "0x" + digits[:-1] + "g",
    ]


def _mixed_case_with_a_wrong_checksum(value: str) -> bool:
    digits = value[-40:]
    return digits not in (digits.lower(), digits.upper()) and value != to_checksum_address(value)


def test_an_address_is_accepted_and_checksummed_as_eth_utils_does() -> None:
    rng = random.Random(55)
    for _ in range(300):
        for value in _variants(rng):
            if is_address(value) and not _mixed_case_with_a_wrong_checksum(value):
                assert _address(value, "customer") == to_checksum_address(value)
            else:
                with pytest.raises(BillInputError):
                    _address(value, "customer")


def test_a_mixed_case_address_with_a_wrong_checksum_is_refused() -> None:
    good = to_checksum_address("0x" + "ab" * 20)
    broken = good[:2] + good[2:].swapcase()
    with pytest.raises(BillInputError, match="bad checksum"):
        _address(broken, "customer")
