"""The read model's queries and idempotent writes, on the ledger's own database.

The event indexer (`ledger/market/indexer.py`) writes here; listings (offers, a customer's
trades, a meter's key history) and the ingestion key cache read here, so a listing is one query
and never one RPC per item. The tables and the integer encodings of their columns are declared
in `ledger/store/read_model_tables.py`.

Inserts are `ON CONFLICT DO NOTHING` on the log a row came from, so indexing a range twice
changes nothing. Rows above a block a reorganisation replaced are deleted (`rollback_above`) and
that range is indexed again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from ledger.store.backends import u64, u128, uint

_ZERO_U64 = u64(0)


def _event_tables() -> tuple[str, ...]:
    """The tables of rows that come from logs (`read_model_tables.EVENT_TABLES`).

    Imported when first needed: the table declarations import SQLAlchemy (about half a second),
    which a bill-computing worker process, reading through this module, never needs."""
    from ledger.store.read_model_tables import EVENT_TABLES  # noqa: PLC0415

    return EVENT_TABLES


class _Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """The store's connection as `Store.write()` / `Store.read()` yield it (`?` placeholders)."""

    name: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


class Database(Protocol):
    """What the read model needs of `Store`: its write transaction and its reads."""

    def write(self) -> AbstractContextManager[Any]: ...

    def read(self) -> AbstractContextManager[Any]: ...


@dataclass(frozen=True)
class LogRef:
    """Which log a row came from."""

    block_number: int
    tx_hash: bytes
    log_index: int

    def params(self) -> tuple[int, bytes, int]:
        return (self.block_number, self.tx_hash, self.log_index)


@dataclass(frozen=True)
class IndexCursor:
    """How far the read model is indexed: every log up to and including `block_number`."""

    deployment: str
    block_number: int
    block_hash: bytes | None
    block_timestamp: int


@dataclass(frozen=True)
class IndexedOffer:
    offer_id: int
    seller: str
    seller_meter: bytes
    quantity_wh: int
    price_per_kwh: int
    delivery_start: int
    expiry: int
    remaining_wh: int
    cancelled: bool


@dataclass(frozen=True)
class IndexedTrade:
    """A trade joined with its offer and, once it ended, its settlement or refund."""

    trade_id: int
    offer_id: int
    seller: str
    buyer: str
    seller_meter: bytes
    buyer_meter: bytes
    delivery_start: int
    quantity_wh: int
    price_per_kwh: int
    escrow: int
    outcome: str | None  # None while open, 'settled' or 'refunded'
    delivered_wh: int
    paid: int


@dataclass(frozen=True)
class IndexedKeyEpoch:
    epoch: int
    algorithm: int
    public_key: bytes
    valid_from: int
    revoked_at: int  # 0: not revoked


@dataclass(frozen=True)
class IndexedMeter:
    meter_id: bytes
    owner: str
    epochs: tuple[IndexedKeyEpoch, ...]


_OFFER_COLUMNS = (
    "offer_id, seller, seller_meter, quantity_wh, price_per_kwh, delivery_start, expiry, "
    "remaining_wh, cancel_block_number"
)
_TRADE_SELECT = (
    "SELECT t.trade_id, t.offer_id, o.seller, t.buyer, o.seller_meter, t.buyer_meter, "
    "o.delivery_start, t.quantity_wh, o.price_per_kwh, t.escrow, s.outcome, s.delivered_wh, "
    "s.paid FROM chain_trades t JOIN chain_offers o ON o.offer_id = t.offer_id "
    "LEFT JOIN chain_settlements s ON s.trade_id = t.trade_id"
)


def _offer(row: Sequence[Any]) -> IndexedOffer:
    return IndexedOffer(
        offer_id=int(row[0]),
        seller=str(row[1]),
        seller_meter=bytes(row[2]),
        quantity_wh=uint(row[3]),
        price_per_kwh=uint(row[4]),
        delivery_start=uint(row[5]),
        expiry=uint(row[6]),
        remaining_wh=uint(row[7]),
        cancelled=row[8] is not None,
    )


def _trade(row: Sequence[Any]) -> IndexedTrade:
    return IndexedTrade(
        trade_id=int(row[0]),
        offer_id=int(row[1]),
        seller=str(row[2]),
        buyer=str(row[3]),
        seller_meter=bytes(row[4]),
        buyer_meter=bytes(row[5]),
        delivery_start=uint(row[6]),
        quantity_wh=uint(row[7]),
        price_per_kwh=uint(row[8]),
        escrow=uint(row[9]),
        outcome=None if row[10] is None else str(row[10]),
        delivered_wh=0 if row[11] is None else uint(row[11]),
        paid=0 if row[12] is None else uint(row[12]),
    )


