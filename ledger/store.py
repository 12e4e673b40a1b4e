"""The gateway's durable store: SQLite in WAL mode with synchronous=FULL.

WAL lets readers run beside the single writer; synchronous=FULL makes a COMMIT durable across a
power cut, which is what "acknowledged means durable" needs. The schema is versioned in the
database itself so later releases can migrate it in place.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from ledger.errors import ConfigError
from ledger.settings import Settings

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_info (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class Store:
    """One SQLite database file, opened with durable settings."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # The gateway serves requests from a thread pool; one connection guarded by a lock keeps
        # SQLite's single-writer rule explicit.
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO schema_info(key, value) VALUES ('version', ?)",
                (str(SCHEMA_VERSION),),
            )

    @classmethod
    def open(cls, settings: Settings) -> Store:
        """Opens the store the settings name (only SQLite so far)."""
        path = settings.sqlite_path
        if path is None:
            raise ConfigError(
                f"LEDGER_DATABASE_URL {settings.database_url!r} is not supported: "
                "use sqlite:///path/to/file.db"
            )
        return cls(path)

    def status(self) -> dict[str, Any]:
        """Health facts: backend, file, journal mode, synchronous level, schema version."""
        with self._lock:
            journal = self._db.execute("PRAGMA journal_mode").fetchone()[0]
            synchronous = self._db.execute("PRAGMA synchronous").fetchone()[0]
            version = self._db.execute(
                "SELECT value FROM schema_info WHERE key = 'version'"
            ).fetchone()[0]
        return {
            "backend": "sqlite",
            "path": str(self.path),
            "journal_mode": journal,
            "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[synchronous],
            "schema_version": int(version),
            "ok": True,
        }

    def close(self) -> None:
        with self._lock:
            self._db.close()
