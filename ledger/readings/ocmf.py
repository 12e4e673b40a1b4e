"""OCMF (Open Charge Metering Format) signed readings: parse, verify, map onto registers.

An OCMF record is `OCMF|{payload}|{signature}`. The signed bytes are exactly the payload text
between the leading `OCMF|` and the last `|`, as received: they are kept as bytes and never
re-serialised, so what is checked and stored is exactly what the meter signed, and any other OCMF
verifier (the S.A.F.E. Transparenzsoftware, Chargy, ...) can check the stored record again.

Three steps, each usable alone:

- `parse_ocmf` splits the record, parses both JSON sections and the readings (`RD`), keeping every
  reading value as an exact `Decimal` in its own unit. It does not need a key.
- `verify_ocmf` checks the ECDSA signature (`SA`, default `ECDSA-secp256r1-SHA256`) with a public
  key given as hex or base64 DER SubjectPublicKeyInfo, raw hex `x||y`, a SEC1 point or PEM.
- `OcmfRecord.register_readings` maps the import (`1-0:1.8.0`) and export (`1-0:2.8.0`) readings
  onto whole watt-hours; a value that is not a whole, non-negative number of Wh is refused.
- `ledger_values` turns a whole record into the fields of ONE ledger reading (meter serial `MS`,
  seq from the pagination `PG`, time, import and export rounded down to whole Wh, status flags),
  as the gateway ingests it (docs/ocmf.md, "Ingestion").

Every failure is an `OcmfError` (a `LedgerError`) with a stable `code`:

    OcmfError                    ocmf_error
     +-- OcmfMalformed           ocmf_malformed              not `OCMF|..|..`, bad JSON, bad SD
     +-- OcmfBadValue            ocmf_bad_value              a reading value or time is unusable
     +-- OcmfUnsupportedAlgorithm ocmf_unsupported_algorithm  `SA` is not ECDSA-<curve>-<SHA-2>
     +-- OcmfUnsupportedCurve    ocmf_unsupported_curve      secp192k1, unknown curves
     +-- OcmfBadKey              ocmf_bad_key                undecodable key, or not on SA's curve
     +-- OcmfBadSignature        ocmf_bad_signature          the signature does not verify
     +-- OcmfUnmappable          ocmf_unmappable             valid OCMF, but no ledger reading
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal
from enum import IntFlag, StrEnum
from types import MappingProxyType
from typing import Any, Final, NewType

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ledger.errors import LedgerError

Wh = NewType("Wh", int)
"""A register value in whole watt-hours."""

HEADER: Final = b"OCMF|"
DEFAULT_ALGORITHM: Final = "ECDSA-secp256r1-SHA256"
DEFAULT_ENCODING: Final = "hex"
DEFAULT_MIME: Final = "application/x-der"
# Registers are unsigned 64-bit on the ledger; a larger value cannot be recorded.
MAX_WH: Final = 2**64 - 1

# Fields of an `RD` entry that, when omitted, keep the value of the previous entry of the same
# record (OCMF, "Readings"). `RV` and `CL` are values and never carry over.
_INHERITED: Final = ("TM", "TX", "RI", "RU", "RT", "EF", "ST")
_UNIT_EXPONENT: Final = {"Wh": 0, "kWh": 3}
_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})[,.](\d{3})([+-])(\d{2})(\d{2}) ([A-Z])",
    re.ASCII,
)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
# A-B:C.D.E*F, in decimal (`1-0:1.8.0*255`) or two-digit hex (`01-00:01.08.00.FF`) notation,
# with OCMF's placeholders `b` (any channel) and `e` (any tariff) as in `1-b:1.8.e`.
_OBIS = re.compile(
    r"(?P<a>\d{1,3})-(?P<b>\d{1,3}|[bB]):(?P<c>\d{1,3})\.(?P<d>\d{1,3})\.(?P<e>\d{1,3}|[eE])"
    r"(?:[*.](?P<f>\d{1,3}|[fF]{2}))?",
    re.ASCII,
)
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+", re.ASCII)
_SIGNATURE_ALGORITHM = re.compile(r"ECDSA-(?P<curve>[A-Za-z0-9]+)-(?P<hash>SHA[0-9]+)", re.ASCII)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# `PG`: `T` (transaction) or `F` (fiscal) and the record's counter, in decimal.
_PAGINATION = re.compile(r"(?P<kind>[TF])(?P<counter>[0-9]+)", re.ASCII)
MAX_SEQ: Final = 2**64 - 1


class OcmfError(LedgerError):
    """Root of every OCMF error."""

    code = "ocmf_error"


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


class Register(StrEnum):
    """The ledger's registers, named by OBIS code; both cumulative, in Wh."""

    IMPORT = "1-0:1.8.0"
    EXPORT = "1-0:2.8.0"


