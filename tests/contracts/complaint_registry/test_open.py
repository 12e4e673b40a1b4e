"""ComplaintRegistry: opening a complaint as the customer (open)."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from ledger.chain.client import Chain
from tests.contracts.complaint_registry.helpers import (
    OPEN,
    OUTAGE,
    SUBJECT,
    TEXT,
    block_time,
    only_event,
    open_complaint,
    stored,
)
from tests.fixtures.chain import reverts


def test_open_records_the_customer_subject_round_one_and_the_block_time(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    receipt = open_complaint(chain, complaints, alice, kind=OUTAGE)

    complaint = stored(chain, complaints)
    assert (complaint["customer"], complaint["kind"], complaint["subjectRef"]) == (
        alice.address,
        OUTAGE,
        SUBJECT,
    )
    assert (complaint["status"], complaint["round"], complaint["roundStartedAt"]) == (
        OPEN,
        1,
        block_time(chain, receipt),
    )


def test_open_emits_complaint_opened_with_the_text_hash_and_the_block_time(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    receipt = open_complaint(chain, complaints, alice)

    event = only_event(complaints.events.ComplaintOpened(), receipt)
    assert (event["complaintId"], event["customer"], event["textHash"], event["at"]) == (
        1,
        alice.address,
        TEXT,
        block_time(chain, receipt),
    )


def test_open_numbers_complaints_from_one_in_order(
    chain: Chain, complaints: Contract, alice: LocalAccount, bob: LocalAccount
) -> None:
    open_complaint(chain, complaints, alice)
    open_complaint(chain, complaints, bob)

    assert chain.call(complaints.functions.complaintCount()) == 2
    assert stored(chain, complaints, 2)["customer"] == bob.address


@pytest.mark.parametrize("kind", [5, 255])
def test_open_reverts_for_a_subject_kind_outside_the_five(
    chain: Chain, complaints: Contract, alice: LocalAccount, kind: int
) -> None:
    with reverts("ComplaintRegistryInvalidSubjectKind") as caught:
        open_complaint(chain, complaints, alice, kind=kind)

    assert caught.value.args_decoded == (kind,)


@pytest.mark.parametrize("complaint_id", [0, 1])
def test_complaint_reverts_for_an_id_never_opened(
    chain: Chain, complaints: Contract, complaint_id: int
) -> None:
    with reverts("ComplaintRegistryUnknownComplaint") as caught:
        chain.call(complaints.functions.complaint(complaint_id))

    assert caught.value.args_decoded == (complaint_id,)
