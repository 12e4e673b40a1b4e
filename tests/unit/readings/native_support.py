"""What the native reading tests share: a reading with defaults, the key algorithms and
their curve orders, and small encoders.
"""

from __future__ import annotations

from ledger.meters.keys import KeyAlgorithm, MeterPrivateKey, encode_public_key
from ledger.readings.native import Reading

METER = b"MTR-0001".ljust(32, b"\x00")
ALGORITHMS = [KeyAlgorithm.P256, KeyAlgorithm.ED25519, KeyAlgorithm.SECP256K1]
ECDSA_ALGORITHMS = [KeyAlgorithm.P256, KeyAlgorithm.SECP256K1]
CURVE_ORDER = {
    KeyAlgorithm.P256: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    KeyAlgorithm.SECP256K1: 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
}


def reading(**changes: int | bytes) -> Reading:
    fields: dict[str, int | bytes] = {
        "chain_id": 1337,
        "meter_id": METER,
        "seq": 7,
        "timestamp": 1_700_000_000,
        "import_wh": 12_345,
        "export_wh": 678,
        "status": 0,
    }
    fields.update(changes)
    return Reading(**fields)  # type: ignore[arg-type]


def word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def public_bytes(key: MeterPrivateKey) -> bytes:
    return encode_public_key(key.public_key())
