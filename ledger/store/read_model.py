"""The read model: what the contracts' events say, kept in tables of the ledger's own database.

The event indexer (`ledger/market/indexer.py`) writes here; listings (offers, a customer's
trades, a meter's key history) and the ingestion key cache read here, so a listing is one query
and never one RPC per item. Tables, all prefixed `chain_`:

    chain_cursor          the last indexed block (number, hash, time) and the deployment it is of
    chain_blocks          hashes of indexed blocks, to notice a reorganisation and roll back
    chain_meters          MeterRegistered: owner
    chain_key_epochs      MeterRegistered / MeterKeyRotated: one row per key epoch
    chain_key_revocations MeterKeyRevoked (a revocation may later move earlier: one row each)
    chain_batches         ReadingBatchAnchored
    chain_offers          OfferCreated, with OfferCancelled in its cancel_* columns and the
                          remaining energy derived from its takes
    chain_trades          OfferTaken
    chain_settlements     TradeSettled / TradeRefunded (a trade ends at most once)

Every row names the log it came from (block number, transaction hash, log index); (tx_hash,
log_index) is unique in each table, and inserts are `ON CONFLICT DO NOTHING`, so indexing a range
twice changes nothing. Rows above a block a reorganisation replaced are deleted
(`rollback_above`) and that range is indexed again.

Chain integers that may exceed SQLite's signed 64-bit INTEGER are fixed-width big-endian BLOBs,
as in the rest of the store: uint64 (energy, times) in 8 bytes, uint128 (prices, money) in 16.
BLOBs compare bytewise, so they sort and compare like the numbers. Ids (offer, trade, batch,
key epoch) and block numbers are counters that stay far below 2^63 and are BIGINT.

The tables are created by the Alembic revision `0002_read_model`, which opening the store runs
(`ledger/store/migrate.py`); `tests/unit/store/test_migrate.py` checks it against these
declarations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ledger.store.schema import metadata


def _log_columns() -> list[Column[Any]]:
    """Where a row came from: the log's block, transaction and index in its block."""
    return [
        Column("block_number", BigInteger, nullable=False),
        Column("tx_hash", LargeBinary, nullable=False),
        Column("log_index", Integer, nullable=False),
    ]


chain_cursor = Table(
    "chain_cursor",
    metadata,
    Column("id", Integer, primary_key=True),  # always 1: one cursor per database
    Column("deployment", Text, nullable=False),  # chain id and contract addresses indexed
    Column("block_number", BigInteger, nullable=False),  # indexed up to and including this
    Column("block_hash", LargeBinary),  # NULL before the first block is indexed
    Column("block_timestamp", BigInteger, nullable=False),
)
chain_blocks = Table(
    "chain_blocks",
    metadata,
    Column("block_number", BigInteger, primary_key=True, autoincrement=False),
    Column("block_hash", LargeBinary, nullable=False),
)
chain_meters = Table(
    "chain_meters",
    metadata,
    Column("meter_id", LargeBinary, primary_key=True),  # bytes32
    Column("owner", String(42), nullable=False),  # EIP-55
    *_log_columns(),
    UniqueConstraint("tx_hash", "log_index"),
)
chain_key_epochs = Table(
    "chain_key_epochs",
    metadata,
    Column("meter_id", LargeBinary, primary_key=True),
    Column("epoch", BigInteger, primary_key=True, autoincrement=False),
    Column("algorithm", SmallInteger, nullable=False),
    Column("public_key", LargeBinary, nullable=False),
    Column("valid_from", LargeBinary, nullable=False),  # uint64
    *_log_columns(),
    UniqueConstraint("tx_hash", "log_index"),
)
chain_key_revocations = Table(
    "chain_key_revocations",
    metadata,
    Column("meter_id", LargeBinary, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("revoked_at", LargeBinary, nullable=False),  # uint64; the earliest one counts
    *_log_columns(),
    PrimaryKeyConstraint("tx_hash", "log_index"),
    Index(None, "meter_id", "epoch"),
)
chain_batches = Table(
    "chain_batches",
    metadata,
    Column("batch_id", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("from_ts", LargeBinary, nullable=False),  # uint64
    Column("to_ts", LargeBinary, nullable=False),  # uint64
    *_log_columns(),
    UniqueConstraint("tx_hash", "log_index"),
)
chain_offers = Table(
    "chain_offers",
    metadata,
    Column("offer_id", BigInteger, primary_key=True, autoincrement=False),
    Column("seller", String(42), nullable=False),
    Column("seller_meter", LargeBinary, nullable=False),
    Column("quantity_wh", LargeBinary, nullable=False),  # uint64
    Column("price_per_kwh", LargeBinary, nullable=False),  # uint128
    Column("delivery_start", LargeBinary, nullable=False),  # uint64
    Column("expiry", LargeBinary, nullable=False),  # uint64
    Column("remaining_wh", LargeBinary, nullable=False),  # uint64, derived (`_refresh_offers`)
    *_log_columns(),
    Column("cancel_block_number", BigInteger),  # OfferCancelled; NULL while not cancelled
    Column("cancel_tx_hash", LargeBinary),
    Column("cancel_log_index", Integer),
    Column("withdrawn_wh", LargeBinary),  # uint64
    UniqueConstraint("tx_hash", "log_index"),
    Index(None, "seller"),
)
chain_trades = Table(
    "chain_trades",
    metadata,
    Column("trade_id", BigInteger, primary_key=True, autoincrement=False),
    Column("offer_id", BigInteger, nullable=False),
    Column("buyer", String(42), nullable=False),
    Column("buyer_meter", LargeBinary, nullable=False),
    Column("quantity_wh", LargeBinary, nullable=False),  # uint64
    Column("escrow", LargeBinary, nullable=False),  # uint128
    *_log_columns(),
    UniqueConstraint("tx_hash", "log_index"),
    Index(None, "buyer"),
    Index(None, "offer_id"),
)
chain_settlements = Table(
    "chain_settlements",
    metadata,
    Column("trade_id", BigInteger, primary_key=True, autoincrement=False),
    Column("outcome", String(8), nullable=False),  # 'settled' | 'refunded'
    Column("delivered_wh", LargeBinary, nullable=False),  # uint64
    Column("paid", LargeBinary, nullable=False),  # uint128
    Column("refunded", LargeBinary, nullable=False),  # uint128
    *_log_columns(),
    UniqueConstraint("tx_hash", "log_index"),
)

READ_MODEL_TABLES = (
    chain_cursor,
    chain_blocks,
    chain_meters,
    chain_key_epochs,
    chain_key_revocations,
    chain_batches,
    chain_offers,
    chain_trades,
    chain_settlements,
)
# Tables of rows that come from logs: what a reset or a rollback deletes.
_EVENT_TABLES = tuple(t.name for t in READ_MODEL_TABLES if "tx_hash" in t.c)


def u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def u128(value: int) -> bytes:
    return value.to_bytes(16, "big")


def uint(blob: bytes | memoryview) -> int:
    return int.from_bytes(bytes(blob), "big")


_ZERO_U64 = u64(0)


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
        for table in (*_EVENT_TABLES, "chain_blocks"):
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
        for table in _EVENT_TABLES:
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
        if table not in {t.name for t in READ_MODEL_TABLES}:
            raise ValueError(f"{table} is not a read-model table")
        with self._store.read() as db:
            return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
