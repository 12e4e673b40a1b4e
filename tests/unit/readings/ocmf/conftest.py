"""Fixtures of the OCMF record tests: one P-256 meter key per test module and its public key
as hex DER. They shadow the ingestion fixture of the same name in tests/unit/readings.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.unit.readings.ocmf.ocmf_support import der_hex


@pytest.fixture(scope="module")
def meter_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def meter_public_hex(meter_key: ec.EllipticCurvePrivateKey) -> str:
    return der_hex(meter_key.public_key())
