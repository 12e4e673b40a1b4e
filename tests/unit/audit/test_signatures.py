"""The audit's per-reading check: the fast path for sound exported lines answers exactly as the
general path, and leaves every line with a problem (or another layout) to the general path."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import utils

from ledger.audit.signatures import (
    CheckedReading,
    MalformedLine,
    _check_line,
    _fast_path,
    check_chunk,
    check_lines,
    init_worker,
)
from ledger.meters.keys import KeyAlgorithm, MeterPrivateKey, encode_public_key, generate_key
from ledger.meters.registry import KeyEpochView, meter_id_bytes
from ledger.readings.native import Reading, anchored_leaf, sign_reading

CHAIN_ID = 1337
METER = meter_id_bytes("FAST-1")
START = 1_800_000_000
ROTATED_AT = START + 100 * 900


def reading(seq: int, chain_id: int = CHAIN_ID) -> Reading:
    return Reading(
        chain_id=chain_id,
        meter_id=METER,
        seq=seq,
        timestamp=START + seq * 900,
        import_wh=1_000 * seq,
        export_wh=7 * seq,
        status=0,
    )


def exported(r: Reading, sig: bytes, **changes: Any) -> bytes:
    """A reading line with the key order and spacing of `ledger export-bundle`."""
    obj = {
        "type": "reading", "batch_id": 3, "leaf_index": r.seq, "meter_id": "0x" + METER.hex(),
        "seq": r.seq, "timestamp": r.timestamp, "import_wh": r.import_wh,
        "export_wh": r.export_wh, "status": r.status, "key_epoch": 0, "source": "native",
        "canonical": "0x" + r.encode().hex(), "signature": "0x" + sig.hex(),
        "leaf": "0x" + "22" * 32, "proof": ["0x" + "33" * 32, "0x" + "44" * 32],
    }  # fmt: skip
    obj.update(changes)
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


@pytest.fixture
def keys() -> tuple[MeterPrivateKey, MeterPrivateKey]:
    """The meter's first key, and the key it was rotated to at ROTATED_AT."""
    first, second = generate_key(KeyAlgorithm.P256), generate_key(KeyAlgorithm.P256)
    init_worker(
        CHAIN_ID,
        {
            METER: (
                KeyEpochView(0, KeyAlgorithm.P256, encode_public_key(first.public_key()), 0, 0),
                KeyEpochView(
                    1, KeyAlgorithm.P256, encode_public_key(second.public_key()), ROTATED_AT, 0
                ),
            )
        },
    )
    return first, second


def test_a_sound_exported_line_takes_the_fast_path_and_gets_the_general_paths_answer(
    keys: tuple[MeterPrivateKey, MeterPrivateKey],
) -> None:
    first, second = keys
    for r, key in ((reading(5), first), (reading(150), second)):  # before and after rotation
        signature = sign_reading(key, r)
        raw = exported(r, signature)

        sent = _fast_path(7, [raw])[0]

        assert sent is not None and type(sent) is tuple
        fast = CheckedReading._make(sent)
        assert fast == _check_line(7, raw)
        assert fast.leaf == anchored_leaf(r.encode(), r.encode(), signature)
        assert fast.problems == () and (fast.seq, fast.import_wh) == (r.seq, r.import_wh)


def _der(signature: bytes) -> bytes:
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    return utils.encode_dss_signature(r, s)


Mutation = Callable[[Reading, bytes, tuple[MeterPrivateKey, MeterPrivateKey]], bytes]
DECLINED: dict[str, tuple[Mutation, tuple[str, ...]]] = {
    "a stated register other than the signed one": (
        lambda r, sig, _: exported(r, sig, import_wh=r.import_wh + 1),
        ("reading_fields_mismatch",),
    ),
    "a stated status other than the signed one": (
        lambda r, sig, _: exported(r, sig, status=4),
        ("reading_fields_mismatch",),
    ),
    "signed for another chain": (
        lambda r, _sig, keys: exported(reading(r.seq, 1), sign_reading(keys[0], reading(r.seq, 1))),
        ("reading_wrong_chain",),
    ),
    "a signature of other bytes": (
        lambda r, _sig, keys: exported(r, sign_reading(keys[0], reading(r.seq + 1))),
        ("reading_signature_invalid",),
    ),
    "signed by a key the meter never had": (
        lambda r, _sig, _keys: exported(r, sign_reading(generate_key(KeyAlgorithm.P256), r)),
        ("reading_signature_invalid",),
    ),
    "signed by the meter's later key before that key's epoch": (
        lambda r, _sig, keys: exported(r, sign_reading(keys[1], r)),
        ("reading_signature_invalid",),
    ),
    "a DER signature": (lambda r, sig, _: exported(r, _der(sig)), ()),
    "upper-case hex in the canonical bytes": (
        lambda r, sig, _: exported(r, sig, canonical="0x" + r.encode().hex().upper()),
        (),
    ),
    "another key order": (
        lambda r, sig, _: (
            exported(r, sig).replace(b'{"type":"reading",', b"{")[:-2] + b',"type":"reading"}\n'
        ),
        (),
    ),
}


