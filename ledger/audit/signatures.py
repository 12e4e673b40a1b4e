"""Checking a bundle's reading lines, one chunk at a time, in worker processes: the audit's hot
part (a signature verification costs several times everything else a reading needs).

`check_lines(lines)` parses each line (`ledger.anchoring.bundle.parse_line`), decodes the signed
bytes, computes the leaf (`ledger.audit.leaves.leaf_of`), picks the meter's key valid at the
reading's time from the registry's events (the rule of `MeterRegistry.keyAt`) and verifies the
signature under it, native or OCMF. It returns one compact `CheckedReading` per line, the values
taken from the signed bytes (never from the line's stated fields), and the problems found; the
order of the lines, batch coverage and sequences are checked by the one process that sees them
all (`ledger.audit.auditor`).

A worker learns the chain id and every meter's key epochs once (`init_worker`), and parses each
key once.

Speed: a reading's signature check is the one cost the audit cannot avoid, so everything else a
sound reading needs is kept to a few microseconds (`_fast_path`): a native reading
line exactly as `ledger export-bundle` writes it (compact JSON in its key order, lowercase hex
(the signature's in either case), a 64-byte r || s signature) is matched by one regular
expression instead of parsed into objects, its stated fields are checked against the signed
bytes by comparing the hex the fields encode to, and the signature is verified once in its raw
form. Anything else (another layout, an OCMF record, a DER or Ed25519 signature, a field that
differs from the signed bytes, a signature that does not verify) takes the general path, which
names the problem; the fast path only ever answers for a reading the general path would find
sound, with the same values and leaf. The fast path takes a chunk's lines in three passes, not
one line at a time: every line's fields, then every signature back to back
(`raw_ecdsa_verified`), then every leaf. Each pass keeps its own code and tables in the cache,
which made a reading 3-4 % cheaper (74.0-74.8 against 77.3-79.9 us of CPU in one process, 74.8-
76.2 against 77.1-77.7 in the audit's two workers, in alternating trials).
"""

from __future__ import annotations

import re
from binascii import Error as NotHex
from binascii import unhexlify
from typing import NamedTuple

import sha3  # type: ignore[import-untyped]  # safe-pysha3: no type information
from cryptography.hazmat.primitives.asymmetric import ec

from ledger.anchoring.bundle import MAX_LINE_BYTES, BundleMalformed, BundleReading, parse_line
from ledger.audit.leaves import leaf_of
from ledger.errors import LedgerError
from ledger.meters.keys import KeyAlgorithm, MeterPublicKey, algorithm_of_curve, decode_public_key
from ledger.meters.registry import KeyEpochView, meter_id_bytes
from ledger.readings.keys import key_for_time
from ledger.readings.native import (
    DOMAIN_TAG,
    ECDSA_ALGORITHMS,
    LEAF_TAG_V2,
    Reading,
    ReadingFormatError,
    ReadingSignatureError,
    decode,
    raw_ecdsa_verified,
    verify_signature,
)
from ledger.readings.ocmf.errors import OcmfError
from ledger.readings.ocmf.record import parse_ocmf
from ledger.readings.ocmf.values import ledger_values
from ledger.readings.ocmf.verify import signature_method, verify_ocmf
from ledger.readings.results import Rejection


class CheckedReading(NamedTuple):
    """One reading line as checked: where it is, its values from the signed bytes, its leaf,
    and its problems as (code, message) pairs (none: the reading is sound on its own)."""

    line: int
    batch_id: int
    leaf_index: int
    meter_id: bytes
    seq: int
    timestamp: int
    import_wh: int
    export_wh: int
    leaf: bytes
    problems: tuple[tuple[str, str], ...]


SentReading = tuple[int, int, int, bytes, int, int, int, int, bytes, tuple[tuple[str, str], ...]]
"""A `CheckedReading` as a plain tuple, as a worker sends it back: pickling a named tuple costs
six times as much, which at the audit's rate is a noticeable share of a reading's cost, and the
one process that books every reading reads its fields by position (`CheckedReading._make`
restores one where a discrepancy must be named)."""


