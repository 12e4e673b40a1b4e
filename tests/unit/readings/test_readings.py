"""Native readings: canonical bytes, strict decoding, signatures, leaves, and the doc's vector."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import coincurve
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils
from eth_abi import decode as abi_decode
from eth_abi import encode
from eth_utils import keccak
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ledger.errors import LedgerError, MeterError
from ledger.meters.keys import (
    ED25519_ORDER,
    KeyAlgorithm,
    MeterPrivateKey,
    encode_public_key,
    generate_key,
)
from ledger.readings.native import (
    ABI_TYPES,
    CANONICAL_LENGTH,
    DOMAIN_TAG,
    OBIS_EXPORT_WH,
    OBIS_IMPORT_WH,
    UINT32_MAX,
    UINT64_MAX,
    UINT256_MAX,
    Reading,
    ReadingFormatError,
    ReadingSignatureError,
    decode,
    digest,
    reading_leaf,
    sign_canonical,
    sign_reading,
    verify_reading_signature,
    verify_signature,
)
from tests.fixtures.ed25519_vectors import (
    IDENTITY_FORGERY_SIGNATURE,
    IDENTITY_KEY,
    SMALL_ORDER_KEYS,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "reading-format.md"
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


# canonical bytes


def test_domain_tag_is_keccak_of_the_format_name() -> None:
    assert DOMAIN_TAG == keccak(text="EnergyLedger.Reading.v1")


def test_canonical_bytes_are_the_solidity_abi_encoding() -> None:
    r = reading(status=3)
    expected = encode(list(ABI_TYPES), [DOMAIN_TAG, 1337, METER, 7, 1_700_000_000, 12_345, 678, 3])
    assert r.encode() == expected
    assert len(expected) == CANONICAL_LENGTH == 256


def test_each_field_sits_in_its_own_big_endian_word() -> None:
    canonical = reading(seq=1, timestamp=2, import_wh=3, export_wh=4, status=5).encode()
    words = [canonical[i : i + 32] for i in range(0, 256, 32)]
    assert words == [DOMAIN_TAG, word(1337), METER, word(1), word(2), word(3), word(4), word(5)]


def test_registers_are_named_by_obis_code() -> None:
    assert reading(import_wh=10, export_wh=2).registers == {"1-0:1.8.0": 10, "1-0:2.8.0": 2}
    assert (OBIS_IMPORT_WH, OBIS_EXPORT_WH) == ("1-0:1.8.0", "1-0:2.8.0")


def test_fields_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        Reading(1337, METER, 1, 2, 3, 4, 0)  # type: ignore[call-arg]


def test_extreme_values_encode_and_decode() -> None:
    for r in (
        reading(chain_id=1, seq=0, timestamp=0, import_wh=0, export_wh=0, status=0),
        reading(
            chain_id=UINT256_MAX,
            meter_id=b"\xff" * 32,
            seq=UINT64_MAX,
            timestamp=UINT64_MAX,
            import_wh=UINT64_MAX,
            export_wh=UINT64_MAX,
            status=UINT32_MAX,
        ),
    ):
        assert decode(r.encode()) == r


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("chain_id", 0),
        ("chain_id", UINT256_MAX + 1),
        ("seq", -1),
        ("seq", UINT64_MAX + 1),
        ("timestamp", -1),
        ("timestamp", UINT64_MAX + 1),
        ("import_wh", -1),
        ("import_wh", UINT64_MAX + 1),
        ("export_wh", -5),
        ("export_wh", UINT64_MAX + 1),
        ("status", -1),
        ("status", UINT32_MAX + 1),
        ("import_wh", 1.5),
        ("import_wh", 100.0),
        ("seq", True),
        ("seq", "7"),
        ("meter_id", b"\x01" * 31),
        ("meter_id", b"\x01" * 33),
        ("meter_id", "MTR-0001"),
        ("meter_id", bytearray(32)),
    ],
)
def test_out_of_range_or_mistyped_fields_are_refused(field: str, value: object) -> None:
    with pytest.raises(ReadingFormatError) as caught:
        reading(**{field: value})  # type: ignore[arg-type]
    assert field in str(caught.value)
    assert caught.value.code == "reading_malformed"


def test_error_types_are_ledger_errors_with_stable_codes() -> None:
    assert issubclass(ReadingFormatError, LedgerError)
    assert issubclass(ReadingSignatureError, LedgerError)
    assert ReadingFormatError.code == "reading_malformed"
    assert ReadingSignatureError.code == "bad_signature"


# strict decoding


def test_decode_round_trips() -> None:
    r = reading(status=0xDEADBEEF)
    assert decode(r.encode()) == r
    assert decode(bytearray(r.encode())) == r
    assert decode(memoryview(r.encode())) == r  # what PostgreSQL drivers return for bytea


@pytest.mark.parametrize("length", [0, 32, 255, 257, 288])
def test_decode_refuses_another_length(length: int) -> None:
    data = (reading().encode() * 2)[:length]
    with pytest.raises(ReadingFormatError, match=f"is {length} bytes"):
        decode(data)


def test_decode_refuses_another_domain_tag() -> None:
    data = keccak(text="EnergyLedger.Reading.v2") + reading().encode()[32:]
    with pytest.raises(ReadingFormatError, match="domain tag"):
        decode(data)


@pytest.mark.parametrize(
    ("field", "offset", "padding"),
    [
        ("seq", 0x60, 24),
        ("timestamp", 0x80, 24),
        ("import_wh", 0xA0, 24),
        ("export_wh", 0xC0, 24),
        ("status", 0xE0, 28),
    ],
)
def test_decode_refuses_any_non_zero_padding_byte(field: str, offset: int, padding: int) -> None:
    canonical = reading().encode()
    for position in range(offset, offset + padding):
        data = bytearray(canonical)
        data[position] = 0x01
        with pytest.raises(ReadingFormatError, match=f"{field} word .* does not fit"):
            decode(bytes(data))


def test_decode_refuses_chain_id_zero() -> None:
    data = bytearray(reading().encode())
    data[0x20:0x40] = bytes(32)
    with pytest.raises(ReadingFormatError, match="chain_id"):
        decode(bytes(data))


def test_decode_refuses_what_is_not_bytes() -> None:
    with pytest.raises(ReadingFormatError, match="must be bytes"):
        decode(reading().encode().hex())  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    chain_id=st.integers(1, UINT256_MAX),
    meter_id=st.binary(min_size=32, max_size=32),
    seq=st.integers(0, UINT64_MAX),
    timestamp=st.integers(0, UINT64_MAX),
    import_wh=st.integers(0, UINT64_MAX),
    export_wh=st.integers(0, UINT64_MAX),
    status=st.integers(0, UINT32_MAX),
)
def test_any_valid_reading_decodes_to_itself_and_re_encodes_byte_identically(
    chain_id: int,
    meter_id: bytes,
    seq: int,
    timestamp: int,
    import_wh: int,
    export_wh: int,
    status: int,
) -> None:
    r = Reading(
        chain_id=chain_id,
        meter_id=meter_id,
        seq=seq,
        timestamp=timestamp,
        import_wh=import_wh,
        export_wh=export_wh,
        status=status,
    )
    canonical = r.encode()
    assert decode(canonical) == r
    assert decode(canonical).encode() == canonical


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=256, max_size=256))
def test_random_bytes_are_refused_or_re_encode_identically(data: bytes) -> None:
    data = DOMAIN_TAG + data[32:]
    try:
        decoded = decode(data)
    except ReadingFormatError:
        return
    assert decoded.encode() == data


def eth_abi_decode(data: bytes) -> Reading | None:
    """The reference for `decode`, with no hand-written parse: eth_abi decodes the eight words,
    and the bytes are accepted only if they start with the domain tag, the values re-encode to
    exactly these bytes, and `Reading` accepts them. None: refused."""
    if len(data) != CANONICAL_LENGTH:
        return None
    try:
        tag, chain_id, meter_id, seq, timestamp, import_wh, export_wh, status = abi_decode(
            list(ABI_TYPES), data
        )
    except Exception:  # noqa: BLE001 - any eth_abi decoding error is a refusal
        return None
    values = [tag, chain_id, meter_id, seq, timestamp, import_wh, export_wh, status]
    if tag != DOMAIN_TAG or encode(list(ABI_TYPES), values) != data:
        return None
    try:
        return Reading(
            chain_id=chain_id,
            meter_id=meter_id,
            seq=seq,
            timestamp=timestamp,
            import_wh=import_wh,
            export_wh=export_wh,
            status=status,
        )
    except ReadingFormatError:
        return None


def _words(maximum: int) -> st.SearchStrategy[bytes]:
    """A word for a uint field of at most `maximum`: in range (edges included), too large for
    it but a uint256, or any 32 bytes."""
    return st.one_of(
        st.integers(0, maximum).map(word),
        st.integers(maximum, UINT256_MAX).map(word),
        st.binary(min_size=32, max_size=32),
    )


# Each word of the encoding: what may stand in it, valid or not.
_ANY_WORD = (
    st.one_of(st.just(DOMAIN_TAG), st.binary(min_size=32, max_size=32)),
    _words(UINT256_MAX),
    st.binary(min_size=32, max_size=32),
    _words(UINT64_MAX),
    _words(UINT64_MAX),
    _words(UINT64_MAX),
    _words(UINT64_MAX),
    _words(UINT32_MAX),
)
_VALID_CANONICAL = st.builds(
    Reading,
    chain_id=st.integers(1, UINT256_MAX),
    meter_id=st.binary(min_size=32, max_size=32),
    seq=st.integers(0, UINT64_MAX),
    timestamp=st.integers(0, UINT64_MAX),
    import_wh=st.integers(0, UINT64_MAX),
    export_wh=st.integers(0, UINT64_MAX),
    status=st.integers(0, UINT32_MAX),
).map(Reading.encode)


@st.composite
def _canonical_candidates(draw: st.DrawFn) -> bytes:
    """Byte strings near the canonical encoding: a valid one; one with a word replaced (by a
    valid or invalid one for that field), or one byte changed (most bytes are padding that
    must stay zero), or its length changed; or eight words each drawn on its own."""
    data = draw(_VALID_CANONICAL)
    how = draw(st.sampled_from(["valid", "word", "byte", "length", "words"]))
    if how == "word":
        i = draw(st.integers(0, 7))
        data = data[: i * 32] + draw(_ANY_WORD[i]) + data[(i + 1) * 32 :]
    elif how == "byte":
        i = draw(st.integers(0, CANONICAL_LENGTH - 1))
        data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]
    elif how == "length":
        data = (data * 2)[: draw(st.integers(0, 2 * CANONICAL_LENGTH))]
    elif how == "words":
        data = b"".join(draw(w) for w in _ANY_WORD)
    return data


@settings(max_examples=500, deadline=None)
@given(_canonical_candidates())
def test_decode_accepts_exactly_what_eth_abi_decodes_and_re_encodes_identically(
    data: bytes,
) -> None:
    # `decode` parses by hand, without an eth_abi round trip per reading: it must accept the
    # same byte strings as the round trip, with the same values.
    expected = eth_abi_decode(data)
    try:
        decoded: Reading | None = decode(data)
    except ReadingFormatError:
        decoded = None
    event("accepted" if expected is not None else "refused")
    assert decoded == expected


# digest and leaf


def test_digest_is_sha256_of_the_canonical_bytes() -> None:
    canonical = reading().encode()
    assert digest(canonical) == hashlib.sha256(canonical).digest()


def test_leaf_is_keccak_of_keccak_of_the_canonical_bytes() -> None:
    canonical = reading().encode()
    assert reading_leaf(canonical) == keccak(keccak(canonical))


@pytest.mark.parametrize(
    "data",
    [b"", reading().encode()[:-1], bytes(32) + reading().encode()[32:]],
    ids=["empty", "short", "no-tag"],
)
def test_leaf_refuses_what_is_not_a_canonical_reading(data: bytes) -> None:
    with pytest.raises(ReadingFormatError):
        reading_leaf(data)


# signatures


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.label)
def test_a_signed_reading_verifies_under_its_key(algorithm: KeyAlgorithm) -> None:
    key = generate_key(algorithm)
    r = reading()
    signature = sign_reading(key, r)
    assert len(signature) == 64
    verify_reading_signature(algorithm, public_bytes(key), r.encode(), signature)


def test_the_identity_key_forgery_is_refused() -> None:
    # With the identity point as key, R = identity and S = 0 verify for any message in a
    # cofactorless verifier (OpenSSL's): the key is refused before any signature is looked at.
    forged = bytes.fromhex(IDENTITY_FORGERY_SIGNATURE)

    with pytest.raises(MeterError, match="small order"):
        verify_reading_signature(
            KeyAlgorithm.ED25519, bytes.fromhex(IDENTITY_KEY), reading().encode(), forged
        )


def test_a_small_order_r_is_refused_even_under_a_key_that_got_past_registration() -> None:
    # A key object made without the registry's checks (as an old registry entry could be).
    identity = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(IDENTITY_KEY))
    forged = bytes.fromhex(IDENTITY_FORGERY_SIGNATURE)

    with pytest.raises(ReadingSignatureError, match="small order"):
        verify_signature(KeyAlgorithm.ED25519, identity, reading().encode(), forged)


@pytest.mark.parametrize("encoded", [h for _, h in SMALL_ORDER_KEYS], ids=lambda h: h[:8] + h[-2:])
def test_an_ed25519_signature_whose_r_has_small_order_is_refused(encoded: str) -> None:
    key = generate_key(KeyAlgorithm.ED25519)
    signature = bytes.fromhex(encoded) + sign_reading(key, reading())[32:]

    with pytest.raises(ReadingSignatureError, match="small order"):
        verify_reading_signature(
            KeyAlgorithm.ED25519, public_bytes(key), reading().encode(), signature
        )


def test_an_ed25519_signature_with_s_not_below_l_is_refused() -> None:
    key = generate_key(KeyAlgorithm.ED25519)
    signature = sign_reading(key, reading())
    s = int.from_bytes(signature[32:], "little")
    # S + L is the same signature in a second encoding, valid modulo L.
    malleated = signature[:32] + (s + ED25519_ORDER).to_bytes(32, "little")

    with pytest.raises(ReadingSignatureError, match="S >= L"):
        verify_reading_signature(
            KeyAlgorithm.ED25519, public_bytes(key), reading().encode(), malleated
        )


@pytest.mark.parametrize("algorithm", ECDSA_ALGORITHMS, ids=lambda a: a.label)
def test_a_ber_but_not_der_ecdsa_signature_is_refused(algorithm: KeyAlgorithm) -> None:
    key = generate_key(algorithm)
    raw = sign_reading(key, reading())
    der = utils.encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
    # The same SEQUENCE with a long-form length: valid BER, not DER.
    ber = b"\x30\x81" + der[1:]

    with pytest.raises(ReadingSignatureError):
        verify_reading_signature(algorithm, public_bytes(key), reading().encode(), ber)


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.label)
def test_signatures_are_deterministic(algorithm: KeyAlgorithm) -> None:
    key = generate_key(algorithm)
    assert sign_reading(key, reading()) == sign_reading(key, reading())


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.label)
def test_a_changed_reading_does_not_verify(algorithm: KeyAlgorithm) -> None:
    key = generate_key(algorithm)
    signature = sign_reading(key, reading(import_wh=12_345))
    with pytest.raises(ReadingSignatureError, match="does not verify") as caught:
        verify_reading_signature(
            algorithm, public_bytes(key), reading(import_wh=12_346).encode(), signature
        )
    assert caught.value.code == "bad_signature"


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.label)
def test_another_meters_key_does_not_verify(algorithm: KeyAlgorithm) -> None:
    signature = sign_reading(generate_key(algorithm), reading())
    other = public_bytes(generate_key(algorithm))
    with pytest.raises(ReadingSignatureError):
        verify_reading_signature(algorithm, other, reading().encode(), signature)


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.label)
@pytest.mark.parametrize("length", [0, 63, 65, 73])
def test_a_signature_of_the_wrong_size_is_refused(algorithm: KeyAlgorithm, length: int) -> None:
    key = generate_key(algorithm)
    with pytest.raises(ReadingSignatureError):
        verify_reading_signature(algorithm, public_bytes(key), reading().encode(), b"\x30" * length)


def test_an_ed25519_meter_signs_the_digest_as_its_message() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    canonical = reading().encode()
    key.public_key().verify(sign_canonical(key, canonical), hashlib.sha256(canonical).digest())


@pytest.mark.parametrize("algorithm", ECDSA_ALGORITHMS, ids=lambda a: a.label)
def test_an_ecdsa_signature_is_plain_ecdsa_sha256_over_the_canonical_bytes(
    algorithm: KeyAlgorithm,
) -> None:
    key = generate_key(algorithm)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    canonical = reading().encode()
    raw = sign_canonical(key, canonical)
    der = utils.encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
    key.public_key().verify(der, canonical, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("algorithm", ECDSA_ALGORITHMS, ids=lambda a: a.label)
def test_a_der_encoded_ecdsa_signature_is_accepted(algorithm: KeyAlgorithm) -> None:
    key = generate_key(algorithm)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    canonical = reading().encode()
    der = key.sign(canonical, ec.ECDSA(hashes.SHA256()))  # a random nonce, as some meters use
    verify_reading_signature(algorithm, public_bytes(key), canonical, der)
    with pytest.raises(ReadingSignatureError):
        verify_reading_signature(algorithm, public_bytes(key), canonical, der + b"\x00")


@pytest.mark.parametrize("algorithm", ECDSA_ALGORITHMS, ids=lambda a: a.label)
def test_ecdsa_is_malleable_so_r_and_n_minus_s_verify_too(algorithm: KeyAlgorithm) -> None:
    # Why readings are identified by (meter_id, seq): the same reading, two signature byte strings.
    key = generate_key(algorithm)
    canonical = reading().encode()
    raw = sign_canonical(key, canonical)
    r, s = int.from_bytes(raw[:32]), int.from_bytes(raw[32:])
    twin = raw[:32] + (CURVE_ORDER[algorithm] - s).to_bytes(32, "big")
    assert twin != raw
    verify_reading_signature(algorithm, public_bytes(key), canonical, raw)
    verify_reading_signature(algorithm, public_bytes(key), canonical, twin)
    verify_reading_signature(
        algorithm, public_bytes(key), canonical, utils.encode_dss_signature(r, s)
    )


@pytest.mark.parametrize("algorithm", ECDSA_ALGORITHMS, ids=lambda a: a.label)
@pytest.mark.parametrize("which", ["r", "s"])
@pytest.mark.parametrize("value", ["zero", "order"])
def test_ecdsa_r_or_s_out_of_range_is_refused(
    algorithm: KeyAlgorithm, which: str, value: str
) -> None:
    key = generate_key(algorithm)
    canonical = reading().encode()
    raw = sign_canonical(key, canonical)
    bad = (0 if value == "zero" else CURVE_ORDER[algorithm]).to_bytes(32, "big")
    forged = bad + raw[32:] if which == "r" else raw[:32] + bad
    with pytest.raises(ReadingSignatureError):
        verify_reading_signature(algorithm, public_bytes(key), canonical, forged)


def test_a_key_of_another_algorithm_is_a_meter_error() -> None:
    p256 = generate_key(KeyAlgorithm.P256)
    signature = sign_reading(p256, reading())
    with pytest.raises(MeterError):
        verify_reading_signature(
            KeyAlgorithm.ED25519, public_bytes(p256), reading().encode(), signature
        )


def test_a_p256_signature_does_not_verify_as_secp256k1() -> None:
    scalar = 0x1234567890ABCDEF
    p256 = ec.derive_private_key(scalar, ec.SECP256R1())
    k1 = ec.derive_private_key(scalar, ec.SECP256K1())
    signature = sign_reading(p256, reading())
    with pytest.raises(ReadingSignatureError):
        verify_reading_signature(
            KeyAlgorithm.SECP256K1, public_bytes(k1), reading().encode(), signature
        )


def test_signing_with_another_curve_is_refused() -> None:
    with pytest.raises(ReadingSignatureError, match="unsupported curve"):
        sign_reading(ec.generate_private_key(ec.SECP384R1()), reading())


# the library behind the vector: RFC 6979 and RFC 8032 reproduce


def test_deterministic_p256_signing_is_rfc6979() -> None:
    # RFC 6979 appendix A.2.5, P-256, SHA-256, message "sample".
    key = ec.derive_private_key(
        0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721, ec.SECP256R1()
    )
    r, s = utils.decode_dss_signature(
        key.sign(b"sample", ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    )
    assert r == 0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716
    assert s == 0xF7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8


def test_ed25519_is_rfc8032() -> None:
    # RFC 8032 section 7.1, test 1 (empty message).
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    signature = ed25519.Ed25519PrivateKey.from_private_bytes(seed).sign(b"")
    assert signature.hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e"
        "39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )


# the worked test vector in docs/reading-format.md


def doc_vector() -> tuple[dict[str, str], bytes]:
    """The `name = value` lines and the canonical words of the doc's worked test vector."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Worked test vector") :]
    values: dict[str, str] = {}
    words: list[tuple[int, str]] = []
    for line in section.splitlines():
        if match := re.fullmatch(r"([a-z0-9_.]+)\s*=\s*(\S+)", line.strip()):
            assert match[1] not in values, f"{match[1]} given twice in the doc"
            values[match[1]] = match[2]
        elif match := re.fullmatch(r"0x([0-9a-f]{2}) ([0-9a-f]{64})", line.strip()):
            words.append((int(match[1], 16), match[2]))
    assert [offset for offset, _ in words] == list(range(0, 256, 32)), "canonical words"
    return values, bytes.fromhex("".join(hex_word for _, hex_word in words))


