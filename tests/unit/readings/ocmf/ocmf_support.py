"""What the OCMF record tests share: a payload like the specification's example, and records
built from it, signed or not (the meter's key is a fixture in conftest.py).
"""

from __future__ import annotations

import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

# The order n of the P-256 group: (r, n - s) is the other valid signature for (r, s).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
BEGIN = (
    '{"TM":"2018-07-24T13:22:04,000+0200 S","TX":"B","RV":2935.6,'
    '"RI":"1-b:1.8.0","RU":"kWh","RT":"DC","EF":"","ST":"G"}'
)
END = (
    '{"TM":"2018-07-24T13:26:04,000+0200 S","TX":"E","RV":2965.1,'
    '"RI":"1-b:1.8.0","RU":"kWh","RT":"DC","EF":"","ST":"G"}'
)


def payload(*readings: str, extra: str = "") -> str:
    """A payload like the OCMF specification's example, with the given `RD` entries."""
    return (
        '{"FV":"1.0","GI":"ABL SBC-301","GS":"808829900001","PG":"T12345","MS":"BQ27400330016",'
        f'"IS":true,"IT":"ISO14443","ID":"1F2D3A4F5506C7"{extra},"RD":[{",".join(readings)}]}}'
    )


def unsigned(payload_text: str, signature: str = '{"SD":"3006020101020101"}') -> str:
    """A record whose signature is syntactically fine but not checked."""
    return f"OCMF|{payload_text}|{signature}"


def signed(
    payload_text: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    algorithm: str | None = None,
    digest: hashes.HashAlgorithm | None = None,
) -> str:
    """`OCMF|payload|{"SA":..,"SD":hex DER}` signed over the payload's exact UTF-8 bytes."""
    der = key.sign(payload_text.encode(), ec.ECDSA(digest or hashes.SHA256()))
    section = {"SA": algorithm, "SD": der.hex().upper()} if algorithm else {"SD": der.hex()}
    return f"OCMF|{payload_text}|{json.dumps(section)}"


def value_of(raw_value: str, unit: str = "kWh", obis: str = "1-0:1.8.0") -> str:
    """A record holding one reading with `RV` written exactly as `raw_value`."""
    reading = (
        f'{{"TM":"2021-10-06T13:13:56,000+0200 S","TX":"B","RV":{raw_value},'
        f'"RI":"{obis}","RU":"{unit}","ST":"G"}}'
    )
    return unsigned(payload(reading))


def der_hex(public: ec.EllipticCurvePublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ).hex()
