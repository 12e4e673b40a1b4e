"""The BillRegistry client: tariffs on record, customers' tariff assignments, anchored bill runs.

Writes (`publish_tariff`, `assign_tariff`, `anchor_bills`) go through the operator's transaction
sender (`Chain.transact`: one nonce sequence per account across threads, processes and gateways,
see ledger/chain/txsender.py). Each is first run as a call against the pending block, so a write
the contract refuses is never sent: it mines nothing and uses no nonce. A refusal is raised as
`ContractRevert`, whose code is the custom error's name in snake case
(`BillRegistryUnknownTariff` -> `bill_registry_unknown_tariff`) and whose HTTP status follows
from that name (`ledger.errors.revert_status`: 404 for `Unknown...`, 422 for a bad value such as
`...ValidFromInPast` or `...ZeroRoot`, 409 for what the chain's state refuses).

Input that cannot be sent at all (a hash that is not 32 bytes, a number outside its Solidity
type, a customer that is not an address) is refused before any call with
`BillRegistryInputError` (`invalid_bill_registry_input`, 422).

Reads return small frozen dataclasses; hashes are raw 32-byte `bytes`, times Unix seconds. A
bill's Merkle leaf (what `BillRegistry.billLeaf` computes) is `ledger.billing.document.bill_leaf`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from web3.types import TxReceipt

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.errors import LedgerError

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
HASH_LENGTH = 32


class BillRegistryInputError(LedgerError):
    """A BillRegistry argument that cannot be sent (wrong length, out of range, not an address)."""

    code = "invalid_bill_registry_input"
    http_status = 422


@dataclass(frozen=True)
class SentTransaction:
    """A mined write: its transaction hash and block."""

    tx_hash: bytes
    block_number: int


@dataclass(frozen=True)
class TariffRecord:
    """A published tariff version: usable from `valid_from`, published at block time
    `published_at`."""

    tariff_hash: bytes
    valid_from: int
    published_at: int


@dataclass(frozen=True)
class TariffAssignment:
    """One of a customer's assignments: `tariff_hash` is in force from `valid_from` until the
    next assignment's `valid_from`."""

    tariff_hash: bytes
    valid_from: int


@dataclass(frozen=True)
class BillRun:
    """An anchored issuing run: the Merkle root over its bill leaves, the billing period
    `[period_start, period_end)`, the reading batches its bills use and its block time."""

    run_id: int
    root: bytes
    bill_count: int
    period_start: int
    period_end: int
    first_reading_batch: int
    last_reading_batch: int
    anchored_at: int