class ReadModel:
    """Queries and idempotent writes of the read model, run on the store's own connection.

    Writes take the connection of an open `Store.write()` transaction (`db`), so the indexer
    applies one block range and moves the cursor in one transaction: a range is either wholly
    indexed or not at all.
    """

    def __init__(self, store: Database) -> None:
        self._store = store

    def write(self) -> AbstractContextManager[Connection]:
        """The store's write transaction (what the indexer applies a range in)."""
        return self._store.write()

    def read(self) -> AbstractContextManager[Connection]:
        """The store's connection for reads."""
        return self._store.read()

    # --- the cursor -----------------------------------------------------------------------------

    def cursor(self, db: Connection | None = None) -> IndexCursor | None:
        """The cursor, read on `db` (inside a write transaction) or on its own."""
        sql = (
            "SELECT deployment, block_number, block_hash, block_timestamp FROM chain_cursor "
            "WHERE id = 1"
        )
        if db is None:
            with self._store.read() as own:
                row = own.execute(sql).fetchone()
        else:
            row = db.execute(sql).fetchone()
        if row is None:
            return None
        return IndexCursor(
            str(row[0]), int(row[1]), None if row[2] is None else bytes(row[2]), int(row[3])
        )

    def set_cursor(self, db: Connection, cursor: IndexCursor) -> None:
        db.execute(
            "INSERT INTO chain_cursor (id, deployment, block_number, block_hash, block_timestamp) "
            "VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "deployment = excluded.deployment, block_number = excluded.block_number, "
            "block_hash = excluded.block_hash, block_timestamp = excluded.block_timestamp",
            (cursor.deployment, cursor.block_number, cursor.block_hash, cursor.block_timestamp),
        )
        if cursor.block_hash is not None:
            self.remember_blocks(db, [(cursor.block_number, cursor.block_hash)])

    def reset(self, db: Connection, cursor: IndexCursor) -> None:
        """Forgets everything indexed (another deployment, or a chain that was replaced) and
        starts again from `cursor`."""
        for table in (*_event_tables(), "chain_blocks"):
            db.execute(f"DELETE FROM {table}")  # noqa: S608 - names from the declarations
        self.set_cursor(db, cursor)

    def remember_blocks(self, db: Connection, blocks: Iterable[tuple[int, bytes]]) -> None:
        """Records the hashes of indexed blocks (for `remembered_blocks`)."""
        db.executemany(
            "INSERT INTO chain_blocks (block_number, block_hash) VALUES (?, ?) "
            "ON CONFLICT (block_number) DO UPDATE SET block_hash = excluded.block_hash",
            sorted(set(blocks)),
        )

    def remembered_blocks(self, db: Connection, below: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` remembered (number, hash) pairs below block `below`, newest first."""
        rows = db.execute(
            "SELECT block_number, block_hash FROM chain_blocks WHERE block_number < ? "
            "ORDER BY block_number DESC LIMIT ?",
            (below, limit),
        ).fetchall()
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def forget_blocks_below(self, db: Connection, block_number: int) -> None:
        """Drops remembered hashes older than any reorganisation still looked for."""
        db.execute("DELETE FROM chain_blocks WHERE block_number < ?", (block_number,))

    def rollback_above(self, db: Connection, block_number: int) -> None:
        """Deletes every row from a log above `block_number` (their blocks were reorganised
        away) and undoes the cancellations made there."""
        touched = {
            int(r[0])
            for r in db.execute(
                "SELECT offer_id FROM chain_trades WHERE block_number > ? UNION "
                "SELECT offer_id FROM chain_offers WHERE cancel_block_number > ?",
                (block_number, block_number),
            ).fetchall()
        }
        for table in _event_tables():
            db.execute(
                f"DELETE FROM {table} WHERE block_number > ?",  # noqa: S608 - declared names
                (block_number,),
            )
        db.execute(
            "UPDATE chain_offers SET cancel_block_number = NULL, cancel_tx_hash = NULL, "
            "cancel_log_index = NULL, withdrawn_wh = NULL WHERE cancel_block_number > ?",
            (block_number,),
        )
        db.execute("DELETE FROM chain_blocks WHERE block_number > ?", (block_number,))
        self.refresh_offers(db, touched)

    # --- events -------------------------------------------------------------------------------

    def add_meter(
        self,
        db: Connection,
        log: LogRef,
        *,
        meter_id: bytes,
        owner: str,
        algorithm: int,
        public_key: bytes,
        valid_from: int,
    ) -> None:
        """MeterRegistered: the meter and its first key epoch."""
        db.execute(
            "INSERT INTO chain_meters (meter_id, owner, block_number, tx_hash, log_index) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (meter_id, owner, *log.params()),
        )
        self.add_key_epoch(
            db,
            log,
            meter_id=meter_id,
            epoch=0,
            algorithm=algorithm,
            public_key=public_key,
            valid_from=valid_from,
        )

    def add_key_epoch(
        self,
        db: Connection,
        log: LogRef,
        *,
        meter_id: bytes,
        epoch: int,
        algorithm: int,
        public_key: bytes,
        valid_from: int,
    ) -> None:
        """MeterRegistered (epoch 0) or MeterKeyRotated."""
        db.execute(
            "INSERT INTO chain_key_epochs (meter_id, epoch, algorithm, public_key, valid_from, "
            "block_number, tx_hash, log_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (meter_id, epoch, algorithm, public_key, u64(valid_from), *log.params()),
        )

    def add_key_revocation(
        self, db: Connection, log: LogRef, *, meter_id: bytes, epoch: int, revoked_at: int
    ) -> None:
        """MeterKeyRevoked."""
        db.execute(
            "INSERT INTO chain_key_revocations (meter_id, epoch, revoked_at, block_number, "
            "tx_hash, log_index) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (meter_id, epoch, u64(revoked_at), *log.params()),
        )

    def add_batch(
        self,
        db: Connection,
        log: LogRef,
        *,
        batch_id: int,
        root: bytes,
        count: int,
        from_ts: int,
        to_ts: int,
    ) -> None:
        """ReadingBatchAnchored."""
        db.execute(
            "INSERT INTO chain_batches (batch_id, root, count, from_ts, to_ts, block_number, "
            "tx_hash, log_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (batch_id, root, count, u64(from_ts), u64(to_ts), *log.params()),
        )

    def add_offer(
        self,
        db: Connection,
        log: LogRef,
        *,
        offer_id: int,
        seller: str,
        seller_meter: bytes,
        quantity_wh: int,
        price_per_kwh: int,
        delivery_start: int,
        expiry: int,
    ) -> None:
        """OfferCreated (its remaining energy is set by `refresh_offers`)."""
        db.execute(
            "INSERT INTO chain_offers (offer_id, seller, seller_meter, quantity_wh, "
            "price_per_kwh, delivery_start, expiry, remaining_wh, block_number, tx_hash, "
            "log_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                offer_id,
                seller,
                seller_meter,
                u64(quantity_wh),
                u128(price_per_kwh),
                u64(delivery_start),
                u64(expiry),
                u64(quantity_wh),
                *log.params(),
            ),
        )

    def cancel_offer(
        self, db: Connection, log: LogRef, *, offer_id: int, withdrawn_wh: int
    ) -> None:
        """OfferCancelled (an offer is cancelled at most once)."""
        db.execute(
            "UPDATE chain_offers SET cancel_block_number = ?, cancel_tx_hash = ?, "
            "cancel_log_index = ?, withdrawn_wh = ? WHERE offer_id = ?",
            (*log.params(), u64(withdrawn_wh), offer_id),
        )

    def add_trade(
        self,
        db: Connection,
        log: LogRef,
        *,
        trade_id: int,
        offer_id: int,
        buyer: str,
        buyer_meter: bytes,
        quantity_wh: int,
        escrow: int,
    ) -> None:
        """OfferTaken (the offer's remaining energy is set by `refresh_offers`)."""
        db.execute(
            "INSERT INTO chain_trades (trade_id, offer_id, buyer, buyer_meter, quantity_wh, "
            "escrow, block_number, tx_hash, log_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (trade_id, offer_id, buyer, buyer_meter, u64(quantity_wh), u128(escrow), *log.params()),
        )

    def add_settlement(
        self,
        db: Connection,
        log: LogRef,
        *,
        trade_id: int,
        outcome: str,
        delivered_wh: int,
        paid: int,
        refunded: int,
    ) -> None:
        """TradeSettled (`outcome` 'settled') or TradeRefunded ('refunded')."""
        db.execute(
            "INSERT INTO chain_settlements (trade_id, outcome, delivered_wh, paid, refunded, "
            "block_number, tx_hash, log_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (trade_id, outcome, u64(delivered_wh), u128(paid), u128(refunded), *log.params()),
        )

    def refresh_offers(self, db: Connection, offer_ids: Iterable[int]) -> None:
        """Sets each offer's remaining energy from its facts: 0 once cancelled, otherwise its
        quantity less what its indexed takes took (so it is right however often a take is
        indexed, and after a rollback)."""
        for offer_id in sorted(set(offer_ids)):
            row = db.execute(
                "SELECT quantity_wh, cancel_block_number FROM chain_offers WHERE offer_id = ?",
                (offer_id,),
            ).fetchone()
            if row is None:
                continue
            taken = sum(
                uint(r[0])
                for r in db.execute(
                    "SELECT quantity_wh FROM chain_trades WHERE offer_id = ?", (offer_id,)
                ).fetchall()
            )
            remaining = 0 if row[1] is not None else max(0, uint(row[0]) - taken)
            db.execute(
                "UPDATE chain_offers SET remaining_wh = ? WHERE offer_id = ?",
                (u64(remaining), offer_id),
            )

    # --- queries ------------------------------------------------------------------------------

    def offers(self, *, open_at: int | None = None) -> list[IndexedOffer]:
        """Every indexed offer, oldest first; with `open_at`, only those takeable at that chain
        time (not cancelled, energy left, not expired)."""
        sql = f"SELECT {_OFFER_COLUMNS} FROM chain_offers"  # noqa: S608 - fixed text
        params: tuple[Any, ...] = ()
        if open_at is not None:
            sql += " WHERE cancel_block_number IS NULL AND remaining_wh <> ? AND expiry > ?"
            params = (_ZERO_U64, u64(open_at))
        with self._store.read() as db:
            rows = db.execute(sql + " ORDER BY offer_id", params).fetchall()
        return [_offer(r) for r in rows]

    def trades(self) -> list[IndexedTrade]:
        """Every indexed trade, oldest first."""
        with self._store.read() as db:
            rows = db.execute(_TRADE_SELECT + " ORDER BY t.trade_id").fetchall()
        return [_trade(r) for r in rows]

    def trades_of(self, account: str) -> list[IndexedTrade]:
        """Indexed trades in which `account` (EIP-55) buys or sells, oldest first."""
        with self._store.read() as db:
            rows = db.execute(
                f"{_TRADE_SELECT} WHERE t.buyer = ? UNION {_TRADE_SELECT} WHERE o.seller = ? "
                "ORDER BY 1",
                (account, account),
            ).fetchall()
        return [_trade(r) for r in rows]

    def meter(self, meter_id: bytes) -> tuple[IndexCursor | None, IndexedMeter | None]:
        """The cursor and the meter's owner and key epochs (revocations applied), read together
        so the caller knows how recent the history is; None when the meter is not indexed."""
        with self._store.read() as db:
            cursor = self.cursor(db)
            owner = db.execute(
                "SELECT owner FROM chain_meters WHERE meter_id = ?", (meter_id,)
            ).fetchone()
            epochs = db.execute(
                "SELECT epoch, algorithm, public_key, valid_from FROM chain_key_epochs "
                "WHERE meter_id = ? ORDER BY epoch",
                (meter_id,),
            ).fetchall()
            revocations = db.execute(
                "SELECT epoch, revoked_at FROM chain_key_revocations WHERE meter_id = ?",
                (meter_id,),
            ).fetchall()
        if owner is None:
            return cursor, None
        revoked: dict[int, int] = {}
        for epoch, at in revocations:
            # A revocation may only move earlier: the earliest time is the one in force.
            revoked[int(epoch)] = min(uint(at), revoked.get(int(epoch), uint(at)))
        return cursor, IndexedMeter(
            meter_id=meter_id,
            owner=str(owner[0]),
            epochs=tuple(
                IndexedKeyEpoch(
                    epoch=int(e[0]),
                    algorithm=int(e[1]),
                    public_key=bytes(e[2]),
                    valid_from=uint(e[3]),
                    revoked_at=revoked.get(int(e[0]), 0),
                )
                for e in epochs
            ),
        )

    def count(self, table: str) -> int:
        """Rows in one read-model table (for tests and /healthz)."""
        from ledger.store.read_model_tables import READ_MODEL_TABLES  # noqa: PLC0415 - as _event_tables

        if table not in {t.name for t in READ_MODEL_TABLES}:
            raise ValueError(f"{table} is not a read-model table")
        with self._store.read() as db:
            return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
