"""ComplaintRegistry: the operator's steps (respond, assign, plan, resolve), in order only."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3.contract import Contract

from ledger.chain.client import Chain
from tests.contracts.complaint_registry.helpers import (
    ANSWER,
    ASSIGNED,
    HANDLER,
    OPEN,
    OPERATOR_ROLE,
    PLANNED,
    RESOLVED,
    RESPONDED,
    block_time,
    only_event,
    open_complaint,
    step,
    steps_until,
    stored,
)
from tests.fixtures.chain import advance_time, reverts

STEPS = ("respond", "assign", "plan", "resolve")
# The status each step leads to, the time field it writes and the event it emits.
LEADS_TO = {"respond": RESPONDED, "assign": ASSIGNED, "plan": PLANNED, "resolve": RESOLVED}
TIME_FIELD = {
    "respond": "respondedAt",
    "assign": "assignedAt",
    "plan": "plannedAt",
    "resolve": "resolvedAt",
}
EVENT = {
    "respond": "ComplaintResponded",
    "assign": "ComplaintAssigned",
    "plan": "ComplaintPlanned",
    "resolve": "ComplaintResolved",
}
# The status a step needs: the one the step before it leads to.
NEEDS = {"respond": OPEN, "assign": RESPONDED, "plan": ASSIGNED, "resolve": PLANNED}


def take_steps_before(chain: Chain, complaints: Contract, name: str) -> None:
    for earlier in STEPS[: STEPS.index(name)]:
        step(chain, complaints, earlier)


@pytest.mark.parametrize("name", STEPS)
def test_each_step_moves_the_status_and_records_the_block_time(
    chain: Chain, complaints: Contract, alice: LocalAccount, name: str
) -> None:
    open_complaint(chain, complaints, alice)
    take_steps_before(chain, complaints, name)
    advance_time(chain, 600)

    receipt = step(chain, complaints, name)

    complaint = stored(chain, complaints)
    assert complaint["status"] == LEADS_TO[name]
    assert complaint[TIME_FIELD[name]] == block_time(chain, receipt)


@pytest.mark.parametrize("name", STEPS)
def test_each_step_emits_its_event_with_round_text_hash_and_block_time(
    chain: Chain, complaints: Contract, alice: LocalAccount, name: str
) -> None:
    open_complaint(chain, complaints, alice)
    take_steps_before(chain, complaints, name)

    receipt = step(chain, complaints, name)

    event = only_event(getattr(complaints.events, EVENT[name])(), receipt)
    assert (event["complaintId"], event["round"], event["textHash"], event["at"]) == (
        1,
        1,
        ANSWER,
        block_time(chain, receipt),
    )


def test_assign_records_and_emits_the_handler(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    open_complaint(chain, complaints, alice)
    step(chain, complaints, "respond")

    receipt = step(chain, complaints, "assign")

    assert stored(chain, complaints)["handler"] == HANDLER
    assert only_event(complaints.events.ComplaintAssigned(), receipt)["handler"] == HANDLER


def test_assign_reverts_for_the_zero_handler(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    open_complaint(chain, complaints, alice)
    step(chain, complaints, "respond")

    with reverts("ComplaintRegistryZeroHandler") as caught:
        chain.transact(complaints.functions.assign(1, bytes(32), ANSWER))

    assert caught.value.args_decoded == (1,)


@pytest.mark.parametrize("name", ["assign", "plan", "resolve"])
def test_a_step_before_the_one_it_follows_reverts_out_of_order(
    chain: Chain, complaints: Contract, alice: LocalAccount, name: str
) -> None:
    open_complaint(chain, complaints, alice)

    with reverts("ComplaintRegistryStepOutOfOrder") as caught:
        step(chain, complaints, name)

    assert caught.value.args_decoded == (1, LEADS_TO[name], OPEN)


@pytest.mark.parametrize("name", STEPS)
def test_a_step_taken_twice_reverts_out_of_order(
    chain: Chain, complaints: Contract, alice: LocalAccount, name: str
) -> None:
    open_complaint(chain, complaints, alice)
    steps_until(chain, complaints, name)

    with reverts("ComplaintRegistryStepOutOfOrder") as caught:
        step(chain, complaints, name)

    assert caught.value.args_decoded == (1, LEADS_TO[name], LEADS_TO[name])


@pytest.mark.parametrize("name", STEPS)
def test_a_step_by_an_account_without_the_operator_role_reverts(
    chain: Chain, complaints: Contract, alice: LocalAccount, name: str
) -> None:
    open_complaint(chain, complaints, alice)
    take_steps_before(chain, complaints, name)

    with reverts("AccessControlUnauthorizedAccount") as caught:
        step(chain, complaints, name, sender=alice)

    who, role = caught.value.args_decoded
    assert (to_checksum_address(who), role) == (alice.address, OPERATOR_ROLE)


@pytest.mark.parametrize("name", STEPS)
@pytest.mark.parametrize("complaint_id", [0, 2])
def test_a_step_on_an_unknown_complaint_reverts(
    chain: Chain, complaints: Contract, alice: LocalAccount, name: str, complaint_id: int
) -> None:
    open_complaint(chain, complaints, alice)

    with reverts("ComplaintRegistryUnknownComplaint") as caught:
        step(chain, complaints, name, complaint_id)

    assert caught.value.args_decoded == (complaint_id,)


def test_a_granted_operator_may_take_the_steps(
    chain: Chain, complaints: Contract, alice: LocalAccount, bob: LocalAccount
) -> None:
    chain.transact(complaints.functions.grantRole(OPERATOR_ROLE, bob.address))
    open_complaint(chain, complaints, alice)

    step(chain, complaints, "respond", sender=bob)

    assert stored(chain, complaints)["status"] == NEEDS["assign"]
