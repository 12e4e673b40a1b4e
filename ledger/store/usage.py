"""Reads behind a customer's consumption and exports (ledger/billing/usage.py, docs/usage.md).

Every stored reading counts, pending ones included: a customer's consumption shows the
readings the gateway accepted (each signed by the meter) as soon as they are stored, and the
exports say which of them are anchored. Bills, by contrast, use only final anchored readings
(`BillStore.anchored_readings`).
"""

from __future__ import annotations

from typing import NamedTuple

from ledger.store.backends import from_u64, u64
from ledger.store.bills import _seq_bound
from ledger.store.read_model import Database
from ledger.store.readings import READING_COLUMNS, StoredReading, reading_from_row


class UsageReadings(NamedTuple):
    """A meter's stored readings as columns, by seq."""

    seqs: tuple[int, ...]
    timestamps: tuple[int, ...]
    imports: tuple[int, ...]
    exports: tuple[int, ...]


class UsageStore:
    """The store's reads for consumption and exports."""

    def __init__(self, store: Database) -> None:
        self._store = store

    def readings(self, meter_id: bytes, period_start: int, period_end: int) -> UsageReadings:
        """The meter's stored readings from the last one at or before `period_start` to the
        first one at or after `period_end` (all of them where those do not exist), by seq."""
        with self._store.read() as db:
            low = _seq_bound(db, meter_id, period_start, before=True)
            high = _seq_bound(db, meter_id, period_end, before=False)
            rows = db.execute(
                "SELECT seq, timestamp, import_wh, export_wh FROM readings "
                "WHERE meter_id = ? AND seq >= ? AND seq <= ? ORDER BY seq",
                (meter_id, u64(low), u64(high)),
            ).fetchall()
        if not rows:
            return UsageReadings((), (), (), ())
        seqs, timestamps, imports, exports = (
            tuple(from_u64(value) for value in column) for column in zip(*rows, strict=True)
        )
        return UsageReadings(seqs, timestamps, imports, exports)

    def readings_in(
        self, meter_id: bytes, period_start: int, period_end: int
    ) -> list[StoredReading]:
        """The meter's stored readings dated in `[period_start, period_end)`, whole, by seq."""
        with self._store.read() as db:
            low = _seq_bound(db, meter_id, period_start, before=True)
            high = _seq_bound(db, meter_id, period_end, before=False)
            rows = db.execute(
                f"SELECT {READING_COLUMNS} FROM readings "  # noqa: S608
                "WHERE meter_id = ? AND seq >= ? AND seq <= ? ORDER BY seq",
                (meter_id, u64(low), u64(high)),
            ).fetchall()
        found = [reading_from_row(row) for row in rows]
        return [r for r in found if period_start <= r.timestamp < period_end]
