"""Checking an OCMF record's ECDSA signature (`SA`) over its exact payload bytes, with the
record's public key read by the key codecs of `ledger.meters.keys`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ledger.meters.keys import (
    KeyDecodeError,
    key_text_bytes,
    pem_public_key,
    raw_xy_point,
    sec1_point,
    spki_der,
)
from ledger.readings.ocmf.errors import (
    OcmfBadKey,
    OcmfBadSignature,
    OcmfUnsupportedAlgorithm,
    OcmfUnsupportedCurve,
)
from ledger.readings.ocmf.record import OcmfRecord

_SIGNATURE_ALGORITHM = re.compile(r"ECDSA-(?P<curve>[A-Za-z0-9]+)-(?P<hash>SHA[0-9]+)", re.ASCII)


@dataclass(frozen=True)
class SignatureMethod:
    """What `SA` resolves to: curve, coordinate size in bytes, hash."""

    identifier: str
    curve: ec.EllipticCurve
    coordinate_size: int
    hash: hashes.HashAlgorithm


PublicKeyInput = str | bytes | ec.EllipticCurvePublicKey

# OCMF curve names (table "Signature methods", plus OpenSSL's spelling of brainpool).
_CURVES: Final[dict[str, tuple[type[ec.EllipticCurve], int]]] = {
    "secp192r1": (ec.SECP192R1, 24),
    "secp256r1": (ec.SECP256R1, 32),
    "secp256k1": (ec.SECP256K1, 32),
    "secp384r1": (ec.SECP384R1, 48),
    "brainpool256r1": (ec.BrainpoolP256R1, 32),
    "brainpoolP256r1": (ec.BrainpoolP256R1, 32),
    "brainpool384r1": (ec.BrainpoolP384R1, 48),
    "brainpoolP384r1": (ec.BrainpoolP384R1, 48),
}
# Named by OCMF but not implemented by OpenSSL, hence not by `cryptography`: refused, never
# accepted, never verified by hand-written curve arithmetic.
_UNIMPLEMENTED_CURVES: Final = {
    "secp192k1": "OpenSSL (and so the `cryptography` package) does not implement secp192k1",
}
_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}


def verify_ocmf(record: OcmfRecord, public_key: PublicKeyInput) -> None:
    """Check the record's signature over its exact payload bytes.

    ECDSA signatures are malleable: if (r, s) verifies, so does (r, n - s). Deduplicate records
    on (meter, pagination), never on signature bytes.

    Args:
        record: from `parse_ocmf`.
        public_key: text (hex or base64 DER SubjectPublicKeyInfo, hex with spaces, raw hex
            `x||y`, hex SEC1 point, PEM), the same as binary bytes, or a key object.

    Raises:
        OcmfUnsupportedAlgorithm: `SA` is not ECDSA-<curve>-SHA256/384/512.
        OcmfUnsupportedCurve: the curve is secp192k1, unknown, or missing from this OpenSSL.
        OcmfBadKey: the key cannot be decoded or is on another curve than `SA` names.
        OcmfBadSignature: `SD` is neither DER nor r||s, or the signature does not verify.
    """
    method = signature_method(record.signature.algorithm)
    key = load_ocmf_public_key(public_key, method)
    r, s = _signature_numbers(record.signature.data, method)
    try:
        key.verify(encode_dss_signature(r, s), record.payload_bytes, ec.ECDSA(method.hash))
    except InvalidSignature:
        raise OcmfBadSignature(
            algorithm=method.identifier, reason="it does not match the payload and the key"
        ) from None
    except ValueError as error:
        raise OcmfBadSignature(algorithm=method.identifier, reason=str(error)) from None


def signature_method(algorithm: str) -> SignatureMethod:
    """Resolve an `SA` value such as `ECDSA-secp256r1-SHA256`.

    Raises:
        OcmfUnsupportedAlgorithm: not ECDSA, or a hash other than SHA256/384/512.
        OcmfUnsupportedCurve: secp192k1 or an unknown curve.
    """
    match = _SIGNATURE_ALGORITHM.fullmatch(algorithm)
    if match is None:
        raise OcmfUnsupportedAlgorithm(
            algorithm=algorithm, reason="expected ECDSA-<curve>-<hash>, e.g. ECDSA-secp256r1-SHA256"
        )
    curve_name, hash_name = match["curve"], match["hash"]
    if curve_name in _UNIMPLEMENTED_CURVES:
        raise OcmfUnsupportedCurve(curve=curve_name, reason=_UNIMPLEMENTED_CURVES[curve_name])
    if curve_name not in _CURVES:
        raise OcmfUnsupportedCurve(
            curve=curve_name, reason="unknown curve; known: " + ", ".join(sorted(_CURVES))
        )
    if hash_name not in _HASHES:
        raise OcmfUnsupportedAlgorithm(
            algorithm=algorithm, reason="the hash must be SHA256, SHA384 or SHA512"
        )
    curve_type, size = _CURVES[curve_name]
    return SignatureMethod(
        identifier=algorithm, curve=curve_type(), coordinate_size=size, hash=_HASHES[hash_name]()
    )


def load_ocmf_public_key(
    public_key: PublicKeyInput, method: SignatureMethod
) -> ec.EllipticCurvePublicKey:
    """Decode an OCMF public key and check that it lies on the curve `method` names.

    Raises:
        OcmfBadKey: undecodable, not an EC key, not on the curve, or on another curve.
        OcmfUnsupportedCurve: a DER key on a curve this OpenSSL does not implement.
    """
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        key = public_key
    elif isinstance(public_key, str) and "-----BEGIN" in public_key:
        key = _checked_ec_key(_load(pem_public_key, public_key.encode()))
    else:
        data = _key_bytes(public_key) if isinstance(public_key, str) else bytes(public_key)
        key = _key_from_bytes(data, method)
    if key.curve.name != method.curve.name:
        raise OcmfBadKey(
            reason=f"the key is on {key.curve.name} but the signature algorithm "
            f"{method.identifier} needs {method.curve.name}"
        )
    return key


def _key_bytes(text: str) -> bytes:
    try:
        return key_text_bytes(text)
    except KeyDecodeError:
        raise OcmfBadKey(reason="the key text is neither hex nor base64") from None


def _key_from_bytes(data: bytes, method: SignatureMethod) -> ec.EllipticCurvePublicKey:
    size = method.coordinate_size
    try:
        if len(data) == 2 * size:
            return raw_xy_point(method.curve, data)
        if (len(data) == 2 * size + 1 and data[:1] == b"\x04") or (
            len(data) == size + 1 and data[:1] in (b"\x02", b"\x03")
        ):
            return sec1_point(method.curve, data)  # uncompressed or compressed
    except KeyDecodeError as error:
        if error.unsupported:
            raise OcmfUnsupportedCurve(curve=method.curve.name, reason=error.reason) from None
        raise OcmfBadKey(reason=f"not a point on {method.curve.name}: {error.reason}") from None
    return _checked_ec_key(_load(spki_der, data))


def _load(parser: Callable[[bytes], object], data: bytes) -> object:
    """A DER or PEM SubjectPublicKeyInfo key, with OCMF's errors."""
    try:
        return parser(data)
    except KeyDecodeError as error:
        if error.unsupported:
            raise OcmfUnsupportedCurve(curve="of the public key", reason=error.reason) from None
        raise OcmfBadKey(
            reason="not DER/PEM SubjectPublicKeyInfo, raw x||y or a SEC1 point of the right "
            f"length ({len(data)} bytes): {error.reason}"
        ) from None


