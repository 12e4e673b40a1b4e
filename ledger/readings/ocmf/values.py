"""Mapping an OCMF record onto ONE ledger reading (docs/ocmf.md, "Ingestion"): meter serial,
seq from the pagination, time, registers rounded down to whole Wh, and status flags."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntFlag
from typing import Final

from ledger.readings.ocmf.errors import OcmfUnmappable
from ledger.readings.ocmf.record import OcmfReading, OcmfRecord, Register, TimeStatus, Wh

# `PG`: `T` (transaction) or `F` (fiscal) and the record's counter, in decimal.
_PAGINATION = re.compile(r"(?P<kind>[TF])(?P<counter>[0-9]+)", re.ASCII)
MAX_SEQ: Final = 2**64 - 1


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
