"""The native signed-reading format: canonical bytes, their digest, signatures and Merkle leaf.

A reading is two cumulative registers named by OBIS code, `1-0:1.8.0` (energy imported from the
grid) and `1-0:2.8.0` (energy exported to it), in integer watt-hours, with the meter's sequence
number, time and status. Its canonical bytes are the Solidity

    abi.encode(bytes32 DOMAIN_TAG, uint256 chainId, bytes32 meterId, uint64 seq,
               uint64 timestamp, uint64 importWh, uint64 exportWh, uint32 status)

with `DOMAIN_TAG = keccak256("EnergyLedger.Reading.v1")`: eight 32-byte words, 256 bytes, no
dynamic parts, so a contract can rebuild them from the fields. Exactly one byte string encodes a
given reading; `decode` refuses every other one, so stored bytes always re-encode identically.

The meter signs the SHA-256 digest of the canonical bytes (ECDSA P-256, ECDSA secp256k1, or
Ed25519 over the 32-byte digest as its message). The Merkle leaf anchored on chain is, since leaf
version 2, `anchored_leaf`: `keccak256(keccak256(abi.encode(LEAF_TAG_V2, chainId, fields...,
keccak256(signed bytes), keccak256(signature form))))`, which commits to the signature too, so a
fraud proof on chain must show the very signature that was anchored. Batches anchored before it
keep version 1, `reading_leaf`: `keccak256(keccak256(canonical))`.

docs/reading-format.md is the vendor-facing specification, with a worked test vector that
tests/unit/readings/test_native_doc_vector.py checks against this module.

ECDSA signatures are malleable: if (r, s) verifies, so does (r, n - s), and the same reading can
arrive with different signature bytes. A reading's identity is therefore (meter_id, seq), never
its signature.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils
from eth_abi.abi import encode as abi_encode

from ledger.anchoring.merkle import keccak256, leaf_hash
from ledger.errors import LedgerError
from ledger.meters.keys import (
    ED25519_ORDER,
    ED25519_SMALL_ORDER_ENCODINGS,
    KeyAlgorithm,
    MeterPrivateKey,
    MeterPublicKey,
    decode_public_key,
)

DOMAIN_TAG = keccak256(b"EnergyLedger.Reading.v1")
"""`keccak256("EnergyLedger.Reading.v1")`, the first word of every canonical reading."""

ABI_TYPES = ("bytes32", "uint256", "bytes32", "uint64", "uint64", "uint64", "uint64", "uint32")
"""The Solidity types of the canonical encoding, word by word."""

WORD = 32
CANONICAL_LENGTH = WORD * len(ABI_TYPES)

OBIS_IMPORT_WH = "1-0:1.8.0"
"""OBIS code of the cumulative import register (active energy A+, Wh)."""
OBIS_EXPORT_WH = "1-0:2.8.0"
"""OBIS code of the cumulative export register (active energy A-, Wh)."""

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
UINT256_MAX = 2**256 - 1

SIGNATURE_LENGTH = 64
"""Raw signature size for every algorithm: r || s (ECDSA) or R || S (Ed25519), 32 bytes each."""

FIELDS = (
    "domain_tag",
    "chain_id",
    "meter_id",
    "seq",
    "timestamp",
    "import_wh",
    "export_wh",
    "status",
)
"""The name of each word of the canonical encoding, in order."""

# Byte offset of each field's word, for the decoder and its error messages.
_OFFSETS = {name: i * WORD for i, name in enumerate(FIELDS)}
# The words narrower than 256 bits, in field order (the first bad one is the one reported): name,
# offset, size in bytes, and the zero bytes its high-order padding must equal.
_PADDED_WORDS = tuple(
    (name, _OFFSETS[name], size, bytes(WORD - size))
    for name, size in (
        ("seq", 8),
        ("timestamp", 8),
        ("import_wh", 8),
        ("export_wh", 8),
        ("status", 4),
    )
)


class ReadingFormatError(LedgerError):
    """A reading's fields or canonical bytes are not a valid native reading."""

    code = "reading_malformed"
    http_status = 422


class ReadingSignatureError(LedgerError):
    """A reading's signature does not verify under the given key, or cannot be parsed."""

    code = "bad_signature"
    http_status = 422