class MalformedLine(NamedTuple):
    """A line that is not a reading line of the format: the bundle is unusable (exit 2)."""

    line: int
    message: str


_SingleEcdsaKey = tuple[int, int, ec.EllipticCurvePublicKey]
"""A meter's one key epoch when it is ECDSA: (valid_from, revoked_at, parsed key)."""


class _Context:
    chain_id = 0
    meters: dict[bytes, tuple[KeyEpochView, ...]] = {}
    keys: dict[tuple[bytes, int], MeterPublicKey | str] = {}
    single_keys: dict[bytes, _SingleEcdsaKey | None] = {}


def init_worker(chain_id: int, meters: dict[bytes, tuple[KeyEpochView, ...]]) -> None:
    """What every check needs of the chain, set once per process."""
    _Context.chain_id = chain_id
    _Context.meters = meters
    _Context.keys = {}
    _Context.single_keys = {}


def check_lines(first: int, lines: list[bytes]) -> list[CheckedReading | MalformedLine]:
    """Checks consecutive reading lines, the first of them line number `first`."""
    return [
        checked if isinstance(checked, MalformedLine) else CheckedReading._make(checked)
        for checked in check_chunk(first, lines)
    ]


def check_chunk(first: int, lines: list[bytes]) -> list[SentReading | MalformedLine]:
    """`check_lines` as a worker process answers it: each checked reading a `SentReading`. The
    lines come as a list of bytes and a first number, not as (number, line) pairs: pickling a
    pair per line to send it to a worker cost ten times as much."""
    return [
        fast or _sent(_check_line(number, raw))
        for number, (raw, fast) in enumerate(
            zip(lines, _fast_path(first, lines), strict=True), first
        )
    ]


READING_PREFIX = b'{"type":"reading"'
"""How every reading line of the format starts: the lines that go to the workers' checks."""

RangeSegment = list[SentReading | MalformedLine] | tuple[int, bytes]
"""A part of a checked range of lines: a run of reading lines checked (`check_chunk`'s answer),
or another line as (number, raw), for the one process that checks the lines in order."""


def check_chunk_segment(first: int, lines: list[bytes]) -> list[RangeSegment]:
    """`check_chunk`'s answer as the one segment it makes (a worker's answer for a chunk of a
    stream is read as its answer for a range of a file is)."""
    return [check_chunk(first, lines)]


def check_range(path: str, start: int, end: int, first: int) -> list[RangeSegment]:
    """`check_chunk` for the lines of a bundle file's bytes `start`..`end` (whole lines, the
    first of them line number `first`), which the worker reads itself: the parent then splits
    no line, pickles none and sends none, a noticeable share of a reading's cost at the audit's
    rate. Other lines come back as the stream reader (`bounded_lines`) gives them, with their
    newline where they have one. A reading line is checked without it (no check depends on it),
    except one of MAX_LINE_BYTES bytes or more, which keeps it: a line's length is refused the
    same way either way."""
    with open(path, "rb") as file:
        file.seek(start)
        data = file.read(end - start)
    lines = data.split(b"\n")
    unended = lines.pop()  # what follows the last newline: the file's last line if it has none
    ended = len(lines)
    if ended and max(map(len, lines)) >= MAX_LINE_BYTES:
        lines = [raw + b"\n" if len(raw) >= MAX_LINE_BYTES else raw for raw in lines]
    if unended:
        lines.append(unended)
    segments: list[RangeSegment] = []
    run: list[bytes] = []
    run_first = first
    for number, raw in enumerate(lines, first):
        if raw.startswith(READING_PREFIX):
            if not run:
                run_first = number
            run.append(raw)
            continue
        if run:
            segments.append(check_chunk(run_first, run))
            run = []
        had_newline = number - first < ended and not raw.endswith(b"\n")
        segments.append((number, raw + b"\n" if had_newline else raw))
    if run:
        segments.append(check_chunk(run_first, run))
    return segments


def _sent(checked: CheckedReading | MalformedLine) -> SentReading | MalformedLine:
    return checked if isinstance(checked, MalformedLine) else tuple(checked)  # type: ignore[return-value]