def hex_value(values: dict[str, str], name: str) -> bytes:
    value = values[name]
    assert value.startswith("0x"), f"{name} is written 0x-prefixed in the doc"
    return bytes.fromhex(value[2:])


def doc_reading(values: dict[str, str]) -> Reading:
    return Reading(
        chain_id=int(values["chain_id"]),
        meter_id=hex_value(values, "meter_id"),
        seq=int(values["seq"]),
        timestamp=int(values["timestamp"]),
        import_wh=int(values["import_wh"]),
        export_wh=int(values["export_wh"]),
        status=int(values["status"]),
    )


def doc_private_key(values: dict[str, str], algorithm: KeyAlgorithm) -> MeterPrivateKey:
    secret = hex_value(values, f"{algorithm.label}.private_key")
    assert len(secret) == 32
    if algorithm is KeyAlgorithm.ED25519:
        return ed25519.Ed25519PrivateKey.from_private_bytes(secret)
    curve = ec.SECP256R1() if algorithm is KeyAlgorithm.P256 else ec.SECP256K1()
    return ec.derive_private_key(int.from_bytes(secret, "big"), curve)


def test_doc_states_the_domain_tag_the_code_uses() -> None:
    text = DOC.read_text(encoding="utf-8")
    stated = re.findall(r"DOMAIN_TAG = keccak256\(\"([^\"]+)\"\)\s+= 0x([0-9a-f]{64})", text)
    assert stated == [("EnergyLedger.Reading.v1", DOMAIN_TAG.hex())]


