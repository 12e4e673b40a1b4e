"""Key codecs: every form of a meter's public key is parsed here, one parser per format.

The formats, each with its one parser:

- text: hex (`0x` optional, whitespace ignored) or base64 of the bytes below (`key_text_bytes`);
- SEC1 points of P-256 and secp256k1 (and of the other curves an OCMF record may name),
  compressed `02`/`03` x or uncompressed `04` x y, and raw `x || y` (`sec1_point`);
- raw Ed25519 keys, 32 bytes, with the point checks below (`ed25519_raw`);
- DER SubjectPublicKeyInfo of any of these (`spki_der`), and PEM (`pem_public_key`).

The registry stores one fixed encoding per algorithm (SEC1 uncompressed 0x04||x||y for the ECDSA
curves, the raw 32 bytes for Ed25519: `encode_public_key`, read back by `decode_public_key`).
Registration reads every common form a vendor hands over (`parse_public_key`) and normalises it;
an OCMF record's key (`ledger.readings.ocmf`) and ingestion's registry keys go through the same
format parsers. A format parser raises `KeyDecodeError` with the reason (`cryptography`'s own words
where it had them); each caller words its own error from it (a `MeterError` for registration, an
`OcmfBadKey` for OCMF), so the codes and messages a client sees are the caller's.

Ed25519 keys are checked beyond what `cryptography` checks: a non-canonical encoding, a point off
the curve, of small order or with a small-order component is refused (the identity point would
let any signature `R = identity, S = 0` verify).
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable
from enum import IntEnum

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ledger.errors import MeterError


class KeyAlgorithm(IntEnum):
    """Signature algorithms a meter key can use; the values are MeterRegistry's codes."""

    P256 = 0
    ED25519 = 1
    SECP256K1 = 2

    @property
    def label(self) -> str:
        return {0: "p256", 1: "ed25519", 2: "secp256k1"}[self.value]

    @classmethod
    def from_label(cls, label: str) -> KeyAlgorithm:
        for algorithm in cls:
            if algorithm.label == label.lower():
                return algorithm
        raise MeterError(f"unknown key algorithm {label!r}: use p256, ed25519 or secp256k1")


MeterPublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
MeterPrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

_CURVES = {
    KeyAlgorithm.P256: ec.SECP256R1,
    KeyAlgorithm.SECP256K1: ec.SECP256K1,
}
"""The ECDSA curve of each ECDSA algorithm a MeterRegistry key can use."""


def algorithm_of_curve(curve: ec.EllipticCurve) -> KeyAlgorithm | None:
    """The MeterRegistry algorithm of an ECDSA curve, or None when no registry key can be on it
    (OCMF names more curves than the registry holds)."""
    for algorithm, curve_type in _CURVES.items():
        if isinstance(curve, curve_type):
            return algorithm
    return None


class KeyDecodeError(Exception):
    """Bytes or text that are not a key in the format a parser reads.

    Not a `LedgerError`: every caller catches it and raises its own error, worded for its
    clients. `unsupported` is set when `cryptography` does not implement the key's algorithm or
    curve at all (rather than the bytes being wrong).
    """

    def __init__(self, reason: str, *, unsupported: bool = False) -> None:
        self.reason = reason
        self.unsupported = unsupported
        super().__init__(reason)


def generate_key(algorithm: KeyAlgorithm) -> MeterPrivateKey:
    """A new meter private key (for simulated meters and tests; real meters keep theirs inside)."""
    if algorithm is KeyAlgorithm.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(_CURVES[algorithm]())


def private_key_pem(key: MeterPrivateKey) -> bytes:
    """The private key as unencrypted PKCS#8 PEM (simulated meters and `ledger meter keygen`)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def algorithm_of(public_key: MeterPublicKey) -> KeyAlgorithm:
    """The algorithm a public key is for; other curves are refused."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return KeyAlgorithm.ED25519
    algorithm = algorithm_of_curve(public_key.curve)
    if algorithm is not None:
        return algorithm
    raise MeterError(f"unsupported curve {public_key.curve.name}: use P-256, secp256k1 or Ed25519")


