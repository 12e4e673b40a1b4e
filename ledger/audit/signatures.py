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
"""

from __future__ import annotations

from typing import NamedTuple

from ledger.anchoring.bundle import BundleMalformed, BundleReading, parse_line
from ledger.audit.leaves import leaf_of
from ledger.errors import LedgerError
from ledger.meters.keys import KeyAlgorithm, MeterPublicKey, algorithm_of_curve, decode_public_key
from ledger.meters.registry import KeyEpochView, meter_id_bytes
from ledger.readings.keys import key_for_time
from ledger.readings.native import (
    Reading,
    ReadingFormatError,
    ReadingSignatureError,
    decode,
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


class MalformedLine(NamedTuple):
    """A line that is not a reading line of the format: the bundle is unusable (exit 2)."""

    line: int
    message: str


class _Context:
    chain_id = 0
    meters: dict[bytes, tuple[KeyEpochView, ...]] = {}
    keys: dict[tuple[bytes, int], MeterPublicKey | str] = {}


def init_worker(chain_id: int, meters: dict[bytes, tuple[KeyEpochView, ...]]) -> None:
    """What every check needs of the chain, set once per process."""
    _Context.chain_id = chain_id
    _Context.meters = meters
    _Context.keys = {}


def check_lines(lines: list[tuple[int, bytes]]) -> list[CheckedReading | MalformedLine]:
    """Checks reading lines given as (line number, raw bytes)."""
    return [_check_line(number, raw) for number, raw in lines]


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
