"""The worked test vector in docs/reading-format.md is what the code produces."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import coincurve
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ledger.meters.keys import KeyAlgorithm, MeterPrivateKey
from ledger.readings.native import (
    DOMAIN_TAG,
    Reading,
    anchored_leaf,
    decode,
    digest,
    reading_leaf,
    sign_canonical,
    verify_reading_signature,
)
from tests.unit.readings.native_support import ALGORITHMS, public_bytes

DOC = Path(__file__).resolve().parents[3] / "docs" / "reading-format.md"


def doc_vector() -> tuple[dict[str, str], bytes]:
    """The `name = value` lines and the canonical words of the doc's worked test vector."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Worked test vector") :]
    values: dict[str, str] = {}
    words: list[tuple[int, str]] = []
    for line in section.splitlines():
        if match := re.fullmatch(r"([a-z0-9_.]+)\s*=\s*(\S+)", line.strip()):
            assert match[1] not in values, f"{match[1]} given twice in the doc"
            values[match[1]] = match[2]
        elif match := re.fullmatch(r"0x([0-9a-f]{2}) ([0-9a-f]{64})", line.strip()):
            words.append((int(match[1], 16), match[2]))
    assert [offset for offset, _ in words] == list(range(0, 256, 32)), "canonical words"
    return values, bytes.fromhex("".join(hex_word for _, hex_word in words))


def hex_value(values: dict[str, str], name: str) -> bytes:
    value = values[name]
    assert value.startswith("0x"), f"{name} is written 0x-prefixed in the doc"
    return bytes.fromhex(value[2:])


def doc_reading(values: dict[str, str]) -> Reading:
    return Reading(
        chain_id=int(values["chain_id"]),
        meter_id=hex_value(values, "meter_id"),
        seq=int(values["seq"]),
        timestamp=int(values["timestamp"]),
        import_wh=int(values["import_wh"]),
        export_wh=int(values["export_wh"]),
        status=int(values["status"]),
    )


def doc_private_key(values: dict[str, str], algorithm: KeyAlgorithm) -> MeterPrivateKey:
    secret = hex_value(values, f"{algorithm.label}.private_key")
    assert len(secret) == 32
    if algorithm is KeyAlgorithm.ED25519:
        return ed25519.Ed25519PrivateKey.from_private_bytes(secret)
    curve = ec.SECP256R1() if algorithm is KeyAlgorithm.P256 else ec.SECP256K1()
    return ec.derive_private_key(int.from_bytes(secret, "big"), curve)


def test_doc_states_the_domain_tag_the_code_uses() -> None:
    text = DOC.read_text(encoding="utf-8")
    stated = re.findall(r"DOMAIN_TAG = keccak256\(\"([^\"]+)\"\)\s+= 0x([0-9a-f]{64})", text)
    assert stated == [("EnergyLedger.Reading.v1", DOMAIN_TAG.hex())]


def test_doc_vector_canonical_bytes_digest_and_leaf_are_what_the_code_produces() -> None:
    values, canonical = doc_vector()
    r = doc_reading(values)
    assert r.encode() == canonical
    assert decode(canonical) == r
    assert r.meter_id.rstrip(b"\x00") == b"EL-VECTOR-0001"
    assert digest(canonical) == hex_value(values, "sha256_digest")
    assert reading_leaf(canonical) == hex_value(values, "merkle_leaf")


def test_doc_vector_version_2_leaf_is_what_the_code_produces() -> None:
    values, canonical = doc_vector()
    signature = hex_value(values, "p256.signature")
    leaf = anchored_leaf(canonical, canonical, signature)
    assert leaf == hex_value(values, "p256.merkle_leaf_v2")


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.label)
def test_doc_vector_keys_and_signatures_are_what_the_code_produces(
    algorithm: KeyAlgorithm,
) -> None:
    values, canonical = doc_vector()
    key = doc_private_key(values, algorithm)
    public_key = hex_value(values, f"{algorithm.label}.public_key")
    signature = hex_value(values, f"{algorithm.label}.signature")
    assert public_bytes(key) == public_key
    assert sign_canonical(key, canonical) == signature
    verify_reading_signature(algorithm, public_key, canonical, signature)


def test_doc_vector_secp256k1_signature_matches_libsecp256k1() -> None:
    # An independent implementation (libsecp256k1 via coincurve, RFC 6979 nonces) agrees.
    values, canonical = doc_vector()
    key = coincurve.PrivateKey(hex_value(values, "secp256k1.private_key"))
    assert key.public_key.format(compressed=False) == hex_value(values, "secp256k1.public_key")
    recoverable = key.sign_recoverable(hashlib.sha256(canonical).digest(), hasher=None)
    assert recoverable[:64] == hex_value(values, "secp256k1.signature")