def _check_uint(name: str, value: object, maximum: int, minimum: int = 0) -> None:
    # bool is an int subclass; True as a sequence number would be a caller bug, not a 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ReadingFormatError(f"{name} must be an integer, not {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise ReadingFormatError(f"{name} {value} is outside {minimum}..{maximum}")


@dataclass(frozen=True, kw_only=True)
class Reading:
    """One native meter reading; every field is range-checked on construction.

    Fields are keyword-only: six integers in a row are too easy to swap positionally.

    Attributes:
        chain_id: The EVM chain id of the ledger the reading is meant for (uint256, >= 1).
        meter_id: The meter's bytes32 id, as in MeterRegistry.
        seq: The meter's reading counter (uint64); consecutive readings differ by one.
        timestamp: Unix seconds (UTC) of the measurement (uint64).
        import_wh: Register `1-0:1.8.0`, cumulative energy imported, Wh (uint64).
        export_wh: Register `1-0:2.8.0`, cumulative energy exported, Wh (uint64).
        status: Meter status flags (uint32); 0 is "no flag set". This format version gives the
            bits no meaning: they are signed, stored and anchored unchanged.

    Raises:
        ReadingFormatError: A field has the wrong type or is outside its Solidity type's range.
    """

    chain_id: int
    meter_id: bytes
    seq: int
    timestamp: int
    import_wh: int
    export_wh: int
    status: int = 0

    def __post_init__(self) -> None:
        _check_uint("chain_id", self.chain_id, UINT256_MAX, minimum=1)
        if not isinstance(self.meter_id, bytes) or len(self.meter_id) != WORD:
            raise ReadingFormatError("meter_id must be exactly 32 bytes")
        _check_uint("seq", self.seq, UINT64_MAX)
        _check_uint("timestamp", self.timestamp, UINT64_MAX)
        _check_uint("import_wh", self.import_wh, UINT64_MAX)
        _check_uint("export_wh", self.export_wh, UINT64_MAX)
        _check_uint("status", self.status, UINT32_MAX)

    @classmethod
    def from_fixed_width_fields(
        cls,
        *,
        chain_id: int,
        meter_id: bytes,
        seq: int,
        timestamp: int,
        import_wh: int,
        export_wh: int,
        status: int,
    ) -> Reading:
        """A Reading from fields that cannot be out of range: decoded from the fixed-width
        fields of canonical bytes (32-byte meter id, 8-byte registers, 4-byte status) for a
        valid chain id. It skips the constructor's range checks: 0.4 us a reading where the
        constructor takes 3.2, on every reading the fast path of ingestion takes."""
        reading = object.__new__(cls)
        # A frozen dataclass refuses attribute assignment, not its instance dictionary.
        reading.__dict__.update(
            chain_id=chain_id,
            meter_id=meter_id,
            seq=seq,
            timestamp=timestamp,
            import_wh=import_wh,
            export_wh=export_wh,
            status=status,
        )
        return reading

    @property
    def registers(self) -> dict[str, int]:
        """The two registers by OBIS code, in Wh."""
        return {OBIS_IMPORT_WH: self.import_wh, OBIS_EXPORT_WH: self.export_wh}

    def encode(self) -> bytes:
        """The canonical bytes: Solidity `abi.encode` of the tag and the fields, 256 bytes."""
        return bytes(
            abi_encode(
                list(ABI_TYPES),
                [
                    DOMAIN_TAG,
                    self.chain_id,
                    self.meter_id,
                    self.seq,
                    self.timestamp,
                    self.import_wh,
                    self.export_wh,
                    self.status,
                ],
            )
        )


