"""The model of the readings property (test_readings_property.py): what `POST /v1/readings`
must answer for each reading sent, by the documented rules (docs/reading-format.md and the
code table in README.md), applied in the documented order.

It parses the canonical bytes itself and shares no code with `ledger.readings`: it is the
independent oracle the gateway is checked against. Each reading comes with its ground truth
(who signed which bytes) in `Sent`, from the scenario that built it (readings_plans.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eth_utils.crypto import keccak

ACCEPTED, DUPLICATE, REJECTED = "accepted", "duplicate", "rejected"

# The documented seq rules: a meter's first reading has a seq below 2^63, and a later one is at
# most LEDGER_MAX_SEQ_JUMP (default 100,000) above the meter's latest stored seq.
FIRST_SEQ_LIMIT = 2**63
MAX_SEQ_JUMP = 100_000

DOMAIN_TAG = keccak(text="EnergyLedger.Reading.v1")
WORD = 32


@dataclass(frozen=True)
class Fields:
    """The fields of canonical reading bytes."""

    chain_id: int
    meter_id: bytes
    seq: int
    timestamp: int
    import_wh: int
    export_wh: int
    status: int


def parse_canonical(canonical: bytes) -> Fields | None:
    """The fields, or None if the bytes are not the one canonical encoding (reading-format.md)."""
    if len(canonical) != 8 * WORD or canonical[:WORD] != DOMAIN_TAG:
        return None
    words = [canonical[i : i + WORD] for i in range(0, len(canonical), WORD)]
    # seq, timestamp and the registers are uint64, status is uint32: the rest is zero padding.
    for index, size in ((3, 8), (4, 8), (5, 8), (6, 8), (7, 4)):
        if any(words[index][: WORD - size]):
            return None
    chain_id = int.from_bytes(words[1], "big")
    if chain_id == 0:
        return None
    seq, timestamp, import_wh, export_wh, status = (
        int.from_bytes(word, "big") for word in words[3:]
    )
    return Fields(chain_id, words[2], seq, timestamp, import_wh, export_wh, status)


def serial_id(serial: str) -> bytes:
    """A meter serial as its bytes32 id: right-padded with zero bytes."""
    return serial.encode().ljust(WORD, b"\x00")


def claimed_id(meter_id: str) -> bytes:
    """The bytes32 id a body's `meter_id` names: 0x + 64 hex digits as is, else a serial."""
    if meter_id.startswith("0x") and len(meter_id) == 2 + 2 * WORD:
        return bytes.fromhex(meter_id[2:])
    return serial_id(meter_id)


@dataclass(frozen=True)
class Sent:
    """One reading as sent, with what only its sender knows.

    Attributes:
        kind: valid, forged, replayed, mutated or echoed (for the kind-level checks and messages).
        meter_id: The body's `meter_id`: a serial, or 0x + the id in hex.
        canonical: The canonical bytes sent.
        signature: The signature bytes sent.
        genuine: Whether the key registered for the canonical bytes' meter signed exactly these
            bytes, and `signature` is that signature (raw, DER, or (r, n - s)).
    """

    kind: str
    meter_id: str
    canonical: bytes
    signature: bytes
    genuine: bool

    def body(self) -> dict[str, str]:
        return {
            "meter_id": self.meter_id,
            "canonical": "0x" + self.canonical.hex(),
            "signature": "0x" + self.signature.hex(),
        }


@dataclass(frozen=True)
class ModelRow:
    """A reading the model says is stored, with the receipt the gateway gave for it."""

    fields: Fields
    canonical: bytes
    signature: bytes
    receipt: dict[str, Any]


@dataclass(frozen=True)
class Expected:
    """A predicted result: `codes` is empty unless rejected; `original` is a duplicate's row."""

    status: str
    codes: frozenset[str] = frozenset()
    original: ModelRow | None = None


def rejected(*codes: str) -> Expected:
    return Expected(REJECTED, frozenset(codes))


class LedgerModel:
    """What the gateway must answer, by the documented rules, applied in the documented order."""

    def __init__(self, valid_from: Mapping[bytes, int], *, chain_id: int, clock_skew_s: int):
        self._valid_from = dict(valid_from)
        self._chain_id = chain_id
        self._clock_skew_s = clock_skew_s
        self.rows: dict[tuple[bytes, int], ModelRow] = {}

    def predict(self, sent: Sent, now_lo: int, now_hi: int) -> Expected:
        """The result for `sent`, processed while the gateway's clock read in [now_lo, now_hi]."""
        fields = parse_canonical(sent.canonical)
        if fields is None:
            return rejected("malformed_reading")
        if claimed_id(sent.meter_id) != fields.meter_id:
            return rejected("meter_mismatch")
        if fields.chain_id != self._chain_id:
            return rejected("wrong_chain")
        later = self._after_clock_check(sent, fields)
        if fields.timestamp > now_hi + self._clock_skew_s:
            return rejected("clock_skew")
        if fields.timestamp > now_lo + self._clock_skew_s:
            # The request straddled a second boundary and the gateway's clock decides; the
            # generator keeps genuine readings away from here, so the model never forks.
            assert later.status == REJECTED, f"ambiguous genuine reading {fields}"
            return Expected(REJECTED, later.codes | {"clock_skew"})
        return later

    def store(self, sent: Sent, receipt: dict[str, Any]) -> None:
        """Records an accepted reading."""
        fields = parse_canonical(sent.canonical)
        assert fields is not None
        self.rows[(fields.meter_id, fields.seq)] = ModelRow(
            fields, sent.canonical, sent.signature, receipt
        )

    def _after_clock_check(self, sent: Sent, fields: Fields) -> Expected:
        valid_from = self._valid_from.get(fields.meter_id)
        if valid_from is None:
            return rejected("unknown_meter")
        if fields.timestamp < valid_from:
            return rejected("no_key_at_time")
        if not sent.genuine:
            return rejected("bad_signature")
        stored = self.rows.get((fields.meter_id, fields.seq))
        if stored is not None:
            if stored.canonical == sent.canonical:
                return Expected(DUPLICATE, original=stored)
            return rejected("conflicting_reading")
        same_meter = sorted(
            (row.fields for row in self.rows.values() if row.fields.meter_id == fields.meter_id),
            key=lambda f: f.seq,
        )
        if not same_meter and fields.seq >= FIRST_SEQ_LIMIT:
            return rejected("seq_jump_too_large")
        if same_meter and fields.seq > same_meter[-1].seq + MAX_SEQ_JUMP:
            return rejected("seq_jump_too_large")
        before = next((f for f in reversed(same_meter) if f.seq < fields.seq), None)
        after = next((f for f in same_meter if f.seq > fields.seq), None)
        if before is not None:
            if fields.import_wh < before.import_wh or fields.export_wh < before.export_wh:
                return rejected("register_decreased")
            if fields.timestamp <= before.timestamp:
                return rejected("timestamp_out_of_order")
        if after is not None:
            if fields.import_wh > after.import_wh or fields.export_wh > after.export_wh:
                return rejected("register_decreased")
            if fields.timestamp >= after.timestamp:
                return rejected("timestamp_out_of_order")
        return Expected(ACCEPTED)