def encode_public_key(public_key: MeterPublicKey) -> bytes:
    """The registry encoding of a public key."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    algorithm_of(public_key)  # refuses other curves
    return public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


# --- Ed25519 point checks ---------------------------------------------------------------------
# `cryptography` (OpenSSL) takes any 32 bytes as an Ed25519 public key and verifies cofactorless,
# so a small-order key makes signatures that verify for every message: with the identity point
# as key, R = identity and S = 0 satisfy [S]B = R + [k]A for any k. These checks follow RFC 8032
# section 5.1.3 strictly (no y >= p, no "negative zero") and then demand a point of prime order L,
# which is what every honestly generated key is (a clamped scalar times the base point).

_ED25519_P = 2**255 - 19
_ED25519_D = (-121665 * pow(121666, _ED25519_P - 2, _ED25519_P)) % _ED25519_P
_ED25519_SQRT_M1 = pow(2, (_ED25519_P - 1) // 4, _ED25519_P)
ED25519_ORDER = 2**252 + 27742317777372353535851937790883648493
"""L, the prime order of Ed25519's base point; a signature's S must be below it (RFC 8032)."""

# Extended coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, xy = T/Z: additions without inverses.
_EdPoint = tuple[int, int, int, int]
_ED25519_IDENTITY: _EdPoint = (0, 1, 1, 0)


def _ed25519_add(p: _EdPoint, q: _EdPoint) -> _EdPoint:
    # RFC 8032 section 5.1.4 (complete formulas: also right for doubling and the identity).
    m = _ED25519_P
    a = (p[1] - p[0]) * (q[1] - q[0]) % m
    b = (p[1] + p[0]) * (q[1] + q[0]) % m
    c = 2 * p[3] * q[3] * _ED25519_D % m
    d = 2 * p[2] * q[2] % m
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % m, g * h % m, f * g % m, e * h % m)


def _ed25519_multiply(scalar: int, point: _EdPoint) -> _EdPoint:
    result = _ED25519_IDENTITY
    while scalar:
        if scalar & 1:
            result = _ed25519_add(result, point)
        point = _ed25519_add(point, point)
        scalar >>= 1
    return result


def _ed25519_is_identity(point: _EdPoint) -> bool:
    return point[0] % _ED25519_P == 0 and (point[1] - point[2]) % _ED25519_P == 0


def _ed25519_x(y: int, sign: int) -> int | None:
    """The x of the curve point with this y and sign bit (RFC 8032 5.1.3), None if none."""
    m = _ED25519_P
    x2 = (y * y - 1) * pow(_ED25519_D * y * y + 1, m - 2, m) % m
    if x2 == 0:
        return 0
    x = pow(x2, (m + 3) // 8, m)
    if (x * x - x2) % m:
        x = x * _ED25519_SQRT_M1 % m
    if (x * x - x2) % m:
        return None
    return x if x & 1 == sign else m - x


def _ed25519_small_order_encodings() -> frozenset[bytes]:
    """Every 32-byte string that a lenient decoder reads as one of the 8 points of small order:
    canonical encodings, y + p where that fits in 255 bits, and either sign bit."""
    m = _ED25519_P
    order8_y = int.from_bytes(
        bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"), "little"
    )
    # y = 1: identity; y = -1: order 2; y = 0: order 4 (x = +-sqrt(-1)); +-order8_y: order 8.
    encodings = set()
    for y in (1, m - 1, 0, order8_y, m - order8_y):
        for value in (y, y + m):
            for sign in (0, 1):
                if value < 2**255:
                    encodings.add((value | sign << 255).to_bytes(32, "little"))
    return frozenset(encodings)


ED25519_SMALL_ORDER_ENCODINGS = _ed25519_small_order_encodings()
"""Encodings of Ed25519's small-order points (canonical or not): refused as keys, and as the R
of a signature."""


@functools.lru_cache(maxsize=4096)
def ed25519_key_problem(encoded: bytes) -> str | None:
    """Why these bytes are not an acceptable Ed25519 public key, or None when they are.

    Refused: not 32 bytes, y >= p or x = 0 with the sign bit set (non-canonical), no curve point
    with that y, a small-order point, and a point with a small-order component (not in the
    subgroup of order L). Cached: a scalar multiplication costs about a millisecond.
    """
    if len(encoded) != 32:
        return f"an Ed25519 public key is 32 bytes, not {len(encoded)}"
    value = int.from_bytes(encoded, "little")
    y, sign = value & (2**255 - 1), value >> 255
    if y >= _ED25519_P:
        return "non-canonical Ed25519 encoding (y >= p)"
    x = _ed25519_x(y, sign)
    if x is None:
        return "not a point on Ed25519"
    if x == 0 and sign:
        return "non-canonical Ed25519 encoding (x = 0 with the sign bit set)"
    if encoded in ED25519_SMALL_ORDER_ENCODINGS:
        return "an Ed25519 point of small order (such a key lets forged signatures verify)"
    point = (x, y, 1, x * y % _ED25519_P)
    if not _ed25519_is_identity(_ed25519_multiply(ED25519_ORDER, point)):
        return "an Ed25519 point with a small-order component (not of prime order L)"
    return None


# --- the format parsers ------------------------------------------------------------------------


def key_text_bytes(text: str) -> bytes:
    """The bytes of a key given as text: hex (`0x` optional) or base64, whitespace ignored.

    Raises:
        KeyDecodeError: neither hex nor base64.
    """
    compact = "".join(text.split())
    digits = compact[2:] if compact[:2] in ("0x", "0X") else compact
    try:
        # a2b_hex refuses an odd length and anything but ASCII hex digits.
        return binascii.a2b_hex(digits)
    except ValueError:
        pass
    try:
        # Base64 of a DER key starts with "M": never a string of hex digits, so no ambiguity.
        return base64.b64decode(compact, validate=True)
    except ValueError:  # binascii.Error, or text that is not ASCII
        raise KeyDecodeError("neither hex nor base64") from None


def sec1_point(curve: ec.EllipticCurve, data: bytes) -> ec.EllipticCurvePublicKey:
    """A SEC1 point on `curve`, compressed (`02`/`03` x) or uncompressed (`04` x y).

    Raises:
        KeyDecodeError: not a point on the curve (or the point at infinity); `unsupported` when
            this OpenSSL does not implement the curve.
    """
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, data)
    except UnsupportedAlgorithm as error:
        raise KeyDecodeError(str(error), unsupported=True) from None
    except ValueError as error:
        raise KeyDecodeError(str(error)) from None


def raw_xy_point(curve: ec.EllipticCurve, data: bytes) -> ec.EllipticCurvePublicKey:
    """A point given as raw `x || y` (the bytes do not say the curve: the caller does)."""
    return sec1_point(curve, b"\x04" + data)


def ed25519_raw(data: bytes) -> ed25519.Ed25519PublicKey:
    """A raw 32-byte Ed25519 key, refused when weak (`ed25519_key_problem`).

    Raises:
        KeyDecodeError: not an acceptable Ed25519 key.
    """
    problem = ed25519_key_problem(bytes(data))
    if problem is not None:
        raise KeyDecodeError(problem)
    try:
        return ed25519.Ed25519PublicKey.from_public_bytes(data)
    except ValueError as error:
        raise KeyDecodeError(str(error)) from None


def spki_der(data: bytes) -> object:
    """The key of a DER SubjectPublicKeyInfo, of whatever type it is (the caller checks).

    Raises:
        KeyDecodeError: not DER SubjectPublicKeyInfo; `unsupported` for an algorithm or curve
            this OpenSSL does not implement.
    """
    return _load(serialization.load_der_public_key, data)


def pem_public_key(data: bytes) -> object:
    """The key of a PEM `PUBLIC KEY`, of whatever type it is (the caller checks).

    Raises:
        KeyDecodeError: as `spki_der`.
    """
    return _load(serialization.load_pem_public_key, data)


def _load(loader: Callable[[bytes], object], data: bytes) -> object:
    try:
        return loader(data)
    except UnsupportedAlgorithm as error:
        raise KeyDecodeError(str(error), unsupported=True) from None
    except ValueError as error:
        raise KeyDecodeError(str(error)) from None


# --- the registry encoding and registration's forms --------------------------------------------


def decode_public_key(algorithm: KeyAlgorithm, encoded: bytes) -> MeterPublicKey:
    """Parses a registry-encoded key; raises MeterError if it is not a valid point/key."""
    try:
        if algorithm is KeyAlgorithm.ED25519:
            return ed25519_raw(encoded)
        return sec1_point(_CURVES[algorithm](), encoded)
    except KeyDecodeError as error:
        raise MeterError(f"not a valid {algorithm.label} public key: {error.reason}") from None


def load_public_key(data: bytes) -> MeterPublicKey:
    """Reads a public key from PEM (public or private key) or DER SubjectPublicKeyInfo.

    Raises:
        MeterError: none of these, a key of another type than ECDSA or Ed25519, or of an
            algorithm or curve `cryptography` does not know.
    """
    loaders: tuple[Callable[[bytes], object], ...] = (pem_public_key, _pem_private_key, spki_der)
    for loader in loaders:
        try:
            key = loader(data)
        except KeyDecodeError as error:
            if error.unsupported:
                raise MeterError(f"unsupported public key: {error.reason}") from None
            continue
        if isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            algorithm_of(key)
            return key
        raise MeterError(f"unsupported key type {type(key).__name__}")
    raise MeterError("could not read a public key (expected PEM or DER)")


def _pem_private_key(data: bytes) -> object:
    """The public half of an unencrypted PEM private key (a file `ledger meter keygen` wrote)."""
    try:
        return serialization.load_pem_private_key(data, password=None).public_key()
    except UnsupportedAlgorithm as error:
        raise KeyDecodeError(str(error), unsupported=True) from None
    except (TypeError, ValueError) as error:  # TypeError: encrypted, a password would be needed
        raise KeyDecodeError(str(error)) from None


def parse_public_key(
    data: str | bytes,
    algorithm: KeyAlgorithm | str | None = None,
    *,
    allow_private: bool = False,
) -> MeterPublicKey:
    """Reads a meter's public key in any of the forms registration accepts, checked as a point.

    Text forms (whitespace is ignored, `0x` is optional on hex):

    - PEM: `-----BEGIN PUBLIC KEY-----` (a private key only with `allow_private`, for a file the
      registrar made with `ledger meter keygen`; never over HTTP);
    - hex or base64 of the bytes below.

    Byte forms, told apart by length (no DER key of these curves has one of these lengths):

    - 32 bytes: a raw Ed25519 key;
    - 33 bytes (`02`/`03` x) or 65 bytes (`04` x y): a SEC1 point, compressed or not;
    - 64 bytes: raw `x || y` (P-256 or secp256k1, `algorithm` required: the bytes do not say);
    - anything else: DER SubjectPublicKeyInfo (the curve comes from the key).

    A SEC1 point without `algorithm` is read as P-256. When `algorithm` is given, the key must be
    one of it. The result is normalised by `encode_public_key` (SEC1 uncompressed, raw Ed25519).

    Raises:
        MeterError: none of these forms, another algorithm than `algorithm`, a private key, a
            point off its curve or at infinity, or a weak Ed25519 key (`ed25519_key_problem`).
    """
    wanted = KeyAlgorithm.from_label(algorithm) if isinstance(algorithm, str) else algorithm
    if isinstance(data, bytes) and not data.lstrip().startswith(b"-----BEGIN"):
        raw = data  # a binary DER (or raw) key file
    else:
        text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
        if text.lstrip().startswith("-----BEGIN"):
            return _checked(_pem_key(text, allow_private), wanted)
        raw = _key_text_bytes(text)
    return _checked(_key_from_raw(raw, wanted), wanted)


def _pem_key(text: str, allow_private: bool) -> MeterPublicKey:
    if "PRIVATE KEY" in text and not allow_private:
        raise MeterError("send the meter's public key: its private key never leaves the meter")
    return load_public_key(text.encode())


def _key_text_bytes(text: str) -> bytes:
    try:
        return key_text_bytes(text)
    except KeyDecodeError:
        raise MeterError(
            "public_key is neither PEM, hex nor base64 (SEC1 point, raw x||y, raw Ed25519 key "
            "or DER SubjectPublicKeyInfo)"
        ) from None


def _key_from_raw(raw: bytes, wanted: KeyAlgorithm | None) -> MeterPublicKey:
    if len(raw) == 32:
        return decode_public_key(wanted or KeyAlgorithm.ED25519, raw)
    if len(raw) in (33, 65) and raw[:1] in (b"\x02", b"\x03", b"\x04"):
        if wanted is KeyAlgorithm.ED25519:
            raise MeterError(f"a {len(raw)}-byte SEC1 point is not an ed25519 key")
        return decode_public_key(wanted or KeyAlgorithm.P256, raw)
    if len(raw) == 64:
        if wanted is None or wanted is KeyAlgorithm.ED25519:
            raise MeterError(
                "a 64-byte key is raw x||y of an ECDSA point: give its algorithm (p256 or "
                "secp256k1)"
            )
        return decode_public_key(wanted, b"\x04" + raw)
    try:
        key = spki_der(raw)
    except KeyDecodeError as error:
        if error.unsupported:
            raise MeterError(f"unsupported public key: {error.reason}") from None
        raise MeterError(
            f"a {len(raw)}-byte key is not a SEC1 point, raw x||y, a raw Ed25519 key or DER "
            f"SubjectPublicKeyInfo: {error.reason}"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise MeterError(f"unsupported key type {type(key).__name__}")
    return key


def _checked(key: MeterPublicKey, wanted: KeyAlgorithm | None) -> MeterPublicKey:
    """The key re-read from its registry encoding, so every form gets the same point checks."""
    algorithm = algorithm_of(key)
    if wanted is not None and algorithm is not wanted:
        raise MeterError(f"the key is {algorithm.label}, not {wanted.label}")
    return decode_public_key(algorithm, encode_public_key(key))