def decode(canonical: bytes | bytearray | memoryview) -> Reading:
    """Parses canonical reading bytes, refusing anything but the one canonical encoding.

    Refused: a length other than 256, another domain tag, non-zero high bytes in a uint64 or
    uint32 word (whether that is a value out of range or stray padding, both would make two byte
    strings for one reading), and field values `Reading` refuses (chain id 0).

    Raises:
        ReadingFormatError: The bytes are not a canonical native reading.
    """
    if not isinstance(canonical, bytes | bytearray | memoryview):
        raise ReadingFormatError(f"canonical reading must be bytes, not {type(canonical).__name__}")
    data = bytes(canonical)
    if len(data) != CANONICAL_LENGTH:
        raise ReadingFormatError(
            f"canonical reading is {len(data)} bytes, expected {CANONICAL_LENGTH}"
        )
    if data[:WORD] != DOMAIN_TAG:
        raise ReadingFormatError(
            f"domain tag 0x{data[:WORD].hex()} is not the one of EnergyLedger.Reading.v1"
        )

    # Every one of the 256 bytes is checked here or by `Reading`: the tag word above, chainId
    # (any uint256 but 0), meterId (any bytes32), and the zero padding of each narrower word. The
    # bytes are therefore exactly those `Reading.encode` writes for the values read, with no
    # eth_abi re-encode to prove it per reading (it cost three times the parse);
    # tests/unit/readings/test_native_decode.py checks this parse against eth_abi's decode and
    # re-encode.
    for name, offset, size, zeros in _PADDED_WORDS:
        if data[offset : offset + WORD - size] != zeros:
            raise ReadingFormatError(
                f"{name} word at offset {offset} does not fit in uint{size * 8}: "
                f"0x{data[offset : offset + WORD].hex()}"
            )
    # Word i is at byte i * 32 (FIELDS); a padded word's zero high bytes do not change its value.
    return Reading(
        chain_id=int.from_bytes(data[0x20:0x40], "big"),
        meter_id=data[0x40:0x60],
        seq=int.from_bytes(data[0x60:0x80], "big"),
        timestamp=int.from_bytes(data[0x80:0xA0], "big"),
        import_wh=int.from_bytes(data[0xA0:0xC0], "big"),
        export_wh=int.from_bytes(data[0xC0:0xE0], "big"),
        status=int.from_bytes(data[0xE0:0x100], "big"),
    )


def digest(canonical: bytes) -> bytes:
    """The signed value: SHA-256 of the canonical bytes (32 bytes)."""
    return hashlib.sha256(canonical).digest()


def reading_leaf(canonical: bytes) -> bytes:
    """The reading's Merkle leaf, `keccak256(keccak256(canonical))`.

    Only the length and domain tag are checked (cheap enough for a batch of 100,000): the bytes
    were fully decoded when the reading was accepted.

    Raises:
        ReadingFormatError: The bytes are not 256 bytes starting with the domain tag.
    """
    if len(canonical) != CANONICAL_LENGTH or canonical[:WORD] != DOMAIN_TAG:
        raise ReadingFormatError("not canonical reading bytes (length or domain tag)")
    return leaf_hash(bytes(canonical))


LEAF_TAG_V2 = keccak256(b"EnergyLedger.AnchoredReading.v2")
"""`keccak256("EnergyLedger.AnchoredReading.v2")`, the first word of a version-2 leaf's preimage."""

LEAF_VERSION = 2
"""The leaf version of the batches anchored from now on (1: `reading_leaf`, 2: `anchored_leaf`)."""


def anchored_leaf(canonical: bytes, signed_bytes: bytes, signature_form: bytes) -> bytes:
    """The reading's version-2 Merkle leaf (contracts/libraries/ReadingLeaf.sol `hash`).

    `keccak256(keccak256(abi.encode(LEAF_TAG_V2, chainId, meterId, seq, timestamp, importWh,
    exportWh, status, keccak256(signed_bytes), keccak256(signature_form))))`. The seven words
    after the domain tag of the canonical bytes are exactly the chain id and fields, so they are
    copied rather than re-encoded.

    Args:
        canonical: The reading's 256 canonical bytes.
        signed_bytes: The exact bytes the meter signed (native: `canonical`; OCMF: the payload).
        signature_form: The signature in its fixed form (`signature_form`, `ocmf_signature_form`).

    Raises:
        ReadingFormatError: `canonical` is not 256 bytes starting with the domain tag.
    """
    if len(canonical) != CANONICAL_LENGTH or canonical[:WORD] != DOMAIN_TAG:
        raise ReadingFormatError("not canonical reading bytes (length or domain tag)")
    return leaf_hash(
        LEAF_TAG_V2
        + bytes(canonical[WORD:])
        + keccak256(bytes(signed_bytes))
        + keccak256(bytes(signature_form))
    )


def leaf_of_version(
    version: int, canonical: bytes, signed_bytes: bytes, signature_form: bytes
) -> bytes:
    """The leaf of a reading in a batch of leaf version `version` (1 or 2)."""
    if version == 1:
        return reading_leaf(canonical)
    return anchored_leaf(canonical, signed_bytes, signature_form)


