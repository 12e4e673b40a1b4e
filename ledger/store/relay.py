"""The relay quota table: `relay_usage`, one row per market order the operator relayed."""

from __future__ import annotations

from typing import NamedTuple

from ledger.store.backends import Backend


class RelaySlot(NamedTuple):
    """The answer to a relay reservation: the recorded row, or how long until one frees up."""

    row_id: int | None  # None: the signer's quota is used up
    retry_after_s: int  # when refused: seconds until the oldest relay leaves the window


def reserve_relay(db: Backend, signer: str, *, now: int, window_s: int, limit: int) -> RelaySlot:
    """Records a relay for `signer` (see `Store.reserve_relay`); `db` is in a write transaction."""
    db.execute("DELETE FROM relay_usage WHERE relayed_at <= ?", (now - window_s,))
    count, oldest = db.execute(
        "SELECT COUNT(*), MIN(relayed_at) FROM relay_usage WHERE signer = ?", (signer,)
    ).fetchone()
    if int(count) >= limit:
        return RelaySlot(row_id=None, retry_after_s=max(1, int(oldest) + window_s - now))
    (row_id,) = db.execute(
        "INSERT INTO relay_usage(signer, relayed_at) VALUES (?, ?) RETURNING id",
        (signer, now),
    ).fetchone()
    return RelaySlot(row_id=int(row_id), retry_after_s=0)


def release_relay(db: Backend, row_id: int) -> None:
    db.execute("DELETE FROM relay_usage WHERE id = ?", (row_id,))