class TimeStatus(StrEnum):
    """The synchronisation flag after an OCMF time (`TM`)."""

    UNSYNCHRONIZED = "U"
    INFORMATIVE = "I"
    SYNCHRONIZED = "S"
    RELATIVE = "R"  # informative start, duration measured with legal-metrology accuracy


class StatusFlag(IntFlag):
    """Bits of the `status` word of a ledger reading taken from an OCMF record; 0: none set.

    Native readings give their status bits no meaning (docs/reading-format.md). For an OCMF
    record the gateway sets these from the `RD` entries the registers were taken from, so the
    anchored reading itself says whether the meter vouched for its value and its clock.
    """

    METER_STATUS = 0x01  # `ST` is present and not `G` (good)
    ENERGY_ERROR = 0x02  # `EF` contains `E`: the energy value is unusable
    TIME_ERROR = 0x04  # `EF` contains `t`: the time is unusable
    TIME_UNSYNCHRONIZED = 0x08  # `TM` ends in `U`
    TIME_INFORMATIVE = 0x10  # `TM` ends in `I`
    TIME_RELATIVE = 0x20  # `TM` ends in `R`


_TIME_FLAGS: Final = {
    TimeStatus.SYNCHRONIZED: StatusFlag(0),
    TimeStatus.UNSYNCHRONIZED: StatusFlag.TIME_UNSYNCHRONIZED,
    TimeStatus.INFORMATIVE: StatusFlag.TIME_INFORMATIVE,
    TimeStatus.RELATIVE: StatusFlag.TIME_RELATIVE,
}


@dataclass(frozen=True)
class OcmfSignature:
    """The signature section: `SA` (effective algorithm), `SE`, `SM` and the decoded `SD`."""

    algorithm: str
    encoding: str
    mime: str
    data: bytes


@dataclass(frozen=True)
class OcmfReading:
    """One `RD` entry, with fields omitted in the record inherited from the entry before.

    Attributes:
        index: position in `RD`, from 0.
        timestamp: Unix seconds (floor of `timestamp_ms / 1000`).
        timestamp_ms: Unix milliseconds, exactly as `TM` states them.
        time_status: the flag after the time (`S` synchronised, ...).
        transaction: `TX` (`B` begin, `C` charging, `E` end, ...), None for fiscal readings.
        status: `ST`, the meter state (`G` good).
        error_flags: `EF` (`E` energy, `t` time unusable), None when absent.
        obis: `RI` as received, None when absent.
        register: the ledger register `RI` denotes, None for any other quantity.
        value: `RV` exactly as written (numbers and padded strings alike), None for an event.
        unit: `RU` as received.
    """

    index: int
    timestamp: int
    timestamp_ms: int
    time_status: TimeStatus
    transaction: str | None
    status: str | None
    error_flags: str | None
    obis: str | None
    register: Register | None
    value: Decimal | None
    unit: str | None

    def to_wh(self, *, round_down: bool = False) -> Wh:
        """The value in whole watt-hours.

        Args:
            round_down: drop a fraction of a Wh (`0.2596 kWh` -> 259 Wh) instead of refusing it.
                The ledger's ingestion does this (see `ledger_values`).

        Raises:
            OcmfBadValue: no value, a unit other than kWh/Wh, negative, not a whole number of
                Wh after exact conversion (unless `round_down`), or above `MAX_WH`.
        """
        if self.value is None:
            raise OcmfBadValue(index=self.index, name="RV", value=None, reason="is missing")
        if self.unit is None or self.unit not in _UNIT_EXPONENT:
            raise OcmfBadValue(
                index=self.index,
                name="RU",
                value=self.unit,
                reason="is not an energy unit (kWh, Wh)",
            )
        return _whole_wh(
            self.index, self.value, _UNIT_EXPONENT[self.unit], self.unit, round_down=round_down
        )


@dataclass(frozen=True)
class RegisterReading:
    """An import or export register value taken from an OCMF record, in whole Wh."""

    register: Register
    wh: Wh
    timestamp: int
    timestamp_ms: int
    time_status: TimeStatus
    transaction: str | None
    status: str | None
    error_flags: str | None


