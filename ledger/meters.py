"""Meter identities: ids, public keys, and the MeterRegistry calls that manage them.

Meter ids are bytes32 on chain. A meter's serial number (printable, at most 32 bytes) is used as
its id, right-padded with zero bytes, so the id reads back as the serial; a 0x-prefixed 64-digit
hex string is taken as the raw id.

Public keys are stored in one fixed encoding per algorithm (SEC1 uncompressed 0x04||x||y for the
ECDSA curves, the raw 32 bytes for Ed25519), parsed and checked with `cryptography`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ledger.chain import Chain
from ledger.deployment import Deployment
from ledger.errors import MeterError

# How far ahead a rotation without an explicit start takes effect.
ROTATION_MARGIN_S = 5


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


def decode_public_key(algorithm: KeyAlgorithm, encoded: bytes) -> MeterPublicKey:
    """Parses a registry-encoded key; raises MeterError if it is not a valid point/key."""
    try:
        if algorithm is KeyAlgorithm.ED25519:
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
            "valid_from_utc": _utc(self.valid_from),
            "revoked_at": self.revoked_at or None,
            "revoked_at_utc": _utc(self.revoked_at) if self.revoked_at else None,
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


def _utc(timestamp: int) -> str:
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
        receipt = self._chain.transact(
            self._registry.functions.registerMeter(
                meter_id_bytes(meter_id),
                self._chain.w3.to_checksum_address(owner),
                int(algorithm_of(public_key)),
                encode_public_key(public_key),
                self._now() if valid_from is None else valid_from,
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
        receipt = self._chain.transact(
            self._registry.functions.rotateKey(
                meter_id_bytes(meter_id),
                int(algorithm_of(public_key)),
                encode_public_key(public_key),
                self._now() + ROTATION_MARGIN_S if valid_from is None else valid_from,
            )
        )
        return dict(receipt)

    def revoke(self, meter_id: str) -> dict[str, Any]:
        """Revokes the meter's current key from the block's time on."""
        return dict(
            self._chain.transact(self._registry.functions.revokeKey(meter_id_bytes(meter_id)))
        )

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