def _checked_ec_key(key: object) -> ec.EllipticCurvePublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise OcmfBadKey(reason=f"not an elliptic-curve key ({type(key).__name__})")
    return key


def _signature_numbers(data: bytes, method: SignatureMethod) -> tuple[int, int]:
    try:
        return decode_dss_signature(data)
    except ValueError:
        pass
    size = method.coordinate_size
    if len(data) == 2 * size:  # raw r||s, as some meters send despite SM
        return int.from_bytes(data[:size], "big"), int.from_bytes(data[size:], "big")
    raise OcmfBadSignature(
        algorithm=method.identifier,
        reason=f"SD is neither DER nor r||s ({len(data)} bytes, r||s needs {2 * size})",
    )


def ocmf_signature_form(record: OcmfRecord) -> bytes:
    """The record's signature in the one form a version-2 reading leaf commits to: r || s, each
    the curve's coordinate size (64 bytes on P-256 and secp256k1), for a SHA-256 digest; for
    another digest the hash's name follows (`r || s || b"SHA384"`), so the form says it cannot be
    checked on chain, whose only digest is SHA-256 (docs/reading-format.md).

    Call it on a record whose signature verified (`verify_ocmf`).
    """
    method = signature_method(record.signature.algorithm)
    r, s = _signature_numbers(record.signature.data, method)
    size = method.coordinate_size
    form = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if method.hash.name != "sha256":
        form += method.hash.name.upper().encode()
    return form
