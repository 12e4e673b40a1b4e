"""The per-reading rules of ingestion that are plain functions of their inputs: the hex of a
submission, the meter id a body claims, where a reading fits among its meter's stored neighbours,
how far a seq may jump, and the gaps left around a stored reading (the order they run in is in
`ledger.readings.ingest`).
"""

from __future__ import annotations

import binascii

from ledger.errors import MeterError
from ledger.meters.registry import meter_id_bytes
from ledger.readings.native import Reading
from ledger.readings.ocmf.errors import OcmfError
from ledger.readings.results import Rejection
from ledger.store.readings import Neighbour, ReadingWriter

MAX_SEQ_JUMP = 100_000
"""How far above a meter's latest stored seq a reading's seq may be, by default."""

FIRST_SEQ_LIMIT = 2**63
"""A meter's first stored reading must have a seq below this, so that at least 2^63 seqs are
left to continue after it (a meter's counter need not start at 0, but must not start at the top
of the range)."""


def parse_hex(text: str) -> bytes | None:
    """The bytes of hex digits with an optional 0x prefix (an even number of ASCII hex digits,
    nothing else: no sign, space or newline), or None."""
    digits = text[2:] if text.startswith("0x") else text
    try:
        # Unlike bytes.fromhex, a2b_hex refuses whitespace, and non-ASCII text.
        return binascii.a2b_hex(digits)
    except ValueError:  # binascii.Error (odd length, not a hex digit) is a ValueError
        return None


def claimed_meter_id(meter_id: str) -> bytes | str:
    """The bytes32 id the body names, or why it names none."""
    try:
        return meter_id_bytes(meter_id)
    except MeterError as error:
        return str(error)
    except UnicodeError:  # a lone surrogate (JSON "\ud800") has no UTF-8 form
        return f"meter id {meter_id!r} is not valid Unicode text"


def ocmf_rejection(error: OcmfError) -> Rejection:
    """The rejection code of an OCMF parsing, mapping or algorithm error: the error's own."""
    try:
        return Rejection(error.code)
    except ValueError:
        return Rejection.OCMF_MALFORMED


def seq_jump_problem(reading: Reading, latest: Neighbour | None, max_jump: int) -> str | None:
    """Why the seq of a reading above every stored one of its meter is too far up, or None.

    Unbounded, one reading at seq 2^64-1 (a counter gone wrong, or a stolen key) would leave no
    seq above it: every later reading of the meter would be refused. Bounded, the meter always
    has room to continue after its highest accepted seq.
    """
    if latest is None:
        if reading.seq < FIRST_SEQ_LIMIT:
            return None
        return (
            f"seq {reading.seq} is not below 2^63: a meter's first reading must leave room "
            "for the readings after it"
        )
    if reading.seq - latest.seq <= max_jump:
        return None
    return (
        f"seq {reading.seq} is {reading.seq - latest.seq} above the meter's latest stored seq "
        f"{latest.seq} (at most {max_jump} allowed); continue from seq {latest.seq + 1}"
    )


def neighbour_problem(
    reading: Reading, before: Neighbour | None, after: Neighbour | None
) -> tuple[Rejection, str] | None:
    """Why the reading does not fit between its stored neighbours, or None."""
    if before is not None:
        if reading.import_wh < before.import_wh or reading.export_wh < before.export_wh:
            return (
                Rejection.REGISTER_DECREASED,
                f"registers ({reading.import_wh}, {reading.export_wh}) Wh are below those of "
                f"seq {before.seq} ({before.import_wh}, {before.export_wh})",
            )
        if reading.timestamp <= before.timestamp:
            return (
                Rejection.TIMESTAMP_OUT_OF_ORDER,
                f"timestamp {reading.timestamp} is not after seq {before.seq}'s {before.timestamp}",
            )
    if after is not None:
        if reading.import_wh > after.import_wh or reading.export_wh > after.export_wh:
            return (
                Rejection.REGISTER_DECREASED,
                f"registers ({reading.import_wh}, {reading.export_wh}) Wh are above those of "
                f"the later seq {after.seq} ({after.import_wh}, {after.export_wh})",
            )
        if reading.timestamp >= after.timestamp:
            return (
                Rejection.TIMESTAMP_OUT_OF_ORDER,
                f"timestamp {reading.timestamp} is not before the later seq {after.seq}'s "
                f"{after.timestamp}",
            )
    return None


def update_gaps(
    writer: ReadingWriter,
    reading: Reading,
    before: Neighbour | None,
    after: Neighbour | None,
    now: str,
    *,
    may_fill_a_gap: bool,
) -> None:
    """Records the seqs still missing around a newly stored reading.

    The gaps of a meter are the seqs missing between two of its stored readings; nothing is
    assumed below its lowest stored seq (a meter's counter need not start at 0). A reading that
    lands inside an open gap resolves it, and what is still missing on either side is recorded
    as new open gaps. Only a reading below the meter's latest stored seq can land inside one
    (`may_fill_a_gap`): the caller knows, and the lookup is skipped for the others.
    """
    if may_fill_a_gap:
        containing = writer.open_gap_containing(reading.meter_id, reading.seq)
        if containing is not None:
            writer.resolve_gap(containing[0], now)
    if before is not None and reading.seq > before.seq + 1:
        writer.record_gap(reading.meter_id, before.seq + 1, reading.seq - 1, now)
    if after is not None and after.seq > reading.seq + 1:
        writer.record_gap(reading.meter_id, reading.seq + 1, after.seq - 1, now)