# At most 19 and 9 digits: below 2**64 and 2**32 by construction, so the fast path needs no
# range check (a longer value, rare but valid, takes the general path).
_UINT64 = rb"(0|[1-9][0-9]{0,18})"
_UINT32 = rb"(0|[1-9][0-9]{0,8})"
_HASH = rb'"0x[0-9a-f]{64}"'
_EXPORTED_NATIVE_LINE = re.compile(
    rb'\{"type":"reading","batch_id":' + _UINT64 + rb',"leaf_index":' + _UINT32
    + rb',"meter_id":"0x([0-9a-f]{64})","seq":' + _UINT64 + rb',"timestamp":' + _UINT64
    + rb',"import_wh":' + _UINT64 + rb',"export_wh":' + _UINT64 + rb',"status":' + _UINT32
    + rb',"key_epoch":(?:0|[1-9][0-9]{0,8}),"source":"native","canonical":"0x((?s:.){512})"'
    + rb',"signature":"0x((?s:.){128})","leaf":' + _HASH
    + rb',"proof":\[(?:' + _HASH + rb"(?:," + _HASH + rb")*)?\]\}\n?"
)  # fmt: skip
"""A native reading line as `ledger.anchoring.bundle.reading_line` writes it, raw signature.
The canonical bytes and the signature are matched as any 512 and 128 characters, which the
regular expression engine skips at once where it tests a hex digit class character by character
(half the match's time): the canonical hex must then equal the hex the stated fields encode to,
and the signature must unhexlify, so either is hex or the line takes the general path."""
_DOMAIN_TAG_HEX = DOMAIN_TAG.hex().encode()
_keccak_256 = sha3.keccak_256


_ExportedNative = tuple[
    int, int, bytes, int, int, int, int, bytes, bytes, ec.EllipticCurvePublicKey
]
"""A native line as exported, its stated fields found to be its signed ones and its meter's key
at its time found: (batch_id, leaf_index, meter_id, seq, timestamp, import_wh, export_wh,
canonical, signature, key); its signature is not checked yet."""


def _fast_path(first: int, lines: list[bytes]) -> list[SentReading | None]:
    """The checked reading of each sound native line as exported (see the module docstring), as
    a `SentReading`, or None: the line needs the general path."""
    exported = [_exported_native(raw) for raw in lines]
    verified = raw_ecdsa_verified(
        [None if fields is None else (fields[9], fields[7], fields[8]) for fields in exported]
    )
    return [
        _sound_reading(number, fields) if sound and fields is not None else None
        for number, (fields, sound) in enumerate(zip(exported, verified, strict=True), first)
    ]


def _exported_native(raw: bytes) -> _ExportedNative | None:
    match = _EXPORTED_NATIVE_LINE.fullmatch(raw) if len(raw) <= MAX_LINE_BYTES else None
    if match is None:
        return None
    (batch, leaf_index, meter_hex, seq_text, timestamp_text, import_text, export_text, status,
     canonical_hex, signature_hex) = match.groups()  # fmt: skip
    seq, timestamp = int(seq_text), int(timestamp_text)
    import_wh, export_wh = int(import_text), int(export_text)
    # The bytes these fields encode to, chain id included, are the signed bytes: the stated
    # fields are the signed ones and the bytes are canonical (zero padding, this chain).
    if canonical_hex != b"%s%064x%s%064x%064x%064x%064x%064x" % (
        _DOMAIN_TAG_HEX,
        _Context.chain_id,
        meter_hex,
        seq,
        timestamp,
        import_wh,
        export_wh,
        int(status),
    ):
        return None
    try:
        signature = unhexlify(signature_hex)
    except NotHex:
        return None
    meter_id = unhexlify(meter_hex)
    public_key = _ecdsa_key_at(meter_id, timestamp)
    if public_key is None:
        return None
    canonical = unhexlify(canonical_hex)
    return (int(batch), int(leaf_index), meter_id, seq, timestamp, import_wh, export_wh,
            canonical, signature, public_key)  # fmt: skip


