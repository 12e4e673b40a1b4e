"""Strict decoding of canonical bytes: exactly the one encoding is accepted, checked by hand
and against an eth_abi round trip on bytes near the encoding.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode
from eth_utils import keccak
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ledger.readings.native import (
    ABI_TYPES,
    CANONICAL_LENGTH,
    DOMAIN_TAG,
    UINT32_MAX,
    UINT64_MAX,
    UINT256_MAX,
    Reading,
    ReadingFormatError,
    decode,
)
from tests.unit.readings.native_support import reading, word


def test_decode_round_trips() -> None:
    r = reading(status=0xDEADBEEF)
    assert decode(r.encode()) == r
    assert decode(bytearray(r.encode())) == r
    assert decode(memoryview(r.encode())) == r  # what PostgreSQL drivers return for bytea


@pytest.mark.parametrize("length", [0, 32, 255, 257, 288])
def test_decode_refuses_another_length(length: int) -> None:
    data = (reading().encode() * 2)[:length]
    with pytest.raises(ReadingFormatError, match=f"is {length} bytes"):
        decode(data)


def test_decode_refuses_another_domain_tag() -> None:
    data = keccak(text="EnergyLedger.Reading.v2") + reading().encode()[32:]
    with pytest.raises(ReadingFormatError, match="domain tag"):
        decode(data)


@pytest.mark.parametrize(
    ("field", "offset", "padding"),
    [
        ("seq", 0x60, 24),
        ("timestamp", 0x80, 24),
        ("import_wh", 0xA0, 24),
        ("export_wh", 0xC0, 24),
        ("status", 0xE0, 28),
    ],
)
def test_decode_refuses_any_non_zero_padding_byte(field: str, offset: int, padding: int) -> None:
    canonical = reading().encode()
    for position in range(offset, offset + padding):
        data = bytearray(canonical)
        data[position] = 0x01
        with pytest.raises(ReadingFormatError, match=f"{field} word .* does not fit"):
            decode(bytes(data))


def test_decode_refuses_chain_id_zero() -> None:
    data = bytearray(reading().encode())
    data[0x20:0x40] = bytes(32)
    with pytest.raises(ReadingFormatError, match="chain_id"):
        decode(bytes(data))


def test_decode_refuses_what_is_not_bytes() -> None:
    with pytest.raises(ReadingFormatError, match="must be bytes"):
        decode(reading().encode().hex())  # type: ignore[arg-type]


VALID_FIELDS = st.fixed_dictionaries(
    {
        "chain_id": st.integers(1, UINT256_MAX),
        "meter_id": st.binary(min_size=32, max_size=32),
        "seq": st.integers(0, UINT64_MAX),
        "timestamp": st.integers(0, UINT64_MAX),
        "import_wh": st.integers(0, UINT64_MAX),
        "export_wh": st.integers(0, UINT64_MAX),
        "status": st.integers(0, UINT32_MAX),
    }
)
"""The fields of any valid reading: every one within its Solidity type's range."""


@settings(max_examples=60, deadline=None)
@given(fields=VALID_FIELDS)
def test_any_valid_reading_decodes_to_itself_and_re_encodes_byte_identically(
    fields: dict[str, Any],
) -> None:
    r = Reading(**fields)
    canonical = r.encode()
    assert decode(canonical) == r
    assert decode(canonical).encode() == canonical


@settings(max_examples=60, deadline=None)
@given(fields=VALID_FIELDS)
def test_a_reading_built_from_fixed_width_fields_is_the_checked_constructors(
    fields: dict[str, Any],
) -> None:
    fast = Reading.from_fixed_width_fields(**fields)
    checked = Reading(**fields)

    assert fast == checked
    assert hash(fast) == hash(checked)
    assert fast.encode() == checked.encode()
    assert decode(fast.encode()) == fast
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.seq = fields["seq"] + 1  # type: ignore[misc]


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=256, max_size=256))
def test_random_bytes_are_refused_or_re_encode_identically(data: bytes) -> None:
    data = DOMAIN_TAG + data[32:]
    try:
        decoded = decode(data)
    except ReadingFormatError:
        return
    assert decoded.encode() == data


