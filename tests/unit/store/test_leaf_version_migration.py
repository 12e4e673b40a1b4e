"""Migration 0007 (reading leaf version 2): batches anchored before keep leaf version 1, new ones
get 2, and the stored leaf of every reading not yet in a batch becomes the version-2 leaf the
ingest computes today (native raw and DER signatures, OCMF records hashed with SHA-256 and
SHA-384), so the next batch is all version 2. SQLite: the migration's SQL is the same on both.
"""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from alembic import command
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from ledger.meters.keys import KeyAlgorithm, generate_key
from ledger.readings.native import Reading, anchored_leaf, reading_leaf, sign_reading
from ledger.readings.ocmf.record import parse_ocmf
from ledger.readings.ocmf.verify import ocmf_signature_form
from ledger.store.backends import u64, utc_now_iso
from ledger.store.migrate import alembic_config, engine_for, upgrade
from tests.unit.readings.ingest_ocmf.ingest_ocmf_support import payload, sign_ocmf

METER = b"MTR-MIGRATE".ljust(32, b"\x00")


def reading(seq: int) -> Reading:
    return Reading(
        chain_id=1337,
        meter_id=METER,
        seq=seq,
        timestamp=1_700_000_000 + 900 * seq,
        import_wh=100 * seq,
        export_wh=0,
        status=0,
    )


def at_revision_0006(path: Path) -> None:
    engine = engine_for(path)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0006_complaints")
    finally:
        engine.dispose()


def insert(
    db: sqlite3.Connection,
    r: Reading,
    signature: bytes,
    *,
    batch_id: int | None,
    source: str = "native",
    raw: bytes | None = None,
) -> None:
    canonical = r.encode()
    db.execute(
        "INSERT INTO readings (meter_id, seq, timestamp, import_wh, export_wh, status, canonical, "
        "signature, key_epoch, leaf, receipt_id, received_at, batch_id, source, raw, leaf_index) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            r.meter_id,
            u64(r.seq),
            u64(r.timestamp),
            u64(r.import_wh),
            u64(r.export_wh),
            r.status,
            canonical,
            signature,
            0,
            reading_leaf(canonical),  # what the ingest stored before leaf version 2
            uuid.uuid4().hex,
            utc_now_iso(),
            batch_id,
            source,
            raw,
            None if batch_id is None else r.seq,
        ),
    )


def stored_leaf(db: sqlite3.Connection, seq: int) -> bytes:
    row = db.execute(
        "SELECT leaf FROM readings WHERE meter_id = ? AND seq = ?", (METER, u64(seq))
    ).fetchone()
    return bytes(row[0])


@pytest.fixture
def upgraded(tmp_path: Path) -> Path:
    """A database at revision 0006 with an anchored batch and pending readings of every kind,
    then upgraded to the head."""
    path = tmp_path / "ledger.db"
    at_revision_0006(path)
    key = generate_key(KeyAlgorithm.P256)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    with closing(sqlite3.connect(path)) as db:
        db.execute(
            "INSERT INTO batches (batch_id, root, count, from_ts, to_ts, status, created_at) "
            "VALUES (1, ?, 1, ?, ?, 'anchored', ?)",
            (reading_leaf(reading(0).encode()), u64(0), u64(0), utc_now_iso()),
        )
        insert(db, reading(0), sign_reading(key, reading(0)), batch_id=1)
        insert(db, reading(1), sign_reading(key, reading(1)), batch_id=None)
        raw_signature = sign_reading(key, reading(2))
        der = utils.encode_dss_signature(
            int.from_bytes(raw_signature[:32], "big"), int.from_bytes(raw_signature[32:], "big")
        )
        insert(db, reading(2), der, batch_id=None)
        for seq, algorithm, digest in (
            (3, "ECDSA-secp256r1-SHA256", None),
            (4, "ECDSA-secp256r1-SHA384", hashes.SHA384()),
        ):
            record = sign_ocmf(key, payload(seq), algorithm=algorithm, hash_algorithm=digest)
            parsed = parse_ocmf(record)
            insert(
                db,
                reading(seq),
                parsed.signature.data,
                batch_id=None,
                source="ocmf",
                raw=record.encode(),
            )
        db.commit()
    upgrade(path)
    return path


def test_batches_anchored_before_keep_leaf_version_1(upgraded: Path) -> None:
    with closing(sqlite3.connect(upgraded)) as db:
        assert db.execute("SELECT leaf_version FROM batches").fetchall() == [(1,)]


def test_a_batch_made_after_the_upgrade_is_leaf_version_2(upgraded: Path) -> None:
    with closing(sqlite3.connect(upgraded)) as db:
        db.execute(
            "INSERT INTO batches (batch_id, root, count, from_ts, to_ts, status, created_at) "
            "VALUES (2, ?, 1, ?, ?, 'intent', ?)",
            (b"\x01" * 32, u64(0), u64(0), utc_now_iso()),
        )
        assert db.execute("SELECT leaf_version FROM batches WHERE batch_id = 2").fetchone() == (2,)


def test_a_batched_readings_leaf_is_left_as_it_was(upgraded: Path) -> None:
    with closing(sqlite3.connect(upgraded)) as db:
        assert stored_leaf(db, 0) == reading_leaf(reading(0).encode())


def test_pending_native_leaves_become_version_2_for_raw_and_der_signatures(upgraded: Path) -> None:
    with closing(sqlite3.connect(upgraded)) as db:
        rows = db.execute(
            "SELECT seq, canonical, signature FROM readings WHERE source = 'native' "
            "AND batch_id IS NULL ORDER BY seq"
        ).fetchall()
        for seq, canonical, signature in rows:
            canonical, signature = bytes(canonical), bytes(signature)
            if len(signature) != 64:
                r, s = utils.decode_dss_signature(signature)
                signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
            expected = anchored_leaf(canonical, canonical, signature)
            assert stored_leaf(db, int.from_bytes(seq, "big")) == expected
        assert len(rows) == 2


def test_pending_ocmf_leaves_become_the_ingests_version_2_leaves(upgraded: Path) -> None:
    with closing(sqlite3.connect(upgraded)) as db:
        rows = db.execute(
            "SELECT seq, canonical, raw FROM readings WHERE source = 'ocmf' ORDER BY seq"
        ).fetchall()
        for seq, canonical, raw in rows:
            record = parse_ocmf(bytes(raw))
            expected = anchored_leaf(
                bytes(canonical), record.payload_bytes, ocmf_signature_form(record)
            )
            assert stored_leaf(db, int.from_bytes(seq, "big")) == expected
        assert len(rows) == 2