def _sound_reading(number: int, fields: _ExportedNative) -> SentReading:
    """The checked reading of an exported native line whose signature verified."""
    batch, leaf_index, meter_id, seq, timestamp, import_wh, export_wh, canonical, signature, _ = (
        fields
    )
    # anchored_leaf(canonical, canonical, signature), its four hashes written out here (a few
    # microseconds a reading less; the tests hold both to the same leaf).
    leaf = _keccak_256(
        _keccak_256(
            LEAF_TAG_V2
            + canonical[32:]
            + _keccak_256(canonical).digest()
            + _keccak_256(signature).digest()
        ).digest()
    ).digest()
    return (number, batch, leaf_index, meter_id, seq, timestamp, import_wh, export_wh, leaf, ())


def _ecdsa_key_at(meter_id: bytes, timestamp: int) -> ec.EllipticCurvePublicKey | None:
    """The meter's ECDSA key valid at `timestamp` (the rule of `key_for_time`), or None: no such
    key (the general path says why) or not ECDSA."""
    if meter_id not in _Context.single_keys:
        _Context.single_keys[meter_id] = _single_ecdsa_key(meter_id)
    single = _Context.single_keys[meter_id]
    if single is not None:
        valid_from, revoked_at, public_key = single
        if valid_from <= timestamp and (revoked_at == 0 or timestamp < revoked_at):
            return public_key
        return None
    epochs = _Context.meters.get(meter_id)
    key = None if epochs is None else key_for_time(epochs, timestamp)
    if not isinstance(key, KeyEpochView) or key.algorithm not in ECDSA_ALGORITHMS:
        return None
    parsed = _public_key(meter_id, key)
    return parsed if isinstance(parsed, ec.EllipticCurvePublicKey) else None


def _single_ecdsa_key(meter_id: bytes) -> _SingleEcdsaKey | None:
    """A meter's key when it has had one epoch only, ECDSA (most meters: no lookup by time)."""
    epochs = _Context.meters.get(meter_id)
    if epochs is None or len(epochs) != 1 or epochs[0].algorithm not in ECDSA_ALGORITHMS:
        return None
    (epoch,) = epochs
    parsed = _public_key(meter_id, epoch)
    if not isinstance(parsed, ec.EllipticCurvePublicKey):
        return None
    return epoch.valid_from, epoch.revoked_at, parsed


def _check_line(number: int, raw: bytes) -> CheckedReading | MalformedLine:
    try:
        item = parse_line(number, raw)
    except BundleMalformed as error:
        return MalformedLine(number, str(error))
    except LedgerError as error:
        return MalformedLine(number, f"bundle line {number}: {error}")
    if not isinstance(item, BundleReading):
        return MalformedLine(number, f"bundle line {number}: expected a reading line")
    return check_reading(number, item)


def check_reading(number: int, item: BundleReading) -> CheckedReading:
    """The checks of one parsed reading (see the module docstring)."""
    problems: list[tuple[str, str]] = []
    try:
        reading: Reading | None = decode(item.canonical)
    except ReadingFormatError as error:
        reading = None
        problems.append(("reading_malformed", f"the signed bytes are not a reading: {error}"))
    if reading is None:
        leaf = _leaf(item, None)
        values = (item.meter_id, item.seq, item.timestamp, item.import_wh, item.export_wh)
        return CheckedReading(
            number, item.batch_id, item.leaf_index, *values, leaf, tuple(problems)
        )
    stated = (item.meter_id, item.seq, item.timestamp, item.import_wh, item.export_wh, item.status)
    signed = (
        reading.meter_id,
        reading.seq,
        reading.timestamp,
        reading.import_wh,
        reading.export_wh,
        reading.status,
    )
    if stated != signed:
        names = ("meter_id", "seq", "timestamp", "import_wh", "export_wh", "status")
        differing = [
            f"{name} {a!r} (signed {b!r})"
            for name, a, b in zip(names, stated, signed, strict=True)
            if a != b and name != "meter_id"
        ]
        problems.append(
            (
                "reading_fields_mismatch",
                "the bundle's stated fields differ from the signed bytes: " + ", ".join(differing),
            )
        )
    if reading.chain_id != _Context.chain_id:
        problems.append(
            (
                "reading_wrong_chain",
                f"signed for chain {reading.chain_id}, the ledger is chain {_Context.chain_id}",
            )
        )
    signature_problem, form = _signature_problem(item, reading)
    if signature_problem is not None:
        problems.append(signature_problem)
    leaf = _leaf(item, form)
    return CheckedReading(
        number,
        item.batch_id,
        item.leaf_index,
        reading.meter_id,
        reading.seq,
        reading.timestamp,
        reading.import_wh,
        reading.export_wh,
        leaf,
        tuple(problems),
    )