def test_doc_vector_canonical_bytes_digest_and_leaf_are_what_the_code_produces() -> None:
    values, canonical = doc_vector()
    r = doc_reading(values)
    assert r.encode() == canonical
    assert decode(canonical) == r
    assert r.meter_id.rstrip(b"\x00") == b"EL-VECTOR-0001"
    assert digest(canonical) == hex_value(values, "sha256_digest")
    assert reading_leaf(canonical) == hex_value(values, "merkle_leaf")


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.label)
def test_doc_vector_keys_and_signatures_are_what_the_code_produces(
    algorithm: KeyAlgorithm,
) -> None:
    values, canonical = doc_vector()
    key = doc_private_key(values, algorithm)
    public_key = hex_value(values, f"{algorithm.label}.public_key")
    signature = hex_value(values, f"{algorithm.label}.signature")
    assert public_bytes(key) == public_key
    assert sign_canonical(key, canonical) == signature
    verify_reading_signature(algorithm, public_key, canonical, signature)


def test_doc_vector_secp256k1_signature_matches_libsecp256k1() -> None:
    # An independent implementation (libsecp256k1 via coincurve, RFC 6979 nonces) agrees.
    values, canonical = doc_vector()
    key = coincurve.PrivateKey(hex_value(values, "secp256k1.private_key"))
    assert key.public_key.format(compressed=False) == hex_value(values, "secp256k1.public_key")
    recoverable = key.sign_recoverable(hashlib.sha256(canonical).digest(), hasher=None)
    assert recoverable[:64] == hex_value(values, "secp256k1.signature")
