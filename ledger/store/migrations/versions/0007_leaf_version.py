"""Reading leaf version 2: `batches.leaf_version`, and the leaves of readings not yet batched.

Why: a version-2 leaf (docs/reading-format.md) commits to the hashes of the bytes the meter
signed and of its signature, so that a fraud proof on chain cannot mark a good batch bad with a
genuine reading and a garbage signature. Batches anchored before keep their version-1 leaves
(`leaf_version` 1, what every existing row gets); batches made from now on are version 2 (the
column's default). The stored leaf of each reading not in any batch yet is recomputed as version
2, so the next batch is all version 2.

The leaf is computed here from the stored row alone (this stage imports no other): native
readings sign their canonical bytes, and their signature's fixed form is the 64 bytes as stored,
or r || s of a strict DER signature; an OCMF reading signs its payload (between the record's
first and last `|`), its form is r || s of the stored SD, followed by the hash's name when `SA`
names another hash than SHA-256 (`ledger.readings.ocmf.verify.ocmf_signature_form`).
tests/unit/store/test_leaf_version_migration.py checks the result against the ingest's leaves.

Revision ID: 0007_leaf_version
Revises: 0006_complaints
"""

from __future__ import annotations

import json
import re

import sqlalchemy as sa
from alembic import op
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from eth_utils.crypto import keccak

revision = "0007_leaf_version"
down_revision: str | None = "0006_complaints"
branch_labels = None
depends_on = None

_LEAF_TAG_V2 = keccak(b"EnergyLedger.AnchoredReading.v2")
_SIGNATURE_METHOD = re.compile(r"ECDSA-[A-Za-z0-9]+-(SHA[0-9]+)", re.ASCII)
_COORDINATE = 32  # P-256 and secp256k1, the registry's ECDSA curves


def _ecdsa_form(signature: bytes) -> bytes:
    if len(signature) == 2 * _COORDINATE:
        return signature
    r, s = decode_dss_signature(signature)
    if encode_dss_signature(r, s) != signature:
        raise ValueError("not strict DER")
    return r.to_bytes(_COORDINATE, "big") + s.to_bytes(_COORDINATE, "big")


def _ocmf_form(raw: bytes, signature: bytes) -> tuple[bytes, bytes]:
    text = raw.rstrip(b"\r\n")
    payload = text[text.index(b"|") + 1 : text.rindex(b"|")]
    section = json.loads(text[text.rindex(b"|") + 1 :])
    method = _SIGNATURE_METHOD.fullmatch(str(section.get("SA", "ECDSA-secp256r1-SHA256")))
    try:
        r, s = decode_dss_signature(signature)
        form = r.to_bytes(_COORDINATE, "big") + s.to_bytes(_COORDINATE, "big")
    except ValueError:
        form = signature
    if method is not None and method[1] != "SHA256":
        form += method[1].encode()
    return payload, form


def leaf_v2(canonical: bytes, signature: bytes, source: str, raw: bytes | None) -> bytes:
    """The version-2 leaf of a stored reading row."""
    if source == "ocmf" and raw is not None:
        signed, form = _ocmf_form(raw, signature)
    else:
        signed, form = canonical, _ecdsa_form(signature) if len(signature) != 64 else signature
    return keccak(keccak(_LEAF_TAG_V2 + canonical[32:] + keccak(signed) + keccak(form)))


def upgrade() -> None:
    op.add_column(
        "batches",
        sa.Column("leaf_version", sa.Integer(), nullable=False, server_default="1"),
    )
    with op.batch_alter_table("batches") as batch:
        batch.alter_column("leaf_version", server_default="2")
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT meter_id, seq, canonical, signature, source, raw FROM readings "
            "WHERE batch_id IS NULL"
        )
    ).fetchall()
    for meter_id, seq, canonical, signature, source, raw in rows:
        leaf = leaf_v2(
            bytes(canonical), bytes(signature), str(source), None if raw is None else bytes(raw)
        )
        bind.execute(
            sa.text("UPDATE readings SET leaf = :leaf WHERE meter_id = :meter AND seq = :seq"),
            {"leaf": leaf, "meter": meter_id, "seq": seq},
        )


def downgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("leaf_version")