@pytest.mark.parametrize("case", DECLINED)
def test_a_line_the_fast_path_cannot_vouch_for_gets_the_general_paths_answer(
    keys: tuple[MeterPrivateKey, MeterPrivateKey], case: str
) -> None:
    mutate, expected_codes = DECLINED[case]
    r = reading(5)
    raw = mutate(r, sign_reading(keys[0], r), keys)

    (checked,) = check_lines(7, [raw])

    assert _fast_path(7, [raw])[0] is None
    assert checked == _check_line(7, raw)
    assert isinstance(checked, CheckedReading)
    assert tuple(code for code, _ in checked.problems) == expected_codes


def test_an_upper_case_signature_gets_the_general_paths_answer_on_the_fast_path(
    keys: tuple[MeterPrivateKey, MeterPrivateKey],
) -> None:
    r = reading(5)
    signature = sign_reading(keys[0], r)
    raw = exported(r, signature, signature="0x" + signature.hex().upper())

    sent = _fast_path(7, [raw])[0]

    assert sent is not None
    assert CheckedReading._make(sent) == _check_line(7, raw)
    assert CheckedReading._make(sent).leaf == anchored_leaf(r.encode(), r.encode(), signature)


@pytest.mark.parametrize("signature", ["zz" * 64, "00" * 63 + '"x', "0" * 127 + "\\n"])
def test_a_signature_that_is_not_hex_is_left_to_the_general_path_which_refuses_the_line(
    keys: tuple[MeterPrivateKey, MeterPrivateKey], signature: str
) -> None:
    r = reading(5)
    raw = exported(r, sign_reading(keys[0], r)).replace(
        sign_reading(keys[0], r).hex().encode(), signature.encode()
    )

    assert _fast_path(7, [raw])[0] is None
    assert isinstance(_check_line(7, raw), MalformedLine)


def test_a_reading_after_its_key_was_revoked_is_named_not_passed() -> None:
    key = generate_key(KeyAlgorithm.P256)
    revoked_at = START + 3 * 900
    public = encode_public_key(key.public_key())
    init_worker(CHAIN_ID, {METER: (KeyEpochView(0, KeyAlgorithm.P256, public, 0, revoked_at),)})
    late, early = reading(3), reading(2)

    (checked_late,) = check_lines(1, [exported(late, sign_reading(key, late))])
    (checked_early,) = check_lines(2, [exported(early, sign_reading(key, early))])

    assert isinstance(checked_late, CheckedReading) and isinstance(checked_early, CheckedReading)
    assert [code for code, _ in checked_late.problems] == ["reading_key_revoked"]
    assert checked_early.problems == ()


def test_a_worker_sends_checked_readings_back_as_plain_tuples_of_the_same_values(
    keys: tuple[MeterPrivateKey, MeterPrivateKey],
) -> None:
    r = reading(5)
    lines = [exported(r, sign_reading(keys[0], r)), b'{"type":"reading"}\n']

    sent = check_chunk(1, lines)

    assert type(sent[0]) is tuple
    assert CheckedReading._make(sent[0]) == check_lines(1, lines)[0]
    assert sent[1] == check_lines(1, lines)[1]
    assert [checked[0] for checked in sent] == [1, 2]


def test_a_chunk_mixing_sound_and_declined_lines_gets_each_lines_own_answer_in_order(
    keys: tuple[MeterPrivateKey, MeterPrivateKey],
) -> None:
    # The fast path takes a chunk in passes (fields, signatures, leaves): each line's answer
    # must still be its own, whatever its neighbours are.
    lines: list[bytes] = []
    for seq, case in enumerate(DECLINED, 1):
        r = reading(seq)
        lines.append(exported(r, sign_reading(keys[0], r)))
        lines.append(DECLINED[case][0](r, sign_reading(keys[0], r), keys))
    lines.append(b'{"type":"reading"}\n')

    fast = _fast_path(10, lines)
    sent = check_chunk(10, lines)

    assert [answer is not None for answer in fast] == [True, False] * len(DECLINED) + [False]
    assert [checked[0] for checked in sent] == list(range(10, 10 + len(lines)))
    for number, (raw, checked) in enumerate(zip(lines, sent, strict=True), 10):
        expected = _check_line(number, raw)
        restored = checked if isinstance(checked, MalformedLine) else CheckedReading._make(checked)
        assert restored == expected


@pytest.mark.parametrize(
    "change",
    [
        {"import_wh": 10**19 + 5},  # 20 digits, a valid uint64
        {"export_wh": 2**64 - 1},
        {"status": 4_000_000_000},  # 10 digits, a valid uint32
    ],
)
def test_a_value_longer_than_the_fast_paths_digits_is_sound_on_the_general_path(
    keys: tuple[MeterPrivateKey, MeterPrivateKey], change: dict[str, int]
) -> None:
    r = dataclasses.replace(reading(5), **change)
    raw = exported(r, sign_reading(keys[0], r))

    (checked,) = check_chunk(7, [raw])

    assert _fast_path(7, [raw]) == [None]
    restored = CheckedReading._make(checked)
    assert restored == _check_line(7, raw)
    assert restored.problems == ()
    assert (restored.import_wh, restored.export_wh) == (r.import_wh, r.export_wh)
