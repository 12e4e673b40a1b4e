"""What the ledger writes to disk is for its own user only: no group or other permissions."""

from __future__ import annotations

import stat
from pathlib import Path

from ledger.chain.txsender import FileSenderLock
from ledger.store.database import Store

OPERATOR = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def permissions(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_sqlite_database_and_its_wal_shm_and_lock_files_are_private(
    tmp_path: Path,
) -> None:
    database = tmp_path / "data" / "ledger.db"
    store = Store(database)
    try:
        store.anchor_lease().try_acquire()
        store.status()  # a read opens the shared-memory file; the schema write made the WAL
        modes = {p.name: permissions(p) for p in database.parent.iterdir()}
    finally:
        store.close()

    assert modes == {
        "ledger.db": 0o600,
        "ledger.db-shm": 0o600,
        "ledger.db-wal": 0o600,
        "ledger.db.anchor-lock": 0o600,
        "ledger.db.write-lock": 0o600,
    }
    assert permissions(database.parent) == 0o700


def test_the_transaction_sender_lock_file_is_private(tmp_path: Path) -> None:
    lock = FileSenderLock(tmp_path / "ledger.db")
    with lock.hold(OPERATOR):
        pass
    lock.close()

    assert permissions(lock.path_for(OPERATOR)) == 0o600