class BillRegistryClient:
    """Publishes and assigns tariffs, anchors bill runs and reads them back."""

    def __init__(self, chain: Chain, deployment: Deployment) -> None:
        self._chain = chain
        self._registry = deployment.bill_registry

    @property
    def address(self) -> str:
        """The BillRegistry's address (EIP-55)."""
        return str(self._registry.address)

    # --- writes (operator's transaction sender) -----------------------------------------------

    def publish_tariff(self, tariff_hash: bytes, valid_from: int) -> SentTransaction:
        """Publishes a tariff version (the keccak256 of its file's bytes), usable from
        `valid_from` (not before the block's time).

        Raises:
            BillRegistryInputError: a hash that is not 32 bytes, a time that is not a uint64.
            ContractRevert: bill_registry_zero_tariff_hash, bill_registry_tariff_already_published,
                bill_registry_valid_from_in_past, access_control_unauthorized_account.
        """
        call = self._registry.functions.publishTariff(
            _bytes32("tariff_hash", tariff_hash), _uint("valid_from", valid_from, UINT64_MAX)
        )
        return _sent(self._chain.transact(call))

    def assign_tariff(self, customer: str, tariff_hash: bytes, valid_from: int) -> SentTransaction:
        """Puts a published tariff in force for `customer` from `valid_from` on.

        Raises:
            BillRegistryInputError: `customer` is not an address, a bad hash or time.
            ContractRevert: bill_registry_zero_customer, bill_registry_unknown_tariff,
                bill_registry_valid_from_in_past, bill_registry_assignment_before_tariff,
                bill_registry_assignment_not_after_previous, access_control_unauthorized_account.
        """
        call = self._registry.functions.assignTariff(
            self._address(customer),
            _bytes32("tariff_hash", tariff_hash),
            _uint("valid_from", valid_from, UINT64_MAX),
        )
        return _sent(self._chain.transact(call))

    def anchor_bills(
        self,
        *,
        run_id: int,
        root: bytes,
        bill_count: int,
        period_start: int,
        period_end: int,
        first_reading_batch: int,
        last_reading_batch: int,
    ) -> SentTransaction:
        """Anchors the root of issuing run `run_id` (exactly `run_count() + 1`).

        Raises:
            BillRegistryInputError: a root that is not 32 bytes, a number outside its type.
            ContractRevert: bill_registry_unexpected_run_id (the run, or another, was anchored
                meanwhile), bill_registry_zero_root, bill_registry_zero_bill_count,
                bill_registry_invalid_period, bill_registry_period_not_over,
                bill_registry_invalid_reading_batches, bill_registry_reading_batch_not_anchored,
                access_control_unauthorized_account.
        """
        call = self._registry.functions.anchorBills(
            _uint("run_id", run_id, UINT64_MAX),
            _bytes32("root", root),
            _uint("bill_count", bill_count, UINT32_MAX),
            _uint("period_start", period_start, UINT64_MAX),
            _uint("period_end", period_end, UINT64_MAX),
            _uint("first_reading_batch", first_reading_batch, UINT64_MAX),
            _uint("last_reading_batch", last_reading_batch, UINT64_MAX),
        )
        return _sent(self._chain.transact(call))

    # --- views --------------------------------------------------------------------------------

    def tariff(self, tariff_hash: bytes) -> TariffRecord | None:
        """The published tariff with this hash, or None when none is."""
        valid_from, published_at = self._chain.call(
            self._registry.functions.tariff(_bytes32("tariff_hash", tariff_hash))
        )
        if published_at == 0:  # a published tariff's block time is never 0
            return None
        return TariffRecord(bytes(tariff_hash), int(valid_from), int(published_at))

    def assignments(self, customer: str) -> tuple[TariffAssignment, ...]:
        """Every assignment of the customer, ordered by `valid_from` (strictly increasing)."""
        account = self._address(customer)
        functions = self._registry.functions
        count = int(self._chain.call(functions.assignmentCount(account)))
        found = []
        for index in range(count):
            tariff_hash, valid_from = self._chain.call(functions.assignment(account, index))
            found.append(TariffAssignment(bytes(tariff_hash), int(valid_from)))
        return tuple(found)

    def tariff_at(self, customer: str, time: int) -> bytes | None:
        """The hash of the tariff in force for the customer at `time`, or None when none is."""
        found = bytes(
            self._chain.call(
                self._registry.functions.tariffAt(
                    self._address(customer), _uint("time", time, UINT64_MAX)
                )
            )
        )
        return None if found == bytes(HASH_LENGTH) else found

    def run_count(self) -> int:
        """The id of the last anchored run (0 before the first)."""
        return int(self._chain.call(self._registry.functions.runCount()))

    def run(self, run_id: int) -> BillRun:
        """An anchored run.

        Raises:
            ContractRevert: bill_registry_unknown_run (404) when it is not anchored.
        """
        raw: Any = self._chain.call(
            self._registry.functions.run(_uint("run_id", run_id, UINT64_MAX))
        )
        root, bill_count, period_start, period_end, first_batch, last_batch, anchored_at = raw
        return BillRun(
            run_id=run_id,
            root=bytes(root),
            bill_count=int(bill_count),
            period_start=int(period_start),
            period_end=int(period_end),
            first_reading_batch=int(first_batch),
            last_reading_batch=int(last_batch),
            anchored_at=int(anchored_at),
        )

    def verify_bill(self, run_id: int, bill_hash: bytes, proof: Sequence[bytes]) -> bool:
        """Whether the bill with `bill_hash` is in anchored run `run_id`, by the chain.

        Malformed input (a hash or proof element that is not 32 bytes, a run id that is not a
        uint64) is answered False, as `ledger.anchoring.merkle.verify` does: to a verifier a
        malformed proof is one that proves nothing. An unknown run is False too.
        """
        if not 0 <= run_id <= UINT64_MAX or len(bill_hash) != HASH_LENGTH:
            return False
        if any(len(step) != HASH_LENGTH for step in proof):
            return False
        call = self._registry.functions.verifyBill(
            run_id, bytes(bill_hash), [bytes(step) for step in proof]
        )
        return bool(self._chain.call(call))

    def _address(self, customer: str) -> str:
        if not isinstance(customer, str) or not self._chain.w3.is_address(customer):
            raise BillRegistryInputError(f"customer {customer!r} is not an account address")
        return self._chain.w3.to_checksum_address(customer)


def _bytes32(name: str, value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_LENGTH:
        raise BillRegistryInputError(f"{name} must be {HASH_LENGTH} bytes, got {value!r}")
    return bytes(value)


def _uint(name: str, value: int, maximum: int) -> int:
    # bool is an int in Python: True would be sent as 1.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise BillRegistryInputError(f"{name} {value!r} is not an integer in 0..{maximum}")
    return value


def _sent(receipt: TxReceipt) -> SentTransaction:
    return SentTransaction(bytes(receipt["transactionHash"]), int(receipt["blockNumber"]))
