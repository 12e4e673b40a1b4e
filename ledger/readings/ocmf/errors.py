"""The errors of OCMF parsing, verification and mapping (the tree is in the package docstring)."""

from __future__ import annotations

from ledger.errors import LedgerError


class OcmfError(LedgerError):
    """Root of every OCMF error."""

    code = "ocmf_error"
    http_status = 422


class OcmfMalformed(OcmfError):
    """The record is not `OCMF|{payload}|{signature}` with valid JSON and signature data."""

    code = "ocmf_malformed"

    def __init__(self, *, reason: str) -> None:
        self.reason = reason
        super().__init__(f"malformed OCMF record: {reason}")


class OcmfBadValue(OcmfError):
    """A reading's value, unit or time cannot be used."""

    code = "ocmf_bad_value"

    def __init__(self, *, index: int, name: str, value: object, reason: str) -> None:
        self.index = index
        self.field = name
        self.value = value
        self.reason = reason
        super().__init__(f"OCMF reading {index}: {name} {value!r} {reason}")


class OcmfUnsupportedAlgorithm(OcmfError):
    """`SA` names a signature method this verifier does not implement."""

    code = "ocmf_unsupported_algorithm"

    def __init__(self, *, algorithm: str, reason: str) -> None:
        self.algorithm = algorithm
        super().__init__(f"OCMF signature algorithm {algorithm!r} is not supported: {reason}")


class OcmfUnsupportedCurve(OcmfError):
    """The curve named by `SA` (or the key's curve) cannot be verified here; never accepted."""

    code = "ocmf_unsupported_curve"

    def __init__(self, *, curve: str, reason: str) -> None:
        self.curve = curve
        super().__init__(f"OCMF curve {curve} is not supported: {reason}")


class OcmfBadKey(OcmfError):
    """The public key cannot be decoded, or is not on the curve that `SA` names."""

    code = "ocmf_bad_key"

    def __init__(self, *, reason: str) -> None:
        self.reason = reason
        super().__init__(f"OCMF public key is unusable: {reason}")


class OcmfBadSignature(OcmfError):
    """The signature does not verify over the payload bytes with the given key."""

    code = "ocmf_bad_signature"

    def __init__(self, *, algorithm: str, reason: str) -> None:
        self.algorithm = algorithm
        self.reason = reason
        super().__init__(f"OCMF signature ({algorithm}) is invalid: {reason}")


class OcmfUnmappable(OcmfError):
    """A valid OCMF record that does not describe one ledger reading (no `MS`, no `T` counter,
    no import or export value, ...)."""

    code = "ocmf_unmappable"

    def __init__(self, *, reason: str) -> None:
        self.reason = reason
        super().__init__(f"OCMF record cannot be mapped onto a ledger reading: {reason}")
