"""The OCMF errors: ledger errors with stable codes, and messages that name what went wrong."""

from __future__ import annotations

import pytest

from ledger.errors import LedgerError
from ledger.readings.ocmf.errors import (
    OcmfBadKey,
    OcmfBadSignature,
    OcmfBadValue,
    OcmfError,
    OcmfMalformed,
    OcmfUnsupportedAlgorithm,
    OcmfUnsupportedCurve,
)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (OcmfError, "ocmf_error"),
        (OcmfMalformed, "ocmf_malformed"),
        (OcmfBadValue, "ocmf_bad_value"),
        (OcmfUnsupportedAlgorithm, "ocmf_unsupported_algorithm"),
        (OcmfUnsupportedCurve, "ocmf_unsupported_curve"),
        (OcmfBadKey, "ocmf_bad_key"),
        (OcmfBadSignature, "ocmf_bad_signature"),
    ],
)
def test_every_ocmf_error_is_a_ledger_error_with_a_stable_code(
    error: type[OcmfError], code: str
) -> None:
    assert issubclass(error, OcmfError)
    assert issubclass(error, LedgerError)
    assert error.code == code


def test_error_messages_name_what_went_wrong() -> None:
    assert str(OcmfMalformed(reason="x")) == "malformed OCMF record: x"
    bad = OcmfBadValue(index=2, name="RV", value="1.5 Wh", reason="is not whole")
    assert str(bad) == "OCMF reading 2: RV '1.5 Wh' is not whole"
    assert (bad.index, bad.field, bad.value) == (2, "RV", "1.5 Wh")
