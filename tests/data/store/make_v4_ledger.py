"""Writes `v4-ledger.db`, `v4-ledger.json` and `v4-schema-postgresql.sql` with the code of the
last release before the migrations (schema version 4), for tests/integration/test_store_upgrade.py.

Run it against that release's tree, not this one (it imports the old `ledger.store.backend` and
the old unit tests' fake registry):

    git worktree add /tmp/old-ledger 8835281
    PYTHONPATH=/tmp/old-ledger .venv/bin/python tests/data/store/make_v4_ledger.py tests/data/store

The database holds what a gateway of that release wrote: signed readings ingested by its
`Ingestor` (one meter, seq 1 to 3 and 6 to 8, with a gap at 4..5 that seq 5 partly filled), an
integrity event (a second, different reading signed for seq 2), one batch anchored and final, one
anchored and not final, one intent, and a relay quota row. `v4-ledger.json` lists every row the
new code must find in it; `v4-schema-postgresql.sql` is that release's schema text for PostgreSQL.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

from ledger.store.backend import (
    _POSTGRES_TYPES,
    _SCHEMA,
    SCHEMA_VERSION,
    BatchRecord,
    BatchStatus,
    Store,
)

from ledger.meters.registry import KeyAlgorithm, generate_key
from ledger.readings.ingest import Ingestor, KeyCache
from tests.unit.readings.ingest_support import (
    CHAIN_ID,
    METER_ID,
    NOW,
    Clock,
    FakeRegistry,
    reading,
    submission,
)


def _json(value: object) -> object:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


def main(out: Path) -> None:
    assert SCHEMA_VERSION == 4, "run this against the release of schema version 4"
    database = out / "v4-ledger.db"
    for stale in out.glob("v4-ledger.db*"):
        stale.unlink()
    registry = FakeRegistry()
    key = generate_key(KeyAlgorithm.P256)
    registry.register(METER_ID, key)
    store = Store(database)
    ingestor = Ingestor(
        store,
        KeyCache(registry, monotonic=Clock(1000.0)),
        chain_id=CHAIN_ID,
        max_batch=10,
        clock_skew_s=300,
        clock=Clock(NOW + 0.5),
    )
    first = [reading(seq, NOW - 1000 + 60 * seq, 100 * seq) for seq in (1, 2, 3, 6, 7, 8)]
    results = ingestor.submit([submission(key, r) for r in first])
    assert all(r.status == "accepted" for r in results), results
    (filled,) = ingestor.submit([submission(key, reading(5, NOW - 1000 + 300, 500))])
    assert filled.status == "accepted", filled
    conflicting = replace(first[1], import_wh=first[1].import_wh + 1)
    (conflict,) = ingestor.submit([submission(key, conflicting)])
    assert conflict.status == "rejected", conflict

    def batch(batch_id: int, count: int, status: str) -> None:
        members = store.pending_leaves(count)
        store.create_batch_intent(
            BatchRecord(
                batch_id=batch_id,
                root=bytes([batch_id]) * 32,
                count=len(members),
                from_ts=min(m.timestamp for m in members),
                to_ts=max(m.timestamp for m in members),
                status=BatchStatus.INTENT,
                tx_hash=None,
                block_number=None,
                created_at=f"2023-11-14T22:1{batch_id}:00.000000Z",
                anchored_at=None,
            ),
            members,
        )
        if status == BatchStatus.ANCHORED:
            store.mark_anchored(
                batch_id,
                bytes([0xA0 + batch_id]) * 32,
                100 + batch_id,
                f"2023-11-14T22:2{batch_id}:00.000000Z",
                final_at=f"2023-11-14T22:3{batch_id}:00.000000Z" if batch_id == 1 else None,
            )

    batch(1, 3, BatchStatus.ANCHORED)
    batch(2, 2, BatchStatus.ANCHORED)
    batch(3, 1, BatchStatus.INTENT)
    store.reserve_relay("0x" + "11" * 20, now=NOW, window_s=3600, limit=10)

    expected = {
        "schema_version": store.status()["schema_version"],
        "readings": [
            asdict(r)
            for seq in (1, 2, 3, 5, 6, 7, 8)
            if (r := store.reading(METER_ID, seq)) is not None
        ],
        "gaps": [asdict(g) for g in store.gaps(METER_ID)],
        "integrity_events": [asdict(e) for e in store.integrity_events(METER_ID)],
        "batches": [asdict(b) for b in store.batches()],
        "pending": store.count_pending(),
    }
    store.close()
    for lock in out.glob("v4-ledger.db.*-lock"):
        lock.unlink()
    (out / "v4-ledger.json").write_text(json.dumps(_json(expected), indent=1) + "\n")
    (out / "v4-schema-postgresql.sql").write_text(_SCHEMA.format(**_POSTGRES_TYPES).lstrip())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
