"""Anchoring: pending readings -> Merkle batch -> ReadingLedger, and proofs of single readings.

One anchoring cycle (`Anchorer.run_once`), run by a background thread every `interval_s`:

1. Take the anchoring lease (`Store.anchor_lease`): one anchorer per database, so several
   gateways can share a PostgreSQL database and only one of them anchors. A gateway that does
   not hold the lease waits in `standby` and takes over when the holder dies.
2. Reconcile every batch intent with the chain. An intent is committed to the database (root,
   and which readings at which leaf index) BEFORE its transaction is sent, so after a crash the
   intent tells what may have been sent:
   - the chain holds the intent's root under its id: it was anchored; mark it (transaction hash
     and block from the `ReadingBatchAnchored` event);
   - the chain's last batch id is the intent's id - 1: it was never mined; send it again (the
     contract's `batchId == last + 1` rule makes a duplicate send revert, never anchor twice);
   - the chain holds another root under the id: something else anchored there; the intent's
     readings are released to a later batch and the id is recorded as `foreign`.
3. With no intent left, take up to `max_readings` pending readings, build the tree, commit the
   intent, send `anchor(batchId, root, count, fromTs, toTs)` and mark the batch anchored.

Finality (`LEDGER_CONFIRMATIONS`, `confirmations` here): a batch is `anchored` from its receipt,
and final once its block has that many blocks on top. Until then every cycle first re-checks it
against the chain (before step 2): the ReadingLedger still holds its root under its id, and its
transaction's receipt names a block that is still the canonical block at that height. When the
block was reorganised away, the batch becomes an intent again (same id, root and readings) and
step 2 settles it: sent again under its id if the chain's last batch id allows, otherwise its
readings are released to a later batch. Proofs are served as final only once the batch is final
(`ProofService.proof`). With 0 confirmations a batch is final at its receipt and a
reorganisation is not watched for: right for the managed chain and instant-finality networks.

The lease is asked again right before each anchoring transaction: a PostgreSQL restart ends the
session that held it, and another gateway may hold it by then; this one then stands by.

While the chain is unreachable the cycle fails and is retried; ingestion does not depend on it.
While the database is unreachable the cycle fails too (`store_unavailable`) and is retried.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from eth_utils.crypto import keccak
from web3.exceptions import TransactionNotFound

from ledger.anchoring.merkle import MerkleTree
from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.errors import ContractRevert, LedgerError
from ledger.metrics import count_chain_error
from ledger.store.backends import StoreError, StoreUnavailable, utc_now_iso
from ledger.store.batches import BatchRecord, BatchStatus
from ledger.store.database import Store
from ledger.store.readings import StoredReading

log = logging.getLogger(__name__)

_BATCH_ANCHORED_TOPIC = keccak(text="ReadingBatchAnchored(uint256,bytes32,uint32,uint64,uint64)")
_TREE_CACHE_SIZE = 16
# Most not-yet-final batches re-checked against the chain in one cycle (three calls each).
_RECHECK_LIMIT = 256


class AnchorState(StrEnum):
    """What the anchorer is doing, as the health route shows it."""

    STARTING = "starting"
    IDLE = "idle"  # holds the lease, nothing pending
    ANCHORING = "anchoring"
    STANDBY = "standby"  # another gateway holds the lease
    CHAIN_UNAVAILABLE = "chain_unavailable"  # the last cycle could not reach the chain
    STORE_UNAVAILABLE = "store_unavailable"  # the last cycle could not reach the database
    STUCK = "stuck"  # the chain and the database disagree in a way that needs an operator
    DISABLED = "disabled"


class AnchorStuck(LedgerError):
    """The chain's batches cannot be reconciled with the database's intents."""

    code = "anchoring_stuck"


class _LeaseLost(Exception):
    """The lease was gone when this anchorer was about to send (another one may hold it)."""


@dataclass(frozen=True)
class CycleResult:
    """What one anchoring cycle did."""

    state: AnchorState
    anchored: tuple[int, ...] = ()  # batch ids marked anchored in this cycle
    released: int = 0  # readings released from foreign batch ids
    dropped: tuple[int, ...] = ()  # batch ids whose anchoring block a reorganisation removed


class Anchorer:
    """Batches pending readings and anchors them (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        chain: Chain,
        deployment: Deployment,
        *,
        interval_s: float,
        max_readings: int,
        confirmations: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._chain = chain
        self._ledger = deployment.reading_ledger
        self._interval_s = interval_s
        self._max_readings = max_readings
        self._confirmations = confirmations
        self._clock = clock
        self._lease = store.anchor_lease()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = AnchorState.STARTING
        self.last_error: str | None = None

    # --- the background loop ------------------------------------------------------------------

    def start(self) -> None:
        """Runs cycles in a daemon thread until `stop()`."""
        self._thread = threading.Thread(target=self._loop, name="anchorer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._lease.release()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                result = self.run_once()
                self.state = result.state
                self.last_error = None
            except AnchorStuck as error:
                self.state, self.last_error = AnchorState.STUCK, str(error)
                log.error("anchoring stopped: %s", error)
            except StoreUnavailable as error:
                self.state, self.last_error = AnchorState.STORE_UNAVAILABLE, str(error)
                log.warning("anchoring cycle failed, retrying: %s", error)
            except Exception as error:  # noqa: BLE001 - chain outages take many forms; retry
                self.state, self.last_error = AnchorState.CHAIN_UNAVAILABLE, str(error)
                count_chain_error("anchoring", error)
                log.warning("anchoring cycle failed, retrying: %s", error)
            # A full batch left more behind: go again at once.
            busy = self.state is AnchorState.ANCHORING
            self._stop.wait(0 if busy else self._interval_s)

    # --- one cycle ----------------------------------------------------------------------------

    def run_once(self) -> CycleResult:
        """One cycle: lease, reconcile intents, anchor one new batch (see the module docstring).

        Raises:
            AnchorStuck: The chain is behind the database's intents (e.g. a reset chain).
            StoreUnavailable: The database does not answer.
            Exception: Whatever the chain transport raises while it is unreachable.
        """
        if not self._lease.try_acquire():
            return CycleResult(AnchorState.STANDBY)
        try:
            return self._cycle()
        except _LeaseLost:
            log.warning("the anchoring lease was lost (database session ended); standing by")
            return CycleResult(AnchorState.STANDBY)

    def _cycle(self) -> CycleResult:
        anchored: list[int] = []
        dropped = self._recheck_unfinal()
        released = 0
        for intent in self._store.batches(status=BatchStatus.INTENT):
            released += self._reconcile(intent)
        if self._store.count_batches(BatchStatus.INTENT):
            # A send reverted because the id was taken meanwhile: look at the chain again first.
            return CycleResult(AnchorState.ANCHORING, (), released, dropped)
        chain_last = self._chain_last_batch_id()
        self._record_foreign_batches(chain_last)
        pending = self._store.pending_leaves(self._max_readings)
        if not pending:
            return CycleResult(AnchorState.IDLE, tuple(anchored), released, dropped)
        tree = MerkleTree([p.leaf for p in pending])
        timestamps = [p.timestamp for p in pending]
        intent = BatchRecord(
            batch_id=max(chain_last, self._store.last_batch_id()) + 1,
            root=tree.root,
            count=len(pending),
            from_ts=min(timestamps),
            to_ts=max(timestamps),
            status=BatchStatus.INTENT,
            tx_hash=None,
            block_number=None,
            created_at=utc_now_iso(self._clock),
            anchored_at=None,
        )
        try:
            self._store.create_batch_intent(intent, pending)
        except StoreError as error:
            # Another anchorer took these readings or this id (its lease overlapped ours).
            log.warning("batch intent not created: %s", error)
            return CycleResult(AnchorState.ANCHORING, tuple(anchored), released, dropped)
        if not self._send(intent):
            return CycleResult(AnchorState.ANCHORING, tuple(anchored), released, dropped)
        anchored.append(intent.batch_id)
        more = len(pending) == self._max_readings
        state = AnchorState.ANCHORING if more else AnchorState.IDLE
        return CycleResult(state, tuple(anchored), released, dropped)

    def _recheck_unfinal(self) -> tuple[int, ...]:
        """Re-checks anchored batches that are not final yet (see the module docstring): marks
        them final when deep enough, and makes intents again of those a reorganisation dropped.
        Returns the ids of the dropped ones."""
        batches = self._store.unfinal_batches(_RECHECK_LIMIT)
        if not batches:
            return ()
        head = int(self._chain.w3.eth.block_number)
        dropped = []
        for batch in batches:
            block = self._canonical_block(batch)
            if block is None:
                log.warning(
                    "batch %d: its anchoring block %s is no longer on the chain; anchoring again",
                    batch.batch_id,
                    batch.block_number,
                )
                self._store.mark_dropped(batch.batch_id)
                dropped.append(batch.batch_id)
                continue
            final = head - block >= self._confirmations
            if final or block != batch.block_number:
                self._store.update_anchor_block(
                    batch.batch_id, block, final_at=utc_now_iso(self._clock) if final else None
                )
        return tuple(dropped)

    def _canonical_block(self, batch: BatchRecord) -> int | None:
        """The number of the canonical block that anchored `batch`, or None when the chain no
        longer holds the batch's root under its id from a canonical block."""
        if self._chain_last_batch_id() < batch.batch_id:
            return None
        chain_root = bytes(self._chain.call(self._ledger.functions.batchRoot(batch.batch_id)))
        if chain_root != batch.root:
            return None
        tx_hash = batch.tx_hash or self._anchoring_event_tx(batch.batch_id)[0]
        if tx_hash is None:
            return None
        try:
            receipt = self._chain.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            # Not mined on the canonical chain (any more). The root is there, so some other
            # transaction anchored it; the event names that one.
            tx_hash = self._anchoring_event_tx(batch.batch_id)[0]
            if tx_hash is None or tx_hash == batch.tx_hash:
                return None
            receipt = self._chain.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        if receipt["status"] != 1:
            return None
        number = int(receipt["blockNumber"])
        canonical = self._chain.w3.eth.get_block(number)
        return number if bytes(canonical["hash"]) == bytes(receipt["blockHash"]) else None

    def _reconcile(self, intent: BatchRecord) -> int:
        """Settles one intent with the chain; returns how many readings were released."""
        chain_last = self._chain_last_batch_id()
        if intent.batch_id <= chain_last:
            chain_root = bytes(self._chain.call(self._ledger.functions.batchRoot(intent.batch_id)))
            if chain_root == intent.root:
                self._mark_from_event(intent.batch_id)
                return 0
            released = self._store.mark_foreign(intent.batch_id, chain_root)
            log.warning(
                "batch %d on chain has another root; %d readings released to a later batch",
                intent.batch_id,
                released,
            )
            return released
        if intent.batch_id == chain_last + 1:
            self._send(intent)
            return 0
        raise AnchorStuck(
            f"batch intent {intent.batch_id} is ahead of the chain's last batch {chain_last}: "
            "batches the database holds are missing on chain (was the chain reset?)"
        )

    def _send(self, intent: BatchRecord) -> bool:
        """Sends the intent's anchor transaction and marks it anchored; False if the chain
        refused the id (it is reconciled in the next cycle).

        Raises:
            _LeaseLost: This anchorer no longer holds the lease; nothing was sent.
        """
        if not self._lease.held():
            raise _LeaseLost
        call = self._ledger.functions.anchor(
            intent.batch_id, intent.root, intent.count, intent.from_ts, intent.to_ts
        )
        try:
            receipt = self._chain.transact(call)
        except ContractRevert as error:
            if error.error_name != "ReadingLedgerUnexpectedBatchId":
                raise
            # Someone anchored this id meanwhile (our earlier send, or another anchorer): the
            # next cycle's reconciliation looks at what the chain holds.
            log.info("batch %d: %s; reconciling next cycle", intent.batch_id, error)
            return False
        self._mark_anchored(
            intent.batch_id, bytes(receipt["transactionHash"]), int(receipt["blockNumber"])
        )
        return True

    def _mark_anchored(self, batch_id: int, tx_hash: bytes | None, block: int | None) -> None:
        now = utc_now_iso(self._clock)
        # Without confirmations asked for, the receipt is final; otherwise the re-check of the
        # following cycles makes it final (or finds it dropped).
        final_at = now if self._confirmations == 0 else None
        self._store.mark_anchored(batch_id, tx_hash, block, now, final_at=final_at)

    def _mark_from_event(self, batch_id: int) -> None:
        """Marks an anchored intent with the transaction that the chain's event names."""
        tx_hash, block = self._anchoring_event_tx(batch_id)
        self._mark_anchored(batch_id, tx_hash, block)

    def _anchoring_event_tx(self, batch_id: int) -> tuple[bytes | None, int | None]:
        """The transaction and block of the chain's `ReadingBatchAnchored` event of `batch_id`."""
        logs = self._chain.w3.eth.get_logs(
            {
                "address": self._ledger.address,
                "fromBlock": 0,
                "toBlock": "latest",
                "topics": [
                    "0x" + _BATCH_ANCHORED_TOPIC.hex(),
                    "0x" + batch_id.to_bytes(32, "big").hex(),
                ],
            }
        )
        if not logs:
            return None, None
        return bytes(logs[0]["transactionHash"]), int(logs[0]["blockNumber"])

    def _record_foreign_batches(self, chain_last: int) -> None:
        """Batch ids the chain has and the database never created are recorded as foreign, so
        the database's ids stay the chain's ids."""
        for batch_id in range(self._store.last_batch_id() + 1, chain_last + 1):
            root = bytes(self._chain.call(self._ledger.functions.batchRoot(batch_id)))
            placeholder = BatchRecord(
                batch_id,
                root,
                0,
                0,
                0,
                BatchStatus.FOREIGN,
                None,
                None,
                utc_now_iso(self._clock),
                None,
            )
            self._store.create_batch_intent(placeholder, [])
            log.warning("batch %d on chain was not anchored from this database", batch_id)

    def _chain_last_batch_id(self) -> int:
        return int(self._chain.call(self._ledger.functions.lastBatchId()))

    def status(self) -> dict[str, Any]:
        """State, last error, pending readings and the last anchored batch (for /healthz)."""
        last_anchored = self._store.last_batch_id(status=BatchStatus.ANCHORED)
        return {
            "state": self.state.value,
            "last_error": self.last_error,
            "pending_readings": self._store.count_pending(),
            "unanchored_batches": self._store.count_batches(BatchStatus.INTENT),
            "unfinal_batches": self._store.count_unfinal_batches(),
            "last_anchored_batch": last_anchored or None,
            "confirmations": self._confirmations,
        }


# --- proofs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadingProof:
    """Where a stored reading is anchored and the Merkle proof that shows it.

    `confirmations` is how many blocks are on top of the anchoring block (None when the chain
    did not answer); the proof is final once the anchorer has seen the batch as deep as
    `LEDGER_CONFIRMATIONS` on the canonical chain.
    """

    batch: BatchRecord
    leaf_index: int
    proof: tuple[bytes, ...]
    confirmations: int | None = None

    @property
    def final(self) -> bool:
        return self.batch.final


class ProofService:
    """Builds proofs from the stored leaves of a batch; trees of recent batches are cached.

    `head` gives the chain's latest block number (for `confirmations`); without it, or when it
    fails, confirmations are not shown.
    """

    def __init__(self, store: Store, *, head: Callable[[], int] | None = None) -> None:
        self._store = store
        self._head = head
        self._lock = threading.Lock()
        self._trees: OrderedDict[int, MerkleTree] = OrderedDict()

    def proof(self, reading: StoredReading) -> ReadingProof | None:
        """The reading's final proof, or None while it is pending or its batch is not final
        (what settlement evidence may rely on)."""
        found = self.anchoring(reading)
        return found if found is not None and found.final else None

    def anchoring(self, reading: StoredReading) -> ReadingProof | None:
        """The reading's proof once its batch is mined, final or not yet (see `final`); None
        while it is pending or its batch's transaction has not been seen mined."""
        return self.anchorings([reading])[0]

    def anchorings(self, readings: Sequence[StoredReading]) -> list[ReadingProof | None]:
        """`anchoring` of each reading, reading each batch and the chain's head once: an export
        of a quarter's readings spans a few batches, not one query and chain call a reading."""
        batches: dict[int, BatchRecord | None] = {}
        heads: list[int | None] = []  # the chain's head, asked once when first needed
        proofs: list[ReadingProof | None] = []
        for reading in readings:
            batch = None
            if reading.batch_id is not None and reading.leaf_index is not None:
                if reading.batch_id not in batches:
                    batches[reading.batch_id] = self._store.batch(reading.batch_id)
                batch = batches[reading.batch_id]
            if batch is None or batch.status != BatchStatus.ANCHORED or reading.leaf_index is None:
                proofs.append(None)
                continue
            confirmations = None
            if batch.block_number is not None:
                if not heads:
                    heads.append(self._chain_head())
                head = heads[0]
                confirmations = None if head is None else max(0, head - batch.block_number)
            tree = self._tree(batch)
            proofs.append(
                ReadingProof(
                    batch, reading.leaf_index, tuple(tree.proof(reading.leaf_index)), confirmations
                )
            )
        return proofs

    def _chain_head(self) -> int | None:
        if self._head is None:
            return None
        try:
            return self._head()
        except Exception:  # noqa: BLE001 - a proof is still served while the chain is away
            return None

    def _tree(self, batch: BatchRecord) -> MerkleTree:
        with self._lock:
            tree = self._trees.get(batch.batch_id)
            # A batch's readings change only when a reorganisation released them (the id then
            # holds another root): the root check keeps such a tree from being served.
            if tree is not None and tree.root == batch.root:
                self._trees.move_to_end(batch.batch_id)
                return tree
        tree = MerkleTree(self._store.batch_leaves(batch.batch_id))
        if tree.root != batch.root:
            raise StoreError(f"batch {batch.batch_id}: stored leaves do not give its root")
        with self._lock:
            self._trees[batch.batch_id] = tree
            while len(self._trees) > _TREE_CACHE_SIZE:
                self._trees.popitem(last=False)
        return tree