def signature_form(
    algorithm: KeyAlgorithm, key: MeterPublicKey, canonical: bytes, signature: bytes
) -> bytes:
    """A native reading's signature in the one form its leaf commits to: r || s (64 bytes,
    s as received) for ECDSA however it arrived (raw or DER), the 64 bytes for Ed25519.

    The fraud proof on chain reads the 64 bytes as r || s: a signature that verified only as DER
    must therefore be stored in its r || s form, or a genuine reading would look forged there.
    Only a 64-byte signature that is also strict DER needs a second verification to tell.

    Raises:
        ReadingSignatureError: The signature verifies in neither form (check it first).
    """
    if isinstance(key, ed25519.Ed25519PublicKey):
        return bytes(signature)
    candidates = _ecdsa_candidates(bytes(signature))
    if len(signature) == SIGNATURE_LENGTH and len(candidates) == 1:
        return bytes(signature)
    for der in candidates:
        if _ecdsa_verifies(key, der, digest(canonical)):
            return _raw_of_der(der)
    raise ReadingSignatureError(f"{algorithm.label} signature does not verify in any form")


# The digest is computed once here and signed as a prehash, so every algorithm visibly signs the
# same 32 bytes; RFC 6979 nonces make a simulator's signatures reproducible. Both objects are
# immutable parameters, made once rather than per reading.
_ECDSA_SIGN = ec.ECDSA(utils.Prehashed(hashes.SHA256()), deterministic_signing=True)
_ECDSA_VERIFY = ec.ECDSA(utils.Prehashed(hashes.SHA256()))


def sign_canonical(private_key: MeterPrivateKey, canonical: bytes) -> bytes:
    """Signs canonical reading bytes as a meter does: 64 bytes, raw r || s or Ed25519 R || S.

    ECDSA uses RFC 6979 deterministic nonces, so the same key and bytes always give the same
    signature (s is not normalised to the lower half: verifiers must accept both halves).

    Raises:
        ReadingSignatureError: The key is not on P-256 or secp256k1 (ECDSA keys only).
    """
    signed = digest(canonical)
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign(signed)
    if not isinstance(private_key.curve, ec.SECP256R1 | ec.SECP256K1):
        raise ReadingSignatureError(f"unsupported curve {private_key.curve.name}")
    r, s = utils.decode_dss_signature(private_key.sign(signed, _ECDSA_SIGN))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def sign_reading(private_key: MeterPrivateKey, reading: Reading) -> bytes:
    """Signs a reading's canonical bytes (for simulators and tests; real meters sign inside)."""
    return sign_canonical(private_key, reading.encode())


def _ecdsa_candidates(signature: bytes) -> list[bytes]:
    """DER forms to try for an ECDSA signature given raw (64 bytes) or DER-encoded."""
    candidates: list[bytes] = []
    if len(signature) == SIGNATURE_LENGTH:
        candidates.append(_der_of_raw(signature))
    # A DER signature is 8..72 bytes and may, rarely, be exactly 64: try DER too. Accepting either
    # reading of the bytes is safe, as each is checked against the same key and digest.
    if signature[:1] == b"\x30":
        try:
            r, s = utils.decode_dss_signature(signature)
        except ValueError:
            pass
        else:
            # Re-encoding gives the strict DER form, so BER variants of a signature are refused.
            der = utils.encode_dss_signature(r, s)
            if der == signature:
                candidates.append(der)
    return candidates


def verify_reading_signature(
    algorithm: KeyAlgorithm, public_key: bytes, canonical: bytes, signature: bytes
) -> None:
    """Checks a meter's signature over canonical reading bytes.

    Args:
        algorithm: The key's algorithm, as the MeterRegistry records it.
        public_key: The key in registry encoding: SEC1 uncompressed (65 bytes) for ECDSA, raw 32
            bytes for Ed25519.
        canonical: The exact bytes the meter sent. They are not parsed here; call `decode` too.
        signature: ECDSA: raw r || s (64 bytes) or DER. Ed25519: the 64-byte signature.

    Raises:
        ReadingSignatureError: The signature does not verify or cannot be parsed.
        MeterError: `public_key` is not a valid key for `algorithm` (a registry problem, not the
            reading's).
    """
    verify_signature(algorithm, decode_public_key(algorithm, public_key), canonical, signature)


