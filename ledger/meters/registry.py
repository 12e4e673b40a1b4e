"""Meter identities: ids, public keys, and the MeterRegistry calls that manage them.

Meter ids are bytes32 on chain. A meter's serial number (printable, at most 32 bytes) is used as
its id, right-padded with zero bytes, so the id reads back as the serial; a 0x-prefixed 64-digit
hex string is taken as the raw id.

Public keys are stored in one fixed encoding per algorithm (SEC1 uncompressed 0x04||x||y for the
ECDSA curves, the raw 32 bytes for Ed25519), parsed and checked with `cryptography`. Registration
reads the common forms a vendor or an OCMF record hands over (`parse_public_key`: PEM, DER
SubjectPublicKeyInfo as hex or base64, SEC1 points compressed or not, raw x||y, raw Ed25519) and
normalises them to that encoding. Ed25519 keys are checked beyond what `cryptography` checks: a
non-canonical encoding, a point off the curve, of small order or with a small-order component is
refused (the identity point would let any signature `R = identity, S = 0` verify).

Times: a key's `valid_from` may lie far in the past (an old record imported) but at most
`MAX_VALID_FROM_AHEAD_S` ahead of now; times read back from the chain (any uint64) are shown in
UTC only up to the end of year 9999 (`LATEST_UTC_TIME`), as Unix seconds beyond.
"""

from __future__ import annotations

import base64
import binascii
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.errors import MeterError
from ledger.store.database import Store
from ledger.store.readings import StoredReading

# How far ahead a rotation without an explicit start takes effect.
ROTATION_MARGIN_S = 5

MAX_VALID_FROM_AHEAD_S = 10 * 366 * 86_400
"""How far ahead of now a key's `valid_from` may be set through the gateway or the CLI (about ten
years): a meter's key is not scheduled further ahead, and a typo of a few digits would otherwise
leave the meter without a usable key for centuries."""

LATEST_UTC_TIME = 253_402_300_799
"""9999-12-31T23:59:59Z, the last second an ISO 8601 UTC string (and Python's datetime) can show.
The registry holds any uint64; a later time is shown as Unix seconds with a null UTC string."""

UINT64_MAX = 2**64 - 1


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


def meter_id_bytes(meter_id: str) -> bytes:
    """The bytes32 id for a meter serial (or a 0x-prefixed 32-byte hex id)."""
    if meter_id.startswith("0x") and len(meter_id) == 66:
        try:
            return bytes.fromhex(meter_id[2:])
        except ValueError as error:
            raise MeterError(f"meter id {meter_id!r} is not valid hex") from error
    raw = meter_id.encode("utf-8")
    if not raw or len(raw) > 32 or not meter_id.isprintable() or "\x00" in meter_id:
        raise MeterError(
            f"meter id {meter_id!r} must be 1-32 printable bytes, or 0x followed by 64 hex digits"
        )
    return raw.ljust(32, b"\x00")


def meter_id_text(raw: bytes) -> str:
    """The readable form of a bytes32 meter id (the serial when it is one)."""
    stripped = raw.rstrip(b"\x00")
    try:
        text = stripped.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + raw.hex()
    if text and text.isprintable() and b"\x00" not in stripped:
        return text
    return "0x" + raw.hex()


def generate_key(algorithm: KeyAlgorithm) -> MeterPrivateKey:
    """A new meter private key (for simulated meters and tests; real meters keep theirs inside)."""
    if algorithm is KeyAlgorithm.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    curve = ec.SECP256R1() if algorithm is KeyAlgorithm.P256 else ec.SECP256K1()
    return ec.generate_private_key(curve)


def private_key_pem(key: MeterPrivateKey) -> bytes:
    """The private key as unencrypted PKCS#8 PEM (simulated meters and `ledger meter keygen`)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def algorithm_of(public_key: MeterPublicKey) -> KeyAlgorithm:
    """The algorithm a public key is for; other curves are refused."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return KeyAlgorithm.ED25519
    if isinstance(public_key.curve, ec.SECP256R1):
        return KeyAlgorithm.P256
    if isinstance(public_key.curve, ec.SECP256K1):
        return KeyAlgorithm.SECP256K1
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


def decode_public_key(algorithm: KeyAlgorithm, encoded: bytes) -> MeterPublicKey:
    """Parses a registry-encoded key; raises MeterError if it is not a valid point/key."""
    try:
        if algorithm is KeyAlgorithm.ED25519:
            problem = ed25519_key_problem(bytes(encoded))
            if problem is not None:
                raise MeterError(f"not a valid ed25519 public key: {problem}")
            return ed25519.Ed25519PublicKey.from_public_bytes(encoded)
        curve = ec.SECP256R1() if algorithm is KeyAlgorithm.P256 else ec.SECP256K1()
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, encoded)
    except ValueError as error:
        raise MeterError(f"not a valid {algorithm.label} public key: {error}") from error