def _leaf(item: BundleReading, verified_form: bytes | None) -> bytes:
    try:
        return leaf_of(item, verified_form)
    except LedgerError:
        # No leaf: the batch's root cannot be rebuilt, which is reported per batch; the reading's
        # own problem (malformed bytes, an unreadable OCMF record) is reported with it.
        return b""


def _signature_problem(
    item: BundleReading, reading: Reading
) -> tuple[tuple[str, str] | None, bytes | None]:
    """Why the reading is not signed by its meter's key at its time (None: it is), and a native
    signature's fixed form when it verified (what its leaf commits to)."""
    epochs = _Context.meters.get(reading.meter_id)
    if epochs is None:
        return ("reading_unknown_meter", "the meter has no MeterRegistered event"), None
    key = key_for_time(epochs, reading.timestamp)
    if key is Rejection.NO_KEY_AT_TIME:
        return ("reading_no_key_at_time", f"the meter had no key yet at {reading.timestamp}"), None
    if not isinstance(key, KeyEpochView):
        problem = f"the meter's key valid at {reading.timestamp} was revoked by then"
        return ("reading_key_revoked", problem), None
    if item.source == "ocmf":
        return _ocmf_problem(item, reading, key), None
    public_key = _public_key(reading.meter_id, key)
    if isinstance(public_key, str):
        return ("reading_signature_invalid", public_key), None
    try:
        form = verify_signature(key.algorithm, public_key, item.canonical, item.signature)
    except ReadingSignatureError as error:
        return ("reading_signature_invalid", f"{error} (key epoch {key.index})"), None
    return None, form


def _ocmf_problem(
    item: BundleReading, reading: Reading, key: KeyEpochView
) -> tuple[str, str] | None:
    assert item.ocmf is not None  # the bundle's reader requires it of an OCMF line
    try:
        record = parse_ocmf(item.ocmf)
        values = ledger_values(record)
        mapped = Reading(
            chain_id=reading.chain_id,
            meter_id=meter_id_bytes(values.meter_serial),
            seq=values.seq,
            timestamp=values.timestamp,
            import_wh=values.import_wh,
            export_wh=values.export_wh,
            status=int(values.status),
        ).encode()
    except (LedgerError, UnicodeError) as error:
        return ("reading_ocmf_mismatch", f"the OCMF record does not map onto a reading: {error}")
    if mapped != item.canonical:
        return (
            "reading_ocmf_mismatch",
            "the OCMF record maps onto other values than the canonical bytes anchored",
        )
    try:
        method = signature_method(record.signature.algorithm)
        if algorithm_of_curve(method.curve) is not key.algorithm:
            return (
                "reading_signature_invalid",
                f"the record is signed with {method.identifier}, the meter's key (epoch "
                f"{key.index}) is {key.algorithm.label}",
            )
        verify_ocmf(record, key.public_key)
    except OcmfError as error:
        return ("reading_signature_invalid", f"{error} (key epoch {key.index})")
    return None


def _public_key(meter_id: bytes, key: KeyEpochView) -> MeterPublicKey | str:
    """The parsed key of an epoch (cached), or why the registry's key cannot be parsed."""
    cached = _Context.keys.get((meter_id, key.index))
    if cached is None:
        try:
            cached = decode_public_key(KeyAlgorithm(key.algorithm), key.public_key)
        except LedgerError as error:
            cached = f"key epoch {key.index} cannot be read: {error}"
        _Context.keys[(meter_id, key.index)] = cached
    return cached
