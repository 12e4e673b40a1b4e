"""BillRegistry: anchoring the root of a bill-issuing run (anchorBills).

Every test runs against a fresh deployment on the session's Ganache (helpers.py); the runs name
reading batches 1 and 2, anchored in the ReadingLedger first.
"""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3.contract import Contract

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from tests.contracts.bill_registry.helpers import (
    BILLS,
    FUTURE,
    OPERATOR_ROLE,
    PERIOD_END,
    PERIOD_START,
    ROOT,
    TARIFF_ROLE,
    ZERO_HASH,
    anchor,
    anchor_reading_batches,
    assert_unauthorized,
    block_time,
    only_event,
)
from tests.fixtures.chain import latest_time, reverts


@pytest.fixture(autouse=True)
def reading_batches(chain: Chain, deployment: Deployment) -> None:
    anchor_reading_batches(chain, deployment, 2)


def test_anchor_records_the_run(chain: Chain, bills: Contract) -> None:
    receipt = anchor(chain, bills)

    assert chain.call(bills.functions.run(1)) == (
        ROOT,
        BILLS,
        PERIOD_START,
        PERIOD_END,
        1,
        2,
        block_time(chain, receipt),
    )


def test_anchor_counts_the_run(chain: Chain, bills: Contract) -> None:
    anchor(chain, bills)

    assert chain.call(bills.functions.runCount()) == 1


def test_anchor_emits_bills_anchored(chain: Chain, bills: Contract) -> None:
    receipt = anchor(chain, bills)

    event = only_event(bills.events.BillsAnchored(), receipt)
    assert dict(event) == {
        "runId": 1,
        "root": ROOT,
        "billCount": BILLS,
        "periodStart": PERIOD_START,
        "periodEnd": PERIOD_END,
        "firstReadingBatch": 1,
        "lastReadingBatch": 2,
    }


def test_the_second_run_is_run_2_and_keeps_the_first(chain: Chain, bills: Contract) -> None:
    anchor(chain, bills)
    second_root = keccak(text="bills of run 2")

    anchor(chain, bills, run_id=2, root=second_root, bill_count=3, first_batch=2, last_batch=2)

    assert chain.call(bills.functions.runCount()) == 2
    assert chain.call(bills.functions.run(1))[0] == ROOT
    assert chain.call(bills.functions.run(2))[:2] == (second_root, 3)


def test_the_widest_values_fit_the_packed_run(chain: Chain, bills: Contract) -> None:
    now = latest_time(chain)

    anchor(chain, bills, bill_count=2**32 - 1, period_start=0, period_end=now)

    assert chain.call(bills.functions.run(1))[1:4] == (2**32 - 1, 0, now)


def test_anchor_reverts_for_a_run_id_that_skips_one(chain: Chain, bills: Contract) -> None:
    with reverts("BillRegistryUnexpectedRunId") as caught:
        anchor(chain, bills, run_id=2)

    assert caught.value.args_decoded == (2, 1)


def test_anchor_reverts_for_run_id_0(chain: Chain, bills: Contract) -> None:
    with reverts("BillRegistryUnexpectedRunId") as caught:
        anchor(chain, bills, run_id=0)

    assert caught.value.args_decoded == (0, 1)


def test_a_resent_anchor_reverts_instead_of_anchoring_twice(chain: Chain, bills: Contract) -> None:
    anchor(chain, bills)

    with reverts("BillRegistryUnexpectedRunId") as caught:
        anchor(chain, bills)

    assert caught.value.args_decoded == (1, 2)


def test_anchor_reverts_for_a_zero_root(chain: Chain, bills: Contract) -> None:
    with reverts("BillRegistryZeroRoot") as caught:
        anchor(chain, bills, root=ZERO_HASH)

    assert caught.value.args_decoded == (1,)


def test_anchor_reverts_for_a_run_without_bills(chain: Chain, bills: Contract) -> None:
    with reverts("BillRegistryZeroBillCount") as caught:
        anchor(chain, bills, bill_count=0)

    assert caught.value.args_decoded == (1,)


def test_anchor_reverts_for_an_empty_period(chain: Chain, bills: Contract) -> None:
    with reverts("BillRegistryInvalidPeriod") as caught:
        anchor(chain, bills, period_start=PERIOD_END, period_end=PERIOD_END)

    assert caught.value.args_decoded == (1, PERIOD_END, PERIOD_END)


def test_anchor_reverts_for_an_inverted_period(chain: Chain, bills: Contract) -> None:
    with reverts("BillRegistryInvalidPeriod") as caught:
        anchor(chain, bills, period_start=PERIOD_END, period_end=PERIOD_START)

    assert caught.value.args_decoded == (1, PERIOD_END, PERIOD_START)


def test_anchor_reverts_for_a_period_that_is_not_over(chain: Chain, bills: Contract) -> None:
    now = latest_time(chain)

    with reverts("BillRegistryPeriodNotOver") as caught:
        anchor(chain, bills, period_end=now + FUTURE)

    run_id, period_end, current_time = caught.value.args_decoded
    assert (run_id, period_end) == (1, now + FUTURE)
    assert now <= current_time < now + FUTURE


def test_anchor_reverts_for_reading_batch_0(chain: Chain, bills: Contract) -> None:
    with reverts("BillRegistryInvalidReadingBatches") as caught:
        anchor(chain, bills, first_batch=0, last_batch=2)

    assert caught.value.args_decoded == (1, 0, 2)


def test_anchor_reverts_for_an_inverted_reading_batch_range(chain: Chain, bills: Contract) -> None:
    with reverts("BillRegistryInvalidReadingBatches") as caught:
        anchor(chain, bills, first_batch=2, last_batch=1)

    assert caught.value.args_decoded == (1, 2, 1)


def test_anchor_reverts_for_a_reading_batch_not_anchored_yet(chain: Chain, bills: Contract) -> None:
    with reverts("BillRegistryReadingBatchNotAnchored") as caught:
        anchor(chain, bills, first_batch=2, last_batch=3)

    assert caught.value.args_decoded == (1, 3, 2)


def test_anchor_without_the_operator_role_reverts(
    chain: Chain, bills: Contract, stranger: LocalAccount
) -> None:
    with reverts("AccessControlUnauthorizedAccount") as caught:
        anchor(chain, bills, sender=stranger)

    assert_unauthorized(caught, stranger, OPERATOR_ROLE)


def test_the_tariff_role_alone_cannot_anchor(
    chain: Chain, bills: Contract, alice: LocalAccount
) -> None:
    chain.transact(bills.functions.grantRole(TARIFF_ROLE, alice.address))

    with reverts("AccessControlUnauthorizedAccount") as caught:
        anchor(chain, bills, sender=alice)

    assert_unauthorized(caught, alice, OPERATOR_ROLE)


def test_an_account_granted_the_operator_role_may_anchor(
    chain: Chain, bills: Contract, alice: LocalAccount
) -> None:
    chain.transact(bills.functions.grantRole(OPERATOR_ROLE, alice.address))

    anchor(chain, bills, sender=alice)

    assert chain.call(bills.functions.runCount()) == 1