@dataclass(frozen=True)
class LedgerValues:
    """The ledger reading an OCMF record stands for, but for the chain id (see `ledger_values`).

    Attributes:
        meter_serial: `MS`, the id the meter is registered under in the MeterRegistry.
        seq: the counter of `PG` (`T17` -> 17).
        timestamp: Unix seconds of the latest import/export entry (its `TM`, rounded down).
        timestamp_ms: the same time in milliseconds, exactly as `TM` states it.
        import_wh: `1-0:1.8.0` at that time, rounded down to whole Wh; 0 when not reported.
        export_wh: `1-0:2.8.0` at that time, rounded down to whole Wh; 0 when not reported.
        status: `StatusFlag` bits of the entries the registers were taken from.
        entries: the `RD` indexes the registers were taken from.
    """

    meter_serial: str
    seq: int
    timestamp: int
    timestamp_ms: int
    import_wh: Wh
    export_wh: Wh
    status: StatusFlag
    entries: tuple[int, ...]


@dataclass(frozen=True)
class OcmfRecord:
    """A parsed OCMF record. `payload_bytes` are the signed bytes, exactly as received.

    Attributes:
        raw: the whole record as received (surrounding whitespace included).
        payload_bytes: the bytes between `OCMF|` and the last `|`: what the meter signed.
        signature: the parsed signature section.
        readings: the `RD` entries, in order.
        pagination: `PG` (`T12` transaction or `F7` fiscal counter), the meter's sequence.
        meter_serial: `MS`.
        gateway_serial: `GS`.
        format_version: `FV`.
        payload: the whole payload JSON (numbers as int or Decimal), read-only.
    """

    raw: bytes
    payload_bytes: bytes
    signature: OcmfSignature
    readings: tuple[OcmfReading, ...]
    pagination: str | None
    meter_serial: str | None
    gateway_serial: str | None
    format_version: str | None
    payload: Mapping[str, Any] = field(compare=False, repr=False)

    def register_readings(self) -> tuple[RegisterReading, ...]:
        """The import and export readings in whole Wh; other quantities and events are skipped.

        Raises:
            OcmfBadValue: an import or export value that is not a whole number of Wh.
        """
        return tuple(
            RegisterReading(
                register=reading.register,
                wh=reading.to_wh(),
                timestamp=reading.timestamp,
                timestamp_ms=reading.timestamp_ms,
                time_status=reading.time_status,
                transaction=reading.transaction,
                status=reading.status,
                error_flags=reading.error_flags,
            )
            for reading in self.readings
            if reading.register is not None and reading.value is not None
        )


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


def parse_ocmf(raw: str | bytes) -> OcmfRecord:
    """Parse `OCMF|{payload}|{signature}` without checking the signature.

    Whitespace around the whole record is ignored; the payload's bytes are kept as received.
    A `str` is taken as its UTF-8 encoding.

    Raises:
        OcmfMalformed: not an OCMF record, invalid JSON, missing or undecodable `SD`.
        OcmfBadValue: a reading's `RV` is not a number, or its `TM` is not an OCMF time.
    """
    if isinstance(raw, str):
        try:
            data = raw.encode("utf-8")
        except UnicodeEncodeError as error:
            raise OcmfMalformed(reason=f"text is not encodable as UTF-8 ({error.reason})") from None
    else:
        data = bytes(raw)
    body = data.strip(b" \t\r\n")
    if not body.startswith(HEADER):
        raise OcmfMalformed(reason="does not start with 'OCMF|'")
    last_bar = body.rfind(b"|")
    if last_bar < len(HEADER):
        raise OcmfMalformed(reason="no '|' between the payload and the signature section")
    payload_bytes = body[len(HEADER) : last_bar]
    payload = _json_object(payload_bytes, "payload")
    signature = _signature(_json_object(body[last_bar + 1 :], "signature"))
    return OcmfRecord(
        raw=data,
        payload_bytes=payload_bytes,
        signature=signature,
        readings=_readings(payload),
        pagination=_optional_text(payload, "PG"),
        meter_serial=_optional_text(payload, "MS"),
        gateway_serial=_optional_text(payload, "GS"),
        format_version=_optional_text(payload, "FV"),
        payload=MappingProxyType(payload),
    )


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