def load_public_key(data: bytes) -> MeterPublicKey:
    """Reads a public key from PEM (public or private key) or DER SubjectPublicKeyInfo."""
    loaders: tuple[Callable[[], object], ...] = (
        lambda: serialization.load_pem_public_key(data),
        lambda: serialization.load_pem_private_key(data, password=None).public_key(),
        lambda: serialization.load_der_public_key(data),
    )
    for loader in loaders:
        try:
            key = loader()
        except (ValueError, TypeError):
            continue
        if isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            algorithm_of(key)
            return key
        raise MeterError(f"unsupported key type {type(key).__name__}")
    raise MeterError("could not read a public key (expected PEM or DER)")


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
    try:
        return load_public_key(text.encode())
    except UnsupportedAlgorithm as error:  # a curve `cryptography` does not know at all
        raise MeterError(f"unsupported public key: {error}") from error


def _key_text_bytes(text: str) -> bytes:
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
    except (binascii.Error, ValueError):
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
        key = serialization.load_der_public_key(raw)
    except UnsupportedAlgorithm as error:
        raise MeterError(f"unsupported public key: {error}") from error
    except ValueError as error:
        raise MeterError(
            f"a {len(raw)}-byte key is not a SEC1 point, raw x||y, a raw Ed25519 key or DER "
            f"SubjectPublicKeyInfo: {error}"
        ) from error
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise MeterError(f"unsupported key type {type(key).__name__}")
    return key


def _checked(key: MeterPublicKey, wanted: KeyAlgorithm | None) -> MeterPublicKey:
    """The key re-read from its registry encoding, so every form gets the same point checks."""
    algorithm = algorithm_of(key)
    if wanted is not None and algorithm is not wanted:
        raise MeterError(f"the key is {algorithm.label}, not {wanted.label}")
    return decode_public_key(algorithm, encode_public_key(key))


def check_valid_from(valid_from: int, now: int) -> None:
    """Refuses a key start the registry could hold but nobody should set (see
    `MAX_VALID_FROM_AHEAD_S`); any past time is fine (a meter installed, or a record signed,
    long before it was registered).

    Raises:
        MeterError: `valid_from` is negative, or more than `MAX_VALID_FROM_AHEAD_S` ahead of now.
    """
    if valid_from < 0:
        raise MeterError(f"valid_from {valid_from} is before 1970")
    if valid_from > now + MAX_VALID_FROM_AHEAD_S:
        raise MeterError(
            f"valid_from {valid_from} is more than {MAX_VALID_FROM_AHEAD_S} s (about ten years) "
            f"ahead of now ({now})"
        )


@dataclass(frozen=True)
class KeyEpochView:
    """One key epoch as read from the registry."""

    index: int
    algorithm: KeyAlgorithm
    public_key: bytes
    valid_from: int
    revoked_at: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.index,
            "algorithm": self.algorithm.label,
            "public_key": "0x" + self.public_key.hex(),
            "valid_from": self.valid_from,
            "valid_from_utc": utc_text(self.valid_from),
            "revoked_at": self.revoked_at or None,
            "revoked_at_utc": utc_text(self.revoked_at) if self.revoked_at else None,
        }


@dataclass(frozen=True)
class MeterView:
    """A meter's owner and full key history."""

    meter_id: str
    owner: str
    epochs: tuple[KeyEpochView, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "meter_id": self.meter_id,
            "owner": self.owner,
            "keys": [epoch.as_dict() for epoch in self.epochs],
        }


def utc_text(timestamp: int) -> str | None:
    """The ISO 8601 UTC form of a Unix time, or None past year 9999 (`LATEST_UTC_TIME`)."""
    if not 0 <= timestamp <= LATEST_UTC_TIME:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat().replace("+00:00", "Z")


def _epoch_view(index: int, raw: Any) -> KeyEpochView:
    algorithm, valid_from, revoked_at, public_key = raw
    return KeyEpochView(index, KeyAlgorithm(algorithm), bytes(public_key), valid_from, revoked_at)