ECDSA_ALGORITHMS = (KeyAlgorithm.P256, KeyAlgorithm.SECP256K1)
"""The key algorithms whose native signatures are ECDSA (raw r || s or DER)."""


def raw_ecdsa_verifies(key: ec.EllipticCurvePublicKey, canonical: bytes, signature: bytes) -> bool:
    """Whether a 64-byte signature read as raw r || s verifies over the canonical bytes: one
    verification, for the fast paths of ingestion and the audit, which leave every other case
    (a DER signature, a signature that fails: is it DER after all?) to `verify_signature`."""
    return _ecdsa_verifies(key, _der_of_raw(signature), digest(canonical))


RawEcdsaSigned = tuple[ec.EllipticCurvePublicKey, bytes, bytes]
"""What `raw_ecdsa_verifies` checks: the key, the canonical bytes and a 64-byte r || s."""


def raw_ecdsa_verified(signed: Sequence[RawEcdsaSigned | None]) -> list[bool]:
    """`raw_ecdsa_verifies` of each of many (None: nothing to check, False), for the audit,
    which checks a bundle's readings a chunk at a time: every digest and DER encoding first,
    then the verifications back to back: interleaved with a reading's other work, they cost a few
    percent more (OpenSSL's code and tables leave the cache between two)."""
    prepared = [
        None if item is None else (item[0], _der_of_raw(item[2]), digest(item[1]))
        for item in signed
    ]
    return [item is not None and _ecdsa_verifies(*item) for item in prepared]


def _ecdsa_verifies(key: ec.EllipticCurvePublicKey, der: bytes, signed_digest: bytes) -> bool:
    try:
        key.verify(der, signed_digest, _ECDSA_VERIFY)
    except InvalidSignature:
        return False
    return True


def _der_of_raw(signature: bytes) -> bytes:
    return utils.encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )


def _raw_of_der(der: bytes) -> bytes:
    """The fixed r || s form of a DER signature."""
    r, s = utils.decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify_signature(
    algorithm: KeyAlgorithm, key: MeterPublicKey, canonical: bytes, signature: bytes
) -> bytes:
    """`verify_reading_signature` with the key already parsed (`decode_public_key(algorithm,
    ...)`): parsing a point costs about a tenth of a verification, so the gateway parses each
    registry key once and keeps it.

    Returns:
        The signature in the form its version-2 leaf commits to (`signature_form`), known from
        the verification itself: ingestion needs no second check to tell a DER signature's form.

    Raises:
        ReadingSignatureError: The signature does not verify or cannot be parsed.
    """
    signed = digest(canonical)
    if isinstance(key, ed25519.Ed25519PublicKey):
        if len(signature) != SIGNATURE_LENGTH:
            raise ReadingSignatureError(
                f"an Ed25519 signature is {SIGNATURE_LENGTH} bytes, not {len(signature)}"
            )
        # Checked here rather than left to OpenSSL, so no library version decides: S >= L is a
        # second encoding of a valid signature (RFC 8032 requires S < L), and a small-order R
        # is what signatures forged for a small-order key look like.
        if int.from_bytes(signature[32:], "little") >= ED25519_ORDER:
            raise ReadingSignatureError("Ed25519 signature is not canonical: S >= L")
        if signature[:32] in ED25519_SMALL_ORDER_ENCODINGS:
            raise ReadingSignatureError("Ed25519 signature's R is a point of small order")
        try:
            key.verify(signature, signed)
        except InvalidSignature:
            raise ReadingSignatureError(
                f"{algorithm.label} signature does not verify for this reading"
            ) from None
        return bytes(signature)
    candidates = _ecdsa_candidates(signature)
    if not candidates:
        raise ReadingSignatureError(
            f"an ECDSA signature is raw r || s ({SIGNATURE_LENGTH} bytes) or DER; "
            f"got {len(signature)} bytes"
        )
    for index, der in enumerate(candidates):
        if not _ecdsa_verifies(key, der, signed):
            continue
        if index == 0 and len(signature) == SIGNATURE_LENGTH:
            return bytes(signature)  # raw r || s, the usual case: already the fixed form
        return _raw_of_der(der)
    raise ReadingSignatureError(f"{algorithm.label} signature does not verify for this reading")