def ledger_values(record: OcmfRecord) -> LedgerValues:
    """The one ledger reading an OCMF record maps onto (docs/ocmf.md, "Ingestion").

    The meter is `MS`; the seq is the counter of the transaction pagination `PG` = `T<n>`. The
    time is that of the latest import or export entry in `RD`, and each register is the last
    entry of that register at that time; earlier entries (a transaction's begin value) stay in
    the raw record only. Values are rounded DOWN to whole Wh (registers are cumulative, so the
    error stays below 1 Wh and never adds up); a register the record does not report is 0.

    Raises:
        OcmfUnmappable: no `MS`; `PG` missing, fiscal (`F<n>`), not `T<digits>` or above
            2^64-1; no import or export value; a register whose last value is older than the
            record's latest one; a time before 1970.
        OcmfBadValue: a value taken has a unit other than kWh/Wh, is negative or too large.
    """
    if not record.meter_serial:
        raise OcmfUnmappable(
            reason="MS (meter serial) is missing or empty; the ledger identifies the meter by it"
        )
    seq = pagination_seq(record.pagination)
    entries = [r for r in record.readings if r.register is not None and r.value is not None]
    if not entries:
        raise OcmfUnmappable(
            reason="RD has no import (1-0:1.8.0) or export (1-0:2.8.0) register value"
        )
    latest = max(entry.timestamp_ms for entry in entries)
    if latest < 0:
        raise OcmfUnmappable(reason=f"the readings' time {latest} ms is before 1970")
    values: dict[Register, Wh] = {}
    status = StatusFlag(0)
    used: list[int] = []
    for register in Register:
        of_register = [entry for entry in entries if entry.register is register]
        if not of_register:
            values[register] = Wh(0)
            continue
        at_latest = [entry for entry in of_register if entry.timestamp_ms == latest]
        if not at_latest:
            raise OcmfUnmappable(
                reason=f"the last {register.name.lower()} value (RD entry "
                f"{of_register[-1].index}) is older than the record's latest register value: "
                "both registers must be reported at the same time"
            )
        chosen = at_latest[-1]
        values[register] = chosen.to_wh(round_down=True)
        status |= _status_flags(chosen)
        used.append(chosen.index)
    return LedgerValues(
        meter_serial=record.meter_serial,
        seq=seq,
        timestamp=latest // 1000,
        timestamp_ms=latest,
        import_wh=values[Register.IMPORT],
        export_wh=values[Register.EXPORT],
        status=status,
        entries=tuple(sorted(used)),
    )


def pagination_seq(pagination: str | None) -> int:
    """The ledger seq of a record's `PG`: the counter of a transaction record, `T17` -> 17.

    Raises:
        OcmfUnmappable: `PG` is missing, a fiscal record's (`F<n>`: its counter runs apart from
            the `T` counter, so both cannot share one seq space), not `T<digits>`, or > 2^64-1.
    """
    if pagination is None:
        raise OcmfUnmappable(reason="PG (pagination) is missing; the ledger's seq comes from it")
    match = _PAGINATION.fullmatch(pagination)
    if match is None:
        raise OcmfUnmappable(reason=f"PG {pagination!r} is not T or F and a decimal counter")
    if match["kind"] == "F":
        raise OcmfUnmappable(
            reason=f"PG {pagination!r} is a fiscal record; the seq is the transaction counter "
            "(T), which fiscal records do not share"
        )
    counter = match["counter"]
    # Checked on the digits first: int() of thousands of digits is slow (and refused past 4300).
    if len(counter.lstrip("0")) > 20 or int(counter) > MAX_SEQ:
        raise OcmfUnmappable(reason=f"PG counter {counter} exceeds {MAX_SEQ}")
    return int(counter)


def _status_flags(reading: OcmfReading) -> StatusFlag:
    flags = _TIME_FLAGS[reading.time_status]
    if reading.status is not None and reading.status != "G":
        flags |= StatusFlag.METER_STATUS
    if reading.error_flags is not None:
        if "E" in reading.error_flags:
            flags |= StatusFlag.ENERGY_ERROR
        if "t" in reading.error_flags:
            flags |= StatusFlag.TIME_ERROR
    return flags


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
        key = _checked_ec_key(_load(serialization.load_pem_public_key, public_key.encode()))
    else:
        data = _key_bytes(public_key) if isinstance(public_key, str) else bytes(public_key)
        key = _key_from_bytes(data, method)
    if key.curve.name != method.curve.name:
        raise OcmfBadKey(
            reason=f"the key is on {key.curve.name} but the signature algorithm "
            f"{method.identifier} needs {method.curve.name}"
        )
    return key


