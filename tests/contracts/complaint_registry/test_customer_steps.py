"""ComplaintRegistry: the customer's steps after a resolution (rate, reopen)."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.types import TxReceipt

from ledger.chain.client import Chain
from tests.contracts.complaint_registry.helpers import (
    OPEN,
    PLANNED,
    RATED,
    RESOLVED,
    RESPONDED,
    TEXT,
    block_time,
    only_event,
    open_complaint,
    resolved,
    step,
    steps_until,
    stored,
)
from tests.fixtures.chain import reverts


def rate(
    chain: Chain, complaints: Contract, who: LocalAccount, rating: int, complaint_id: int = 1
) -> TxReceipt:
    return chain.transact(complaints.functions.rate(complaint_id, rating), sender=who)


def reopen(
    chain: Chain, complaints: Contract, who: LocalAccount, complaint_id: int = 1
) -> TxReceipt:
    return chain.transact(complaints.functions.reopen(complaint_id, TEXT), sender=who)


@pytest.mark.parametrize("rating", [1, 5])
def test_rate_records_the_rating_of_a_resolved_complaint(
    chain: Chain, complaints: Contract, alice: LocalAccount, rating: int
) -> None:
    resolved(chain, complaints, alice)

    rate(chain, complaints, alice, rating)

    complaint = stored(chain, complaints)
    assert (complaint["status"], complaint["rating"]) == (RATED, rating)


def test_rate_emits_complaint_rated_with_the_block_time(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    resolved(chain, complaints, alice)

    receipt = rate(chain, complaints, alice, 4)

    event = only_event(complaints.events.ComplaintRated(), receipt)
    assert (event["complaintId"], event["round"], event["rating"], event["at"]) == (
        1,
        1,
        4,
        block_time(chain, receipt),
    )


@pytest.mark.parametrize("rating", [0, 6])
def test_rate_reverts_for_a_rating_outside_one_to_five(
    chain: Chain, complaints: Contract, alice: LocalAccount, rating: int
) -> None:
    resolved(chain, complaints, alice)

    with reverts("ComplaintRegistryInvalidRating") as caught:
        rate(chain, complaints, alice, rating)

    assert caught.value.args_decoded == (1, rating)


def test_rate_before_the_resolution_reverts_out_of_order(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    open_complaint(chain, complaints, alice)
    steps_until(chain, complaints, "plan")

    with reverts("ComplaintRegistryStepOutOfOrder") as caught:
        rate(chain, complaints, alice, 3)

    assert caught.value.args_decoded == (1, RATED, PLANNED)


def test_rate_twice_reverts_out_of_order(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    resolved(chain, complaints, alice)
    rate(chain, complaints, alice, 3)

    with reverts("ComplaintRegistryStepOutOfOrder") as caught:
        rate(chain, complaints, alice, 5)

    assert caught.value.args_decoded == (1, RATED, RATED)


def test_rate_by_another_account_reverts_not_customer(
    chain: Chain, complaints: Contract, alice: LocalAccount, bob: LocalAccount
) -> None:
    resolved(chain, complaints, alice)

    with reverts("ComplaintRegistryNotCustomer") as caught:
        rate(chain, complaints, bob, 5)

    assert caught.value.args_decoded[0] == 1
    assert caught.value.args_decoded[1].lower() == bob.address.lower()


def test_rate_of_an_unknown_complaint_reverts(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    with reverts("ComplaintRegistryUnknownComplaint"):
        rate(chain, complaints, alice, 5, complaint_id=7)


def test_reopen_starts_round_two_at_the_block_time_with_clear_step_times(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    resolved(chain, complaints, alice)

    receipt = reopen(chain, complaints, alice)

    complaint = stored(chain, complaints)
    assert (complaint["status"], complaint["round"], complaint["roundStartedAt"]) == (
        OPEN,
        2,
        block_time(chain, receipt),
    )
    assert [complaint[f] for f in ("respondedAt", "assignedAt", "plannedAt", "resolvedAt")] == [
        0,
        0,
        0,
        0,
    ]


def test_reopen_emits_complaint_reopened_with_the_new_round(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    resolved(chain, complaints, alice)

    receipt = reopen(chain, complaints, alice)

    event = only_event(complaints.events.ComplaintReopened(), receipt)
    assert (event["complaintId"], event["round"], event["textHash"], event["at"]) == (
        1,
        2,
        TEXT,
        block_time(chain, receipt),
    )


def test_reopen_after_a_rating_is_allowed(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    resolved(chain, complaints, alice)
    rate(chain, complaints, alice, 1)

    reopen(chain, complaints, alice)

    assert stored(chain, complaints)["status"] == OPEN


def test_the_operator_answers_a_reopened_complaint_in_its_new_round(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    resolved(chain, complaints, alice)
    reopen(chain, complaints, alice)

    receipt = step(chain, complaints, "respond")

    assert stored(chain, complaints)["status"] == RESPONDED
    assert only_event(complaints.events.ComplaintResponded(), receipt)["round"] == 2


def test_reopen_before_the_resolution_reverts_out_of_order(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    open_complaint(chain, complaints, alice)
    steps_until(chain, complaints, "respond")

    with reverts("ComplaintRegistryStepOutOfOrder") as caught:
        reopen(chain, complaints, alice)

    assert caught.value.args_decoded == (1, OPEN, RESPONDED)


def test_reopen_by_another_account_reverts_not_customer(
    chain: Chain, complaints: Contract, alice: LocalAccount, bob: LocalAccount
) -> None:
    resolved(chain, complaints, alice)

    with reverts("ComplaintRegistryNotCustomer"):
        reopen(chain, complaints, bob)

    assert stored(chain, complaints)["status"] == RESOLVED


def test_the_operator_cannot_rate_for_the_customer(
    chain: Chain, complaints: Contract, alice: LocalAccount, operator: LocalAccount
) -> None:
    resolved(chain, complaints, alice)

    with reverts("ComplaintRegistryNotCustomer"):
        rate(chain, complaints, operator, 5)

    assert stored(chain, complaints)["status"] == RESOLVED
