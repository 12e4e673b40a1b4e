"""Complaints in the store: the read model's rows of ComplaintRegistry events
(`chain_complaint_steps`, declared in `read_model_tables.py`) and the gateway's own
`complaint_texts`.

The chain holds only the keccak256 of each complaint text (the customer's complaint, the
operator's answers, a reopening); the texts themselves are kept here, keyed by that hash, and
served with the complaint to its customer, the operator and auditors only. A text is saved
before the step naming its hash is sent, so a step on chain whose text is missing here is one
sent by someone else (the customer calling the contract directly): it shows without its text.

Created by the Alembic revision `0006_complaints`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Column, LargeBinary, Table, Text

from ledger.store.read_model import Connection, LogRef
from ledger.store.schema import metadata

if TYPE_CHECKING:  # the migration runner imports this module for its table alone
    from ledger.store.database import Store

complaint_texts = Table(
    "complaint_texts",
    metadata,
    Column("text_hash", LargeBinary, primary_key=True),  # keccak256 of the UTF-8 text
    Column("text", Text, nullable=False),
    Column("added_at", BigInteger, nullable=False),  # Unix seconds, the gateway's clock
)

_STEP_COLUMNS = (
    "complaint_id, step, round, at, customer, subject_kind, subject_ref, handler, rating, "
    "text_hash, block_number, log_index"
)


@dataclass(frozen=True)
class StepRow:
    """One `chain_complaint_steps` row: a ComplaintRegistry event as indexed."""

    complaint_id: int
    step: str
    round: int
    at: int
    customer: str | None = None
    subject_kind: int | None = None
    subject_ref: bytes | None = None
    handler: bytes | None = None
    rating: int | None = None
    text_hash: bytes | None = None
    block_number: int = 0
    log_index: int = 0


def add_step(db: Connection, log: LogRef, row: StepRow) -> None:
    """One ComplaintRegistry event (any of the seven)."""
    db.execute(
        "INSERT INTO chain_complaint_steps (complaint_id, step, round, at, customer, "
        "subject_kind, subject_ref, handler, rating, text_hash, block_number, tx_hash, "
        "log_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (
            row.complaint_id,
            row.step,
            row.round,
            row.at,
            row.customer,
            row.subject_kind,
            row.subject_ref,
            row.handler,
            row.rating,
            row.text_hash,
            *log.params(),
        ),
    )


def steps(
    store: Store, *, customer: str | None = None, complaint_id: int | None = None
) -> list[StepRow]:
    """Every indexed step, in chain order; only those of `customer`'s complaints, or of one
    complaint, when given."""
    where = ""
    params: tuple[object, ...] = ()
    if complaint_id is not None:
        where, params = " WHERE complaint_id = ?", (complaint_id,)
    elif customer is not None:
        where = (
            " WHERE complaint_id IN (SELECT complaint_id FROM chain_complaint_steps "
            "WHERE step = 'opened' AND customer = ?)"
        )
        params = (customer,)
    with store.read() as db:
        rows = db.execute(
            f"SELECT {_STEP_COLUMNS} FROM chain_complaint_steps{where} "  # noqa: S608 - fixed text
            "ORDER BY block_number, log_index",
            params,
        ).fetchall()
    return [_step(row) for row in rows]


def save_text(store: Store, text: str, text_hash: bytes, *, now: int) -> None:
    """Keeps `text` under its hash (a text saved twice is kept once)."""
    with store.write() as db:
        db.execute(
            "INSERT INTO complaint_texts (text_hash, text, added_at) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (text_hash, text, now),
        )


def texts(store: Store, hashes: Iterable[bytes]) -> dict[bytes, str]:
    """The kept texts of these hashes (a hash without a kept text is absent)."""
    wanted: Sequence[bytes] = sorted(set(hashes))
    if not wanted:
        return {}
    marks = ", ".join("?" for _ in wanted)
    with store.read() as db:
        rows = db.execute(
            f"SELECT text_hash, text FROM complaint_texts WHERE text_hash IN ({marks})",  # noqa: S608
            tuple(wanted),
        ).fetchall()
    return {bytes(row[0]): str(row[1]) for row in rows}


def _step(row: Sequence[Any]) -> StepRow:
    def optional_bytes(value: Any) -> bytes | None:
        return None if value is None else bytes(value)

    def optional_int(value: Any) -> int | None:
        return None if value is None else int(value)

    return StepRow(
        complaint_id=int(row[0]),
        step=str(row[1]),
        round=int(row[2]),
        at=int(row[3]),
        customer=None if row[4] is None else str(row[4]),
        subject_kind=optional_int(row[5]),
        subject_ref=optional_bytes(row[6]),
        handler=optional_bytes(row[7]),
        rating=optional_int(row[8]),
        text_hash=optional_bytes(row[9]),
        block_number=int(row[10]),
        log_index=int(row[11]),
    )