def obis_register(obis: str) -> Register | None:
    """The ledger register an OBIS code denotes, or None.

    Import is `1-0:1.8.0` and export `1-0:2.8.0` (total, cumulative), also written with the
    channel placeholder `b`, the tariff placeholder `e`, a trailing `*255`/`.FF`, or two-digit
    hex groups (`01-00:01.08.00.FF`). Tariff registers (`1.8.1`), other value groups (`*198`)
    and other quantities (`98.8.0`, `0.8.6`) are not registers of the ledger.
    """
    match = _OBIS.fullmatch(obis)
    if match is None:
        return None
    medium, channel, quantity, kind, tariff, group_f = match.group("a", "b", "c", "d", "e", "f")
    if int(medium) != 1 or int(kind) != 8:
        return None
    if channel not in ("b", "B") and int(channel) != 0:
        return None
    if tariff not in ("e", "E") and int(tariff) != 0:
        return None
    if group_f is not None and group_f.upper() not in ("FF", "255"):
        return None
    return {1: Register.IMPORT, 2: Register.EXPORT}.get(int(quantity))


def parse_ocmf_time(text: str, *, index: int = 0) -> tuple[int, TimeStatus]:
    """`2018-07-24T13:22:04,000+0200 S` -> (Unix milliseconds, time status).

    Raises:
        OcmfBadValue: not `YYYY-MM-DDThh:mm:ss,mmm+hhmm F` or not a real date and time.
    """
    match = _TIME.fullmatch(text)
    if match is None:
        raise OcmfBadValue(
            index=index, name="TM", value=text, reason="is not YYYY-MM-DDThh:mm:ss,mmm+hhmm <flag>"
        )
    year, month, day, hour, minute, second, millis = (int(match[i]) for i in range(1, 8))
    sign = -1 if match[8] == "-" else 1
    offset = sign * timedelta(hours=int(match[9]), minutes=int(match[10]))
    try:
        status = TimeStatus(match[11])
        moment = datetime(
            year, month, day, hour, minute, second, millis * 1000, tzinfo=timezone(offset)
        )
    except ValueError as error:
        raise OcmfBadValue(
            index=index, name="TM", value=text, reason=f"is invalid: {error}"
        ) from None
    return (moment - _EPOCH) // timedelta(milliseconds=1), status


def _json_object(section: bytes, name: str) -> dict[str, Any]:
    try:
        text = section.decode("utf-8")
        value = json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_keys,
        )
    except UnicodeDecodeError:
        raise OcmfMalformed(reason=f"the {name} section is not UTF-8") from None
    except json.JSONDecodeError as error:
        raise OcmfMalformed(
            reason=f"the {name} section is not JSON: {error.msg} at character {error.pos}"
        ) from None
    except (ValueError, RecursionError) as error:
        raise OcmfMalformed(reason=f"the {name} section is not usable JSON: {error}") from None
    if not isinstance(value, dict):
        raise OcmfMalformed(reason=f"the {name} section is not a JSON object")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers may keep different copies of a duplicated key: refuse the ambiguity.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _signature(section: dict[str, Any]) -> OcmfSignature:
    algorithm = _signature_field(section, "SA", DEFAULT_ALGORITHM)
    encoding = _signature_field(section, "SE", DEFAULT_ENCODING)
    mime = _signature_field(section, "SM", DEFAULT_MIME)
    data = _signature_field(section, "SD", None)
    if mime != DEFAULT_MIME:
        raise OcmfMalformed(reason=f"signature mime type SM {mime!r} is not {DEFAULT_MIME}")
    if encoding == "hex":
        if not _HEX.fullmatch(data):
            raise OcmfMalformed(reason="signature data SD is not hex")
        decoded = bytes.fromhex(data)
    elif encoding == "base64":
        try:
            decoded = base64.b64decode(data, validate=True)
        except binascii.Error:
            raise OcmfMalformed(reason="signature data SD is not base64") from None
    else:
        raise OcmfMalformed(reason=f"signature encoding SE {encoding!r} is not hex or base64")
    if not decoded:
        raise OcmfMalformed(reason="signature data SD is empty")
    return OcmfSignature(algorithm=algorithm, encoding=encoding, mime=mime, data=decoded)


def _signature_field(section: dict[str, Any], key: str, default: str | None) -> str:
    value = section.get(key, default)
    if not isinstance(value, str):
        problem = "missing" if value is None else "not a string"
        raise OcmfMalformed(reason=f"signature field {key} is {problem}")
    return value