def eth_abi_decode(data: bytes) -> Reading | None:
    """The reference for `decode`, with no hand-written parse: eth_abi decodes the eight words,
    and the bytes are accepted only if they start with the domain tag, the values re-encode to
    exactly these bytes, and `Reading` accepts them. None: refused."""
    if len(data) != CANONICAL_LENGTH:
        return None
    try:
        tag, chain_id, meter_id, seq, timestamp, import_wh, export_wh, status = abi_decode(
            list(ABI_TYPES), data
        )
    except Exception:  # noqa: BLE001 - any eth_abi decoding error is a refusal
        return None
    values = [tag, chain_id, meter_id, seq, timestamp, import_wh, export_wh, status]
    if tag != DOMAIN_TAG or encode(list(ABI_TYPES), values) != data:
        return None
    try:
        return Reading(
            chain_id=chain_id,
            meter_id=meter_id,
            seq=seq,
            timestamp=timestamp,
            import_wh=import_wh,
            export_wh=export_wh,
            status=status,
        )
    except ReadingFormatError:
        return None


def _words(maximum: int) -> st.SearchStrategy[bytes]:
    """A word for a uint field of at most `maximum`: in range (edges included), too large for
    it but a uint256, or any 32 bytes."""
    return st.one_of(
        st.integers(0, maximum).map(word),
        st.integers(maximum, UINT256_MAX).map(word),
        st.binary(min_size=32, max_size=32),
    )


# Each word of the encoding: what may stand in it, valid or not.
_ANY_WORD = (
    st.one_of(st.just(DOMAIN_TAG), st.binary(min_size=32, max_size=32)),
    _words(UINT256_MAX),
    st.binary(min_size=32, max_size=32),
    _words(UINT64_MAX),
    _words(UINT64_MAX),
    _words(UINT64_MAX),
    _words(UINT64_MAX),
    _words(UINT32_MAX),
)
_VALID_CANONICAL = st.builds(
    Reading,
    chain_id=st.integers(1, UINT256_MAX),
    meter_id=st.binary(min_size=32, max_size=32),
    seq=st.integers(0, UINT64_MAX),
    timestamp=st.integers(0, UINT64_MAX),
    import_wh=st.integers(0, UINT64_MAX),
    export_wh=st.integers(0, UINT64_MAX),
    status=st.integers(0, UINT32_MAX),
).map(Reading.encode)


@st.composite
def _canonical_candidates(draw: st.DrawFn) -> bytes:
    """Byte strings near the canonical encoding: a valid one; one with a word replaced (by a
    valid or invalid one for that field), or one byte changed (most bytes are padding that
    must stay zero), or its length changed; or eight words each drawn on its own."""
    data = draw(_VALID_CANONICAL)
    how = draw(st.sampled_from(["valid", "word", "byte", "length", "words"]))
    if how == "word":
        i = draw(st.integers(0, 7))
        data = data[: i * 32] + draw(_ANY_WORD[i]) + data[(i + 1) * 32 :]
    elif how == "byte":
        i = draw(st.integers(0, CANONICAL_LENGTH - 1))
        data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]
    elif how == "length":
        data = (data * 2)[: draw(st.integers(0, 2 * CANONICAL_LENGTH))]
    elif how == "words":
        data = b"".join(draw(w) for w in _ANY_WORD)
    return data


@settings(max_examples=500, deadline=None)
@given(_canonical_candidates())
def test_decode_accepts_exactly_what_eth_abi_decodes_and_re_encodes_identically(
    data: bytes,
) -> None:
    # `decode` parses by hand, without an eth_abi round trip per reading: it must accept the
    # same byte strings as the round trip, with the same values.
    expected = eth_abi_decode(data)
    try:
        decoded: Reading | None = decode(data)
    except ReadingFormatError:
        decoded = None
    event("accepted" if expected is not None else "refused")
    assert decoded == expected
