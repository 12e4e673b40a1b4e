"""Native readings' canonical bytes: the Solidity ABI encoding, the fields it accepts, the
digest and the leaf.
"""

from __future__ import annotations

import hashlib

import pytest
from eth_abi import encode
from eth_utils import keccak

from ledger.errors import LedgerError
from ledger.readings.native import (
    ABI_TYPES,
    CANONICAL_LENGTH,
    DOMAIN_TAG,
    OBIS_EXPORT_WH,
    OBIS_IMPORT_WH,
    UINT32_MAX,
    UINT64_MAX,
    UINT256_MAX,
    Reading,
    ReadingFormatError,
    ReadingSignatureError,
    decode,
    digest,
    reading_leaf,
)
from tests.unit.readings.native_support import METER, reading, word


def test_domain_tag_is_keccak_of_the_format_name() -> None:
    assert DOMAIN_TAG == keccak(text="EnergyLedger.Reading.v1")


def test_canonical_bytes_are_the_solidity_abi_encoding() -> None:
    r = reading(status=3)
    expected = encode(list(ABI_TYPES), [DOMAIN_TAG, 1337, METER, 7, 1_700_000_000, 12_345, 678, 3])
    assert r.encode() == expected
    assert len(expected) == CANONICAL_LENGTH == 256


def test_each_field_sits_in_its_own_big_endian_word() -> None:
    canonical = reading(seq=1, timestamp=2, import_wh=3, export_wh=4, status=5).encode()
    words = [canonical[i : i + 32] for i in range(0, 256, 32)]
    assert words == [DOMAIN_TAG, word(1337), METER, word(1), word(2), word(3), word(4), word(5)]


def test_registers_are_named_by_obis_code() -> None:
    assert reading(import_wh=10, export_wh=2).registers == {"1-0:1.8.0": 10, "1-0:2.8.0": 2}
    assert (OBIS_IMPORT_WH, OBIS_EXPORT_WH) == ("1-0:1.8.0", "1-0:2.8.0")


def test_fields_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        Reading(1337, METER, 1, 2, 3, 4, 0)  # type: ignore[call-arg]


def test_extreme_values_encode_and_decode() -> None:
    for r in (
        reading(chain_id=1, seq=0, timestamp=0, import_wh=0, export_wh=0, status=0),
        reading(
            chain_id=UINT256_MAX,
            meter_id=b"\xff" * 32,
            seq=UINT64_MAX,
            timestamp=UINT64_MAX,
            import_wh=UINT64_MAX,
            export_wh=UINT64_MAX,
            status=UINT32_MAX,
        ),
    ):
        assert decode(r.encode()) == r


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("chain_id", 0),
        ("chain_id", UINT256_MAX + 1),
        ("seq", -1),
        ("seq", UINT64_MAX + 1),
        ("timestamp", -1),
        ("timestamp", UINT64_MAX + 1),
        ("import_wh", -1),
        ("import_wh", UINT64_MAX + 1),
        ("export_wh", -5),
        ("export_wh", UINT64_MAX + 1),
        ("status", -1),
        ("status", UINT32_MAX + 1),
        ("import_wh", 1.5),
        ("import_wh", 100.0),
        ("seq", True),
        ("seq", "7"),
        ("meter_id", b"\x01" * 31),
        ("meter_id", b"\x01" * 33),
        ("meter_id", "MTR-0001"),
        ("meter_id", bytearray(32)),
    ],
)
def test_out_of_range_or_mistyped_fields_are_refused(field: str, value: object) -> None:
    with pytest.raises(ReadingFormatError) as caught:
        reading(**{field: value})  # type: ignore[arg-type]
    assert field in str(caught.value)
    assert caught.value.code == "reading_malformed"


def test_error_types_are_ledger_errors_with_stable_codes() -> None:
    assert issubclass(ReadingFormatError, LedgerError)
    assert issubclass(ReadingSignatureError, LedgerError)
    assert ReadingFormatError.code == "reading_malformed"
    assert ReadingSignatureError.code == "bad_signature"


def test_digest_is_sha256_of_the_canonical_bytes() -> None:
    canonical = reading().encode()
    assert digest(canonical) == hashlib.sha256(canonical).digest()


def test_leaf_is_keccak_of_keccak_of_the_canonical_bytes() -> None:
    canonical = reading().encode()
    assert reading_leaf(canonical) == keccak(keccak(canonical))


@pytest.mark.parametrize(
    "data",
    [b"", reading().encode()[:-1], bytes(32) + reading().encode()[32:]],
    ids=["empty", "short", "no-tag"],
)
def test_leaf_refuses_what_is_not_a_canonical_reading(data: bytes) -> None:
    with pytest.raises(ReadingFormatError):
        reading_leaf(data)