def _readings(payload: dict[str, Any]) -> tuple[OcmfReading, ...]:
    entries = payload.get("RD")
    if not isinstance(entries, list) or not entries:
        raise OcmfMalformed(reason="RD must be a non-empty list of readings")
    current: dict[str, str] = {}
    readings = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise OcmfMalformed(reason=f"RD entry {index} is not an object")
        for key in _INHERITED:
            if key in entry:
                value = entry[key]
                if not isinstance(value, str):
                    raise OcmfBadValue(index=index, name=key, value=value, reason="is not a string")
                current[key] = value
        if "TM" not in current:
            raise OcmfBadValue(index=index, name="TM", value=None, reason="is missing")
        timestamp_ms, time_status = parse_ocmf_time(current["TM"], index=index)
        obis = current.get("RI")
        readings.append(
            OcmfReading(
                index=index,
                timestamp=timestamp_ms // 1000,
                timestamp_ms=timestamp_ms,
                time_status=time_status,
                transaction=current.get("TX"),
                status=current.get("ST"),
                error_flags=current.get("EF"),
                obis=obis,
                register=None if obis is None else obis_register(obis),
                value=_reading_value(index, entry["RV"]) if "RV" in entry else None,
                unit=current.get("RU"),
            )
        )
    return tuple(readings)


def _reading_value(index: int, value: object) -> Decimal:
    # JSON numbers arrive as int or Decimal (never float); some meters send padded strings.
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip(" ")):
        return Decimal(value.strip(" "))
    raise OcmfBadValue(index=index, name="RV", value=value, reason="is not a number")


def _whole_wh(
    index: int, value: Decimal, exponent: int, unit: str, *, round_down: bool = False
) -> Wh:
    sign, digits, value_exponent = value.as_tuple()
    if not isinstance(value_exponent, int):
        raise OcmfBadValue(index=index, name="RV", value=value, reason="is not finite")
    # Scaling by 10**exponent only moves the exponent: exact, whatever the Decimal context.
    scaled = Decimal((sign, digits, value_exponent + exponent))
    shown = f"{value} {unit}"
    if scaled < 0:
        raise OcmfBadValue(index=index, name="RV", value=shown, reason="is negative")
    if scaled.adjusted() >= 20 or scaled > MAX_WH:
        raise OcmfBadValue(index=index, name="RV", value=shown, reason=f"exceeds {MAX_WH} Wh")
    whole = scaled.to_integral_value(rounding=ROUND_DOWN)
    if whole != scaled and not round_down:
        raise OcmfBadValue(
            index=index, name="RV", value=shown, reason=f"is {scaled} Wh, not a whole number of Wh"
        )
    return Wh(int(whole))


def _optional_text(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise OcmfMalformed(reason=f"payload field {key} is not a string")
    return value


def _key_bytes(text: str) -> bytes:
    compact = "".join(text.split())
    if compact[:2] in ("0x", "0X"):
        compact = compact[2:]
    if _HEX.fullmatch(compact):
        return bytes.fromhex(compact)
    try:
        return base64.b64decode(compact, validate=True)
    except binascii.Error:
        raise OcmfBadKey(reason="the key text is neither hex nor base64") from None


def _key_from_bytes(data: bytes, method: SignatureMethod) -> ec.EllipticCurvePublicKey:
    size = method.coordinate_size
    if len(data) == 2 * size:
        point = b"\x04" + data  # raw x||y
    elif (len(data) == 2 * size + 1 and data[:1] == b"\x04") or (
        len(data) == size + 1 and data[:1] in (b"\x02", b"\x03")
    ):
        point = data  # SEC1 point, uncompressed or compressed
    else:
        return _checked_ec_key(_load(serialization.load_der_public_key, data))
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(method.curve, point)
    except UnsupportedAlgorithm as error:
        raise OcmfUnsupportedCurve(curve=method.curve.name, reason=str(error)) from None
    except ValueError as error:
        raise OcmfBadKey(reason=f"not a point on {method.curve.name}: {error}") from None


def _load(loader: Any, data: bytes) -> object:
    try:
        return loader(data)
    except UnsupportedAlgorithm as error:
        raise OcmfUnsupportedCurve(curve="of the public key", reason=str(error)) from None
    except ValueError as error:
        raise OcmfBadKey(
            reason="not DER/PEM SubjectPublicKeyInfo, raw x||y or a SEC1 point of the right "
            f"length ({len(data)} bytes): {error}"
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
