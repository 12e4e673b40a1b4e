"""Constants and helpers shared by the BillRegistry tests of this package.

Every test runs against a fresh deployment on the session's Ganache; `operator` is the admin and
holds the operator and tariff roles unless a test grants them.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from tests.fixtures.chain import latest_time

OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")
TARIFF_ROLE = keccak(text="TARIFF_ROLE")
ZERO_ADDRESS = "0x" + "00" * 20
ZERO_HASH = bytes(32)
TARIFF = keccak(text="tariff v1")
OTHER_TARIFF = keccak(text="tariff v2")
ROOT = keccak(text="bills of run 1")
# Far enough ahead of the chain's clock that a start there is never "in the past".
FUTURE = 100_000
# A billing period long over: November 2023 (UTC).
PERIOD_START = 1_698_796_800
PERIOD_END = 1_701_388_800
BILLS = 1_000


def publish(
    chain: Chain,
    bills: Contract,
    valid_from: int,
    *,
    tariff: bytes = TARIFF,
    sender: LocalAccount | None = None,
) -> TxReceipt:
    return chain.transact(bills.functions.publishTariff(tariff, valid_from), sender=sender)


def assign(
    chain: Chain,
    bills: Contract,
    customer: str,
    valid_from: int,
    *,
    tariff: bytes = TARIFF,
    sender: LocalAccount | None = None,
) -> TxReceipt:
    call = bills.functions.assignTariff(customer, tariff, valid_from)
    return chain.transact(call, sender=sender)


def published_ahead(chain: Chain, bills: Contract, *, tariff: bytes = TARIFF) -> int:
    """Publishes `tariff` valid from FUTURE seconds ahead of the clock; returns that time."""
    valid_from = latest_time(chain) + FUTURE
    publish(chain, bills, valid_from, tariff=tariff)
    return valid_from


def anchor_reading_batches(chain: Chain, deployment: Deployment, count: int) -> None:
    """Anchors `count` reading batches in the ReadingLedger (ids 1..count)."""
    ledger = deployment.reading_ledger
    first = int(chain.call(ledger.functions.lastBatchId())) + 1
    for batch_id in range(first, first + count):
        root = keccak(batch_id.to_bytes(32, "big"))
        chain.transact(ledger.functions.anchor(batch_id, root, 96, PERIOD_START, PERIOD_END))


def anchor(
    chain: Chain,
    bills: Contract,
    *,
    run_id: int = 1,
    root: bytes = ROOT,
    bill_count: int = BILLS,
    period_start: int = PERIOD_START,
    period_end: int = PERIOD_END,
    first_batch: int = 1,
    last_batch: int = 2,
    sender: LocalAccount | None = None,
) -> TxReceipt:
    call = bills.functions.anchorBills(
        run_id, root, bill_count, period_start, period_end, first_batch, last_batch
    )
    return chain.transact(call, sender=sender)


def block_time(chain: Chain, receipt: TxReceipt) -> int:
    return int(chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])


def only_event(event: Any, receipt: TxReceipt) -> Any:
    logs = event.process_receipt(receipt, errors=DISCARD)
    assert len(logs) == 1
    return logs[0]["args"]


def assert_unauthorized(
    caught: pytest.ExceptionInfo[Any], account: LocalAccount, role: bytes
) -> None:
    who, missing_role = caught.value.args_decoded
    assert to_checksum_address(who) == account.address
    assert missing_role == role


def revert_args(caught: pytest.ExceptionInfo[Any]) -> tuple[Any, ...]:
    """The revert's decoded arguments, addresses in EIP-55 (eth_abi decodes them lowercase)."""
    return tuple(
        to_checksum_address(arg) if isinstance(arg, str) else arg
        for arg in caught.value.args_decoded
    )
