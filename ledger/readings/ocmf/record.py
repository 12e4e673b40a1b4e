"""Parsing an OCMF record: `OCMF|{payload}|{signature}` into its sections and `RD` readings, keeping
the signed payload bytes exactly as received and every reading value as an exact `Decimal`."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, NewType

from ledger.readings.ocmf.errors import OcmfBadValue, OcmfMalformed

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
