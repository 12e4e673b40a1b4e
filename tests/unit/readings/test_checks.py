"""The per-reading rules of `ledger.readings.checks` on their own: hex decoding."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.readings.checks import parse_hex

_REGEX_HEX = re.compile(r"(0x)?((?:[0-9a-fA-F]{2})*)")


def regex_hex(text: str) -> bytes | None:
    """What `parse_hex` accepted when it was a regular expression: the reference it must match."""
    match = _REGEX_HEX.fullmatch(text)
    return None if match is None else bytes.fromhex(match.group(2))


@settings(max_examples=500, deadline=None)
@given(
    prefix=st.sampled_from(["", "0x", "0X", "x", " 0x", "0x0x", "00x", "\n"]),
    body=st.one_of(
        st.binary(max_size=8).map(bytes.hex),
        st.binary(max_size=8).map(lambda b: b.hex().upper()),
        st.text(
            alphabet="0123456789abcdefABCDEFxg \t\n\r\x0b\x0c\x00+-_\u0660\uff10\u00e9", max_size=10
        ),
    ),
    suffix=st.sampled_from(["", "\n", " ", "0", "00", "\u0661"]),
)
def test_hex_decoding_accepts_exactly_what_the_former_regular_expression_did(
    prefix: str, body: str, suffix: str
) -> None:
    text = prefix + body + suffix
    assert parse_hex(text) == regex_hex(text)
