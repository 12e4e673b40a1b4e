"""The transaction sender lock: one sender per account across processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ledger.chain.txsender import (
    FileSenderLock,
    PostgresSenderLock,
    advisory_key,
    sender_lock_for,
)
from ledger.settings import Settings

OPERATOR = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
OTHER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

# Tries the lock file without waiting, from another process: prints "free" or "held".
_PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("held")
else:
    print("free")
"""


def probe(path: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_a_held_sender_lock_excludes_another_process_until_released(tmp_path: Path) -> None:
    lock = FileSenderLock(tmp_path / "ledger.db")
    path = lock.path_for(OPERATOR)
    try:
        with lock.hold(OPERATOR):
            while_held = probe(path)
        after = probe(path)
    finally:
        lock.close()

    assert (while_held, after) == ("held", "free")


def test_each_account_has_its_own_lock_file_beside_the_database(tmp_path: Path) -> None:
    lock = FileSenderLock(tmp_path / "ledger.db")

    assert lock.path_for(OPERATOR) == tmp_path / f"ledger.db.tx-{OPERATOR.lower()}.lock"
    assert lock.path_for(OTHER) != lock.path_for(OPERATOR)
    assert lock.path_for(OPERATOR.lower()) == lock.path_for(OPERATOR)


def test_advisory_keys_are_bigints_per_account_whatever_the_address_case() -> None:
    key = advisory_key(OPERATOR)

    assert -(2**63) <= key < 2**63
    assert advisory_key(OPERATOR.lower()) == key
    assert advisory_key(OTHER) != key


def test_the_lock_follows_the_database_every_gateway_shares(tmp_path: Path) -> None:
    sqlite = sender_lock_for(Settings(data_dir=tmp_path))
    postgres = sender_lock_for(Settings(database_url="postgresql://db.example.org/ledger"))

    assert isinstance(sqlite, FileSenderLock)
    assert sqlite.path_for(OPERATOR).parent == tmp_path
    assert isinstance(postgres, PostgresSenderLock)
