"""Sign-in nonces: `sign_in_nonces`, one row per nonce the gateway issued and nobody used yet.

Sign-In with Ethereum (EIP-4361) makes the client sign a message naming a nonce the gateway chose;
a nonce is good for one sign-in, before it expires. Kept in the database, not in a worker's
memory, so a nonce issued by one worker (or gateway) is accepted by any other, and used once
across all of them: using it deletes its row in the same write transaction that checks it.
Expired rows are deleted as new nonces are issued. Created by the revision `0005_sign_in`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Column, Index, Table, Text

from ledger.store.schema import metadata

if TYPE_CHECKING:  # the migration runner imports this module for its table alone
    from ledger.store.database import Store

sign_in_nonces = Table(
    "sign_in_nonces",
    metadata,
    Column("nonce", Text, primary_key=True),  # alphanumeric, as EIP-4361 requires
    Column("expires_at", BigInteger, nullable=False),  # Unix seconds, the gateway's clock
)
Index("sign_in_nonces_by_expiry", sign_in_nonces.c.expires_at)


def issue_nonce(store: Store, nonce: str, *, now: int, expires_at: int) -> None:
    """Records `nonce` as issued until `expires_at`; forgets the nonces expired at `now`."""
    with store.write() as db:
        db.execute("DELETE FROM sign_in_nonces WHERE expires_at <= ?", (now,))
        db.execute(
            "INSERT INTO sign_in_nonces(nonce, expires_at) VALUES (?, ?)", (nonce, expires_at)
        )


def use_nonce(store: Store, nonce: str, *, now: int) -> bool:
    """Whether `nonce` was issued, is unused and unexpired at `now`; uses it up either way, so
    the same nonce never signs anyone in twice (two requests racing with it: one wins)."""
    with store.write() as db:
        row = db.execute(
            "DELETE FROM sign_in_nonces WHERE nonce = ? RETURNING expires_at", (nonce,)
        ).fetchone()
    return row is not None and int(row[0]) > now
