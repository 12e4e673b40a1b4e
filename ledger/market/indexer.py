"""The event indexer: the contracts' events -> the read model (`ledger/store/read_model.py`).

One indexing pass (`EventIndexer.run_once`):

1. Read the chain's head; index only up to `head - confirmations` (`LEDGER_CONFIRMATIONS`), so a
   reorganisation within that depth never reaches an indexed block.
2. Check the cursor's block hash against the chain. When the chain holds another block there (a
   deeper reorganisation, or a chain that was replaced), walk back through the remembered hashes
   to the newest block the chain still holds, delete every row above it and index from there;
   when none is left, start again from the deployment block.
3. From the cursor on, read the logs of the ledger's contracts with `eth_getLogs` in ranges of at
   most `range_blocks` blocks, and apply each range in one database transaction that also moves
   the cursor: a range is indexed wholly or not at all.

Idempotent: each row is keyed by the log it came from, inserts are ON CONFLICT DO NOTHING and
derived columns are recomputed from the rows, so indexing a range twice changes nothing.
Several indexers on one database (one per gateway worker) are harmless: a range is applied only
if the cursor is still where this indexer read it at the start of the pass (compare-and-set
inside the write transaction, which excludes every other writer); a loser's work is dropped and it
reads on from the new cursor. They only cost each other duplicate log reads.

The first pass after start catches up from the deployment block (`Deployment.start_block`) or
from the cursor a previous run left. The background thread (`start`) then polls every `poll_s`;
while the chain is unreachable a pass fails and is retried with a doubling delay (up to
`MAX_BACKOFF_S`), and the next pass that reaches the chain catches up.

Freshness: a listing lags the chain by at most one poll interval plus `confirmations` blocks. A
gateway that relays an order or a settlement indexes at once after its receipt (`index_now`), so
its own writes show in its next listing when `confirmations` is 0.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from eth_utils.address import to_checksum_address
from web3.contract import Contract
from web3.types import EventData, FilterParams, LogReceipt

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.metrics import count_chain_error
from ledger.store import bills, complaints
from ledger.store.backends import StoreUnavailable
from ledger.store.read_model import Connection, IndexCursor, LogRef, ReadModel

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
"""The longest wait between passes while the chain does not answer."""
REMEMBERED_BLOCKS = 1024
"""How far below the cursor block hashes are kept to find where a reorganisation forked; a
deeper one (a replaced chain) makes the indexer start again from the deployment block."""
_FORK_SEARCH_CHUNK = 64


class IndexerState(StrEnum):
    """What the indexer is doing, as /healthz shows it."""

    STARTING = "starting"
    CATCHING_UP = "catching_up"
    CURRENT = "current"  # indexed up to head - confirmations at the last pass
    CHAIN_UNAVAILABLE = "chain_unavailable"
    STORE_UNAVAILABLE = "store_unavailable"


@dataclass(frozen=True)
class PassResult:
    """What one pass did."""

    indexed_to: int  # the cursor's block after the pass
    target: int  # head - confirmations when the pass began
    logs: int  # logs applied
    rolled_back_to: int | None = None  # the block a reorganisation was rolled back to

    @property
    def current(self) -> bool:
        return self.indexed_to >= self.target


class _CursorMoved(Exception):
    """Another indexer moved the cursor during this pass; its ranges are not applied."""


# (contract, event) -> how it is written to the read model.
_Handler = Callable[[ReadModel, Connection, LogRef, dict[str, Any]], set[int]]


def _meter_registered(rm: ReadModel, db: Connection, ref: LogRef, a: dict[str, Any]) -> set[int]:
    rm.add_meter(
        db,
        ref,
        meter_id=bytes(a["meterId"]),
        owner=to_checksum_address(a["owner"]),
        algorithm=int(a["algorithm"]),
        public_key=bytes(a["publicKey"]),
        valid_from=int(a["validFrom"]),
    )
    return set()


def _key_rotated(rm: ReadModel, db: Connection, ref: LogRef, a: dict[str, Any]) -> set[int]:
    rm.add_key_epoch(
        db,
        ref,
        meter_id=bytes(a["meterId"]),
        epoch=int(a["epoch"]),
        algorithm=int(a["algorithm"]),
        public_key=bytes(a["publicKey"]),
        valid_from=int(a["validFrom"]),
    )
    return set()


def _key_revoked(rm: ReadModel, db: Connection, ref: LogRef, a: dict[str, Any]) -> set[int]:
    rm.add_key_revocation(
        db, ref, meter_id=bytes(a["meterId"]), epoch=int(a["epoch"]), revoked_at=int(a["revokedAt"])
    )
    return set()


def _batch_anchored(rm: ReadModel, db: Connection, ref: LogRef, a: dict[str, Any]) -> set[int]:
    rm.add_batch(
        db,
        ref,
        batch_id=int(a["batchId"]),
        root=bytes(a["root"]),
        count=int(a["count"]),
        from_ts=int(a["fromTimestamp"]),
        to_ts=int(a["toTimestamp"]),
    )
    return set()


def _offer_created(rm: ReadModel, db: Connection, ref: LogRef, a: dict[str, Any]) -> set[int]:
    rm.add_offer(
        db,
        ref,
        offer_id=int(a["offerId"]),
        seller=to_checksum_address(a["seller"]),
        seller_meter=bytes(a["sellerMeter"]),
        quantity_wh=int(a["quantityWh"]),
        price_per_kwh=int(a["pricePerKWh"]),
        delivery_start=int(a["deliveryStart"]),
        expiry=int(a["expiry"]),
    )
    return {int(a["offerId"])}


def _offer_cancelled(rm: ReadModel, db: Connection, ref: LogRef, a: dict[str, Any]) -> set[int]:
    rm.cancel_offer(db, ref, offer_id=int(a["offerId"]), withdrawn_wh=int(a["withdrawnWh"]))
    return {int(a["offerId"])}


def _offer_taken(rm: ReadModel, db: Connection, ref: LogRef, a: dict[str, Any]) -> set[int]:
    rm.add_trade(
        db,
        ref,
        trade_id=int(a["tradeId"]),
        offer_id=int(a["offerId"]),
        buyer=to_checksum_address(a["buyer"]),
        buyer_meter=bytes(a["buyerMeter"]),
        quantity_wh=int(a["quantityWh"]),
        escrow=int(a["escrow"]),
    )
    return {int(a["offerId"])}


def _trade_settled(rm: ReadModel, db: Connection, ref: LogRef, a: dict[str, Any]) -> set[int]:
    rm.add_settlement(
        db,
        ref,
        trade_id=int(a["tradeId"]),
        outcome="settled",
        delivered_wh=int(a["deliveredWh"]),
        paid=int(a["paid"]),
        refunded=int(a["refunded"]),
    )
    return set()


def _trade_refunded(rm: ReadModel, db: Connection, ref: LogRef, a: dict[str, Any]) -> set[int]:
    rm.add_settlement(
        db,
        ref,
        trade_id=int(a["tradeId"]),
        outcome="refunded",
        delivered_wh=0,
        paid=0,
        refunded=int(a["refunded"]),
    )
    return set()


def _tariff_published(rm: ReadModel, db: Connection, ref: LogRef, a: dict[str, Any]) -> set[int]:
    bills.add_tariff(db, ref, tariff_hash=bytes(a["tariffHash"]), valid_from=int(a["validFrom"]))
    return set()


def _tariff_assigned(rm: ReadModel, db: Connection, ref: LogRef, a: dict[str, Any]) -> set[int]:
    bills.add_tariff_assignment(
        db,
        ref,
        customer=to_checksum_address(a["customer"]),
        tariff_hash=bytes(a["tariffHash"]),
        valid_from=int(a["validFrom"]),
    )
    return set()


def _bills_anchored(rm: ReadModel, db: Connection, ref: LogRef, a: dict[str, Any]) -> set[int]:
    bills.add_chain_bill_run(
        db,
        ref,
        run_id=int(a["runId"]),
        root=bytes(a["root"]),
        bill_count=int(a["billCount"]),
        period_start=int(a["periodStart"]),
        period_end=int(a["periodEnd"]),
        first_reading_batch=int(a["firstReadingBatch"]),
        last_reading_batch=int(a["lastReadingBatch"]),
    )
    return set()


def _complaint_step(step: str) -> _Handler:
    """The handler of one ComplaintRegistry event: every one is a row of chain_complaint_steps."""

    def handle(rm: ReadModel, db: Connection, ref: LogRef, a: dict[str, Any]) -> set[int]:
        row = complaints.StepRow(
            complaint_id=int(a["complaintId"]),
            step=step,
            round=int(a.get("round", 1)),  # ComplaintOpened starts round 1
            at=int(a["at"]),
            customer=to_checksum_address(a["customer"]) if "customer" in a else None,
            subject_kind=int(a["kind"]) if "kind" in a else None,
            subject_ref=bytes(a["subjectRef"]) if "subjectRef" in a else None,
            handler=bytes(a["handler"]) if "handler" in a else None,
            rating=int(a["rating"]) if "rating" in a else None,
            text_hash=bytes(a["textHash"]) if "textHash" in a else None,
            block_number=ref.block_number,
            log_index=ref.log_index,
        )
        complaints.add_step(db, ref, row)
        return set()

    return handle


_HANDLERS: dict[str, dict[str, _Handler]] = {
    "MeterRegistry": {
        "MeterRegistered": _meter_registered,
        "MeterKeyRotated": _key_rotated,
        "MeterKeyRevoked": _key_revoked,
    },
    "ReadingLedger": {"ReadingBatchAnchored": _batch_anchored},
    "EnergyMarket": {
        "OfferCreated": _offer_created,
        "OfferCancelled": _offer_cancelled,
        "OfferTaken": _offer_taken,
        "TradeSettled": _trade_settled,
        "TradeRefunded": _trade_refunded,
    },
    "BillRegistry": {
        "TariffPublished": _tariff_published,
        "TariffAssigned": _tariff_assigned,
        "BillsAnchored": _bills_anchored,
    },
    "ComplaintRegistry": {
        "ComplaintOpened": _complaint_step("opened"),
        "ComplaintResponded": _complaint_step("responded"),
        "ComplaintAssigned": _complaint_step("assigned"),
        "ComplaintPlanned": _complaint_step("planned"),
        "ComplaintResolved": _complaint_step("resolved"),
        "ComplaintRated": _complaint_step("rated"),
        "ComplaintReopened": _complaint_step("reopened"),
    },
}


def deployment_key(deployment: Deployment) -> str:
    """What the cursor records of the deployment it indexes (another one starts afresh)."""
    names = sorted(_HANDLERS)
    return f"{deployment.chain_id}:" + ",".join(
        str(deployment.addresses[name]).lower() for name in names
    )


class EventIndexer:
    """Keeps the read model current with the chain (see the module docstring)."""

    def __init__(
        self,
        chain: Chain,
        deployment: Deployment,
        read_model: ReadModel,
        *,
        confirmations: int = 0,
        range_blocks: int = 2000,
        poll_s: float = 1.0,
    ) -> None:
        self._chain = chain
        self._read_model = read_model
        self._confirmations = confirmations
        self._range_blocks = range_blocks
        self._poll_s = poll_s
        self._deployment = deployment_key(deployment)
        self._start_block = deployment.start_block
        # (address, topic0) -> (the contract's event to decode it with, handler)
        self._events: dict[tuple[str, bytes], tuple[Any, _Handler]] = {}
        for name, handlers in _HANDLERS.items():
            contract: Contract = deployment.contracts[name]
            for event_name, handler in handlers.items():
                event = contract.events[event_name]()
                topic = bytes.fromhex(str(event.topic).removeprefix("0x"))
                self._events[(str(contract.address).lower(), topic)] = (event, handler)
        self._addresses = sorted({to_checksum_address(a) for a, _ in self._events})
        self._topics = sorted({"0x" + t.hex() for _, t in self._events})
        # One pass at a time in this process (the background thread and `index_now`).
        self._pass_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = IndexerState.STARTING
        self.last_error: str | None = None
        self.failures = 0

    # --- the background loop ------------------------------------------------------------------

    def start(self) -> None:
        """Runs passes in a daemon thread until `stop()`."""
        self._thread = threading.Thread(target=self._loop, name="indexer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self._poll_once())

    def _poll_once(self) -> float:
        """Runs one pass and returns how long to wait before the next."""
        try:
            result = self.run_once()
        except StoreUnavailable as error:
            self._failed(IndexerState.STORE_UNAVAILABLE, error)
        except Exception as error:  # noqa: BLE001 - chain outages take many forms; retry
            count_chain_error("indexing", error)
            self._failed(IndexerState.CHAIN_UNAVAILABLE, error)
        else:
            self.failures, self.last_error = 0, None
            self.state = IndexerState.CURRENT if result.current else IndexerState.CATCHING_UP
            return self._poll_s
        return float(min(MAX_BACKOFF_S, self._poll_s * 2**self.failures))

    def _failed(self, state: IndexerState, error: Exception) -> None:
        self.failures += 1
        self.state, self.last_error = state, str(error)
        log.warning("indexing pass failed (%d in a row), retrying: %s", self.failures, error)

    def index_now(self) -> None:
        """One pass now (after this gateway relayed a transaction), never raising: a failure
        is left to the background loop's next pass."""
        try:
            self.run_once()
        except Exception as error:  # noqa: BLE001 - the relay itself succeeded
            log.info("indexing after a relay failed, the next poll catches up: %s", error)

    # --- one pass -----------------------------------------------------------------------------

    def run_once(self) -> PassResult:
        """Indexes up to head - confirmations, in bounded ranges (see the module docstring).

        Raises:
            StoreUnavailable: The database does not answer.
            Exception: Whatever the chain transport raises while it is unreachable.
        """
        with self._pass_lock:
            w3 = self._chain.w3
            target = int(w3.eth.block_number) - self._confirmations
            cursor = self._cursor()
            rolled_back_to = None
            if cursor.block_hash is not None:
                fork = self._fork_point(cursor)
                if fork is not None:
                    cursor = self._roll_back(cursor, fork)
                    rolled_back_to = cursor.block_number
            logs = 0
            try:
                while cursor.block_number < target:
                    cursor, applied = self._index_range(cursor, target)
                    logs += applied
            except _CursorMoved:
                log.info("another indexer moved the cursor; reading on from there next pass")
                cursor = self._cursor()
            return PassResult(cursor.block_number, target, logs, rolled_back_to)

    def _cursor(self) -> IndexCursor:
        """The cursor, set to just before the deployment block when there is none or it is of
        another deployment (everything indexed for that one is forgotten)."""
        cursor = self._read_model.cursor()
        if cursor is not None and cursor.deployment == self._deployment:
            return cursor
        fresh = IndexCursor(self._deployment, self._start_block - 1, None, 0)
        with self._read_model.write() as db:
            current = self._read_model.cursor(db)
            if current is not None and current.deployment == self._deployment:
                return current  # another indexer reset it meanwhile
            log.info("indexing %s from block %d", self._deployment, self._start_block)
            self._read_model.reset(db, fresh)
        return fresh

    def _fork_point(self, cursor: IndexCursor) -> tuple[int, bytes | None, int] | None:
        """None when the chain still holds the cursor's block; otherwise the newest remembered
        block it still holds (number, hash, time), or the block before the deployment."""
        if self._block_hash(cursor.block_number) == cursor.block_hash:
            return None
        below = cursor.block_number
        while True:
            with self._read_model.read() as db:
                remembered = self._read_model.remembered_blocks(db, below, _FORK_SEARCH_CHUNK)
            for number, block_hash in remembered:
                if self._block_hash(number) == block_hash:
                    timestamp = int(self._chain.w3.eth.get_block(number)["timestamp"])
                    return (number, block_hash, timestamp)
            if len(remembered) < _FORK_SEARCH_CHUNK:
                return (self._start_block - 1, None, 0)
            below = remembered[-1][0]

    def _roll_back(self, cursor: IndexCursor, fork: tuple[int, bytes | None, int]) -> IndexCursor:
        number, block_hash, timestamp = fork
        log.warning(
            "block %d is no longer on the chain: rows above block %d rolled back",
            cursor.block_number,
            number,
        )
        rolled = IndexCursor(self._deployment, number, block_hash, timestamp)
        with self._read_model.write() as db:
            if self._read_model.cursor(db) != cursor:
                raise _CursorMoved
            self._read_model.rollback_above(db, number)
            self._read_model.set_cursor(db, rolled)
        return rolled

    def _index_range(self, cursor: IndexCursor, target: int) -> tuple[IndexCursor, int]:
        first = cursor.block_number + 1
        last = min(target, first + self._range_blocks - 1)
        raw = self._chain.w3.eth.get_logs(
            FilterParams(
                address=self._addresses,
                fromBlock=first,
                toBlock=last,
                topics=[self._topics],
            )
        )
        end = self._chain.w3.eth.get_block(last)
        end_hash = bytes(end["hash"])
        # A log of the range's last block from another branch than `end`: a reorganisation
        # during this pass. Nothing is applied; the next pass looks again.
        if any(int(x["blockNumber"]) == last and bytes(x["blockHash"]) != end_hash for x in raw):
            return cursor, 0
        moved = IndexCursor(self._deployment, last, end_hash, int(end["timestamp"]))
        logs = sorted(raw, key=lambda x: (int(x["blockNumber"]), int(x["logIndex"])))
        # Decoded before the transaction: the database's writers wait only for the inserts.
        decoded = [self._decode(entry) for entry in logs]
        with self._read_model.write() as db:
            if self._read_model.cursor(db) != cursor:
                raise _CursorMoved
            touched: set[int] = set()
            for found in decoded:
                if found is not None:
                    handler, ref, args = found
                    touched |= handler(self._read_model, db, ref, args)
            self._read_model.refresh_offers(db, touched)
            self._read_model.remember_blocks(
                db, {(int(x["blockNumber"]), bytes(x["blockHash"])) for x in logs}
            )
            self._read_model.set_cursor(db, moved)
            self._read_model.forget_blocks_below(db, last - REMEMBERED_BLOCKS)
        return moved, len(logs)

    def _decode(self, entry: LogReceipt) -> tuple[_Handler, LogRef, dict[str, Any]] | None:
        """The handler of a log, where it came from and its decoded arguments (None for a log
        of an event the read model does not hold)."""
        topics = entry["topics"]
        if not topics:
            return None
        found = self._events.get((str(entry["address"]).lower(), bytes(topics[0])))
        if found is None:
            return None
        event, handler = found
        decoded: EventData = event.process_log(entry)
        ref = LogRef(
            int(entry["blockNumber"]), bytes(entry["transactionHash"]), int(entry["logIndex"])
        )
        return handler, ref, dict(decoded["args"])

    def _block_hash(self, number: int) -> bytes | None:
        try:
            block = self._chain.w3.eth.get_block(number)
        except Exception as error:  # noqa: BLE001 - web3 raises BlockNotFound and others
            if type(error).__name__ == "BlockNotFound":
                return None  # the chain is shorter now than the cursor
            raise
        return bytes(block["hash"])

    def status(self) -> dict[str, Any]:
        """State, last error and the indexed block (for /healthz)."""
        cursor = self._read_model.cursor()
        return {
            "state": self.state.value,
            "last_error": self.last_error,
            "indexed_block": None if cursor is None else cursor.block_number,
            "confirmations": self._confirmations,
        }


def index_until_current(indexer: EventIndexer, *, max_passes: int = 1000) -> PassResult:
    """Runs passes until the read model reaches head - confirmations (for commands and tests)."""
    result = indexer.run_once()
    for _ in range(max_passes):
        if result.current:
            return result
        result = indexer.run_once()
    return result