class MeterAdmin:
    """Registers, rotates, revokes and reads meters in the MeterRegistry."""

    def __init__(self, chain: Chain, deployment: Deployment) -> None:
        self._chain = chain
        self._registry = deployment.meter_registry

    def register(
        self, meter_id: str, owner: str, public_key: MeterPublicKey, valid_from: int | None = None
    ) -> dict[str, Any]:
        """Registers a meter; `valid_from` defaults to the latest block's time."""
        if not self._chain.w3.is_address(owner):
            raise MeterError(f"owner {owner!r} is not an account address")
        now = self._now()
        if valid_from is not None:
            check_valid_from(valid_from, now)
        receipt = self._chain.transact(
            self._registry.functions.registerMeter(
                meter_id_bytes(meter_id),
                self._chain.w3.to_checksum_address(owner),
                int(algorithm_of(public_key)),
                encode_public_key(public_key),
                now if valid_from is None else valid_from,
            )
        )
        return dict(receipt)

    def rotate(
        self, meter_id: str, public_key: MeterPublicKey, valid_from: int | None = None
    ) -> dict[str, Any]:
        """Appends a key epoch; `valid_from` defaults to a few seconds from now.

        The margin lets the transaction be mined before the new key's start: a rotation may not
        take effect in the past (MeterRegistryValidFromInPast).
        """
        now = self._now()
        if valid_from is not None:
            check_valid_from(valid_from, now)
        receipt = self._chain.transact(
            self._registry.functions.rotateKey(
                meter_id_bytes(meter_id),
                int(algorithm_of(public_key)),
                encode_public_key(public_key),
                now + ROTATION_MARGIN_S if valid_from is None else valid_from,
            )
        )
        return dict(receipt)

    def revoke(self, meter_id: str, compromised_since: int | None = None) -> dict[str, Any]:
        """Revokes the meter's current key from the block's time on, or from
        `compromised_since` (at or after the key's start, not in the future): readings of that
        key timestamped from then on are refused, and those already accepted become suspect
        (`suspect_readings`).

        Raises:
            MeterError: `compromised_since` is not a uint64.
            ContractRevert: e.g. MeterRegistryCompromiseInFuture,
                MeterRegistryCompromiseBeforeKey, MeterRegistryKeyAlreadyRevoked.
        """
        raw_id = meter_id_bytes(meter_id)
        if compromised_since is None:
            call = self._registry.functions.revokeKey(raw_id)
        else:
            if not 0 <= compromised_since <= UINT64_MAX:
                raise MeterError(f"compromised_since {compromised_since} is not a uint64")
            call = self._registry.functions.revokeKeyCompromisedSince(raw_id, compromised_since)
        return dict(self._chain.transact(call))

    def show(self, meter_id: str) -> MeterView:
        """The meter's owner and every key epoch."""
        raw_id = meter_id_bytes(meter_id)
        owner = self._chain.call(self._registry.functions.ownerOf(raw_id))
        count = self._chain.call(self._registry.functions.keyEpochCount(raw_id))
        epochs = tuple(
            _epoch_view(i, self._chain.call(self._registry.functions.keyEpoch(raw_id, i)))
            for i in range(count)
        )
        return MeterView(meter_id=meter_id_text(raw_id), owner=owner, epochs=epochs)

    def key_at(self, meter_id: str, timestamp: int) -> KeyEpochView:
        """The key valid for the meter at `timestamp`.

        Raises:
            ContractRevert: MeterRegistryNoKeyAt when the meter had no valid key then.
        """
        index, raw = self._chain.call(
            self._registry.functions.keyAt(meter_id_bytes(meter_id), timestamp)
        )
        return _epoch_view(index, raw)

    def _now(self) -> int:
        """The later of the wall clock and the latest block's time (a chain may run ahead)."""
        latest = int(self._chain.w3.eth.get_block("latest")["timestamp"])
        return max(latest, int(time.time()))


@dataclass(frozen=True)
class SuspectReadings:
    """Readings a revocation from a compromise time puts in doubt: accepted under a key epoch
    and timestamped at or after that epoch's `revoked_at` (when the revocation was sent, the
    gateway had no way to know). `count` is all of them, `readings` one page by seq."""

    meter_id: str
    count: int
    readings: tuple[StoredReading, ...]


def suspect_readings(
    store: Store, meter: MeterView, *, after_seq: int = -1, limit: int = 1000
) -> SuspectReadings:
    """The stored readings of `meter` signed under a key at or after its revocation."""
    raw_id = meter_id_bytes(meter.meter_id)
    count = 0
    page: list[StoredReading] = []
    for epoch in meter.epochs:
        if not epoch.revoked_at:
            continue
        total, rows = store.readings_of_key_from(
            raw_id, epoch.index, epoch.revoked_at, after_seq=after_seq, limit=limit
        )
        count += total
        page.extend(rows)
    page.sort(key=lambda reading: reading.seq)
    return SuspectReadings(meter.meter_id, count, tuple(page[:limit]))
