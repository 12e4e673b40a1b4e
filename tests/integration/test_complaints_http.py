"""Complaints over HTTP (api/routes/complaints.py) against a gateway on a real chain (Anvil).

One gateway serves the module; customers sign in (SIWE) and sign each of their steps
(EIP-712), the operator uses its token. The chain's clock is moved (evm_increaseTime) to make
answers late: it is the only clock the complaints know.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from eth_utils.crypto import keccak

from ledger.chain.client import LocalChain, free_port
from ledger.node import LedgerNode
from ledger.settings import DEV_OPERATOR_KEY, Settings
from tests.fixtures.billing import serving
from tests.fixtures.chain import dev_account
from tests.fixtures.sign_in import bearer, sign_in
from tests.integration.complaints_helpers import (
    advance_chain,
    chain_time,
    signed_open,
    signed_rate,
    signed_reopen,
)

CUSTOMER = dev_account(1)
OTHER_CUSTOMER = dev_account(2)
AUDITOR = dev_account(3)
OPERATOR_TOKEN = "operator-token-of-the-complaint-tests"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerNode]:
    data_dir = tmp_path_factory.mktemp("complaints") / "data"
    data_dir.mkdir()
    local = LocalChain(kind="anvil", port=free_port(), log_path=data_dir / "anvil.log")
    local.start()
    try:
        settings = Settings(
            rpc_url=local.rpc_url,
            data_dir=data_dir,
            operator_key=DEV_OPERATOR_KEY,
            operator_token=OPERATOR_TOKEN,
            anchor_enabled=False,
        )
        started = LedgerNode.start(settings)
        registry = started.deployment.meter_registry
        started.chain.transact(
            registry.functions.grantRole(keccak(text="AUDITOR_ROLE"), AUDITOR.address)
        )
        try:
            yield started
        finally:
            started.stop()
    finally:
        local.stop()


@pytest.fixture(scope="module")
def http(node: LedgerNode) -> Iterator[httpx.Client]:
    with serving(node) as base_url, httpx.Client(base_url=base_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def customer(http: httpx.Client) -> dict[str, str]:
    return bearer(sign_in(http, CUSTOMER))


@pytest.fixture(scope="module")
def other_customer(http: httpx.Client) -> dict[str, str]:
    return bearer(sign_in(http, OTHER_CUSTOMER))


@pytest.fixture(scope="module")
def auditor(http: httpx.Client) -> dict[str, str]:
    return bearer(sign_in(http, AUDITOR))


def opened(http: httpx.Client, node: LedgerNode, headers: dict[str, str], **fields: Any) -> Any:
    response = http.post(
        "/v1/complaints", json=signed_open(http, node, CUSTOMER, headers, **fields), headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def step(
    http: httpx.Client, complaint_id: int, name: str, text: str = "We are on it."
) -> httpx.Response:
    body: dict[str, Any] = {"step": name, "text": text}
    if name == "assign":
        body["handler"] = "STAFF-0042"
    return http.post(f"/v1/complaints/{complaint_id}/steps", json=body, headers=OPERATOR)


def by_step(complaint: Any, round_index: int = 0) -> dict[str, Any]:
    return {s["step"]: s for s in complaint["rounds"][round_index]["steps"]}


def test_a_customer_opens_a_signed_complaint_and_reads_it_back_with_its_text(
    http: httpx.Client, node: LedgerNode, customer: dict[str, str]
) -> None:
    created = opened(http, node, customer, text="The meter read 0 all of Tuesday.")

    shown = http.get(f"/v1/complaints/{created['complaint_id']}", headers=customer).json()
    assert (shown["customer"], shown["status"], shown["text"]) == (
        CUSTOMER.address,
        "open",
        "The meter read 0 all of Tuesday.",
    )
    assert shown["text_hash"] == "0x" + keccak(text="The meter read 0 all of Tuesday.").hex()
    assert shown["opened_at"] == created["step_at"]


def test_a_customer_lists_only_its_own_complaints(
    http: httpx.Client,
    node: LedgerNode,
    customer: dict[str, str],
    other_customer: dict[str, str],
) -> None:
    created = opened(http, node, customer)

    own = http.get("/v1/complaints", headers=customer).json()["complaints"]
    theirs = http.get("/v1/complaints", headers=other_customer).json()["complaints"]
    assert created["complaint_id"] in {c["complaint_id"] for c in own}
    assert created["complaint_id"] not in {c["complaint_id"] for c in theirs}


def test_another_customers_complaint_answers_the_404_of_a_missing_one(
    http: httpx.Client,
    node: LedgerNode,
    customer: dict[str, str],
    other_customer: dict[str, str],
) -> None:
    created = opened(http, node, customer)

    theirs = http.get(f"/v1/complaints/{created['complaint_id']}", headers=other_customer)
    missing = http.get("/v1/complaints/999999", headers=other_customer)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["code"] == missing.json()["error"]["code"]
    assert theirs.json()["error"]["code"] == "complaint_not_found"


def test_an_opening_signed_by_another_key_is_refused_and_sends_nothing(
    http: httpx.Client, node: LedgerNode, customer: dict[str, str]
) -> None:
    before = node.complaints.client.complaint_count()
    body = signed_open(http, node, CUSTOMER, customer, signer=OTHER_CUSTOMER)

    response = http.post("/v1/complaints", json=body, headers=customer)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "complaint_invalid_signature"
    assert node.complaints.client.complaint_count() == before


def test_an_opening_signed_for_another_account_than_the_session_is_refused(
    http: httpx.Client, node: LedgerNode, other_customer: dict[str, str]
) -> None:
    body = signed_open(http, node, CUSTOMER, other_customer)

    response = http.post("/v1/complaints", json=body, headers=other_customer)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "complaint_signer_not_signed_in"


def test_each_operator_step_shows_its_time_target_and_whether_it_was_met(
    http: httpx.Client, node: LedgerNode, customer: dict[str, str]
) -> None:
    complaint_id = opened(http, node, customer)["complaint_id"]
    step(http, complaint_id, "respond")
    advance_chain(node, 3 * 3600)  # the assignment comes after its 2-hour target

    assigned = step(http, complaint_id, "assign").json()

    steps = by_step(assigned)
    assert (steps["responded"]["state"], steps["responded"]["met"]) == ("met", True)
    assert (steps["assigned"]["state"], steps["assigned"]["met"]) == ("late", False)
    assert steps["assigned"]["target_s"] == 7200
    assert steps["assigned"]["took_s"] == steps["assigned"]["at"] - assigned["round_started_at"]
    assert assigned["rounds"][0]["handler"] == "STAFF-0042"


def test_a_waiting_step_shows_time_left_and_an_overdue_one_how_late(
    http: httpx.Client, node: LedgerNode, customer: dict[str, str]
) -> None:
    complaint_id = opened(http, node, customer)["complaint_id"]
    advance_chain(node, 3600)

    shown = http.get(f"/v1/complaints/{complaint_id}", headers=customer).json()

    steps = by_step(shown)
    assert steps["responded"]["state"] == "overdue"
    assert steps["responded"]["overdue_s"] == shown["as_of"] - steps["responded"]["due_at"]
    assert steps["assigned"]["state"] == "waiting"
    assert steps["assigned"]["time_left_s"] == steps["assigned"]["due_at"] - shown["as_of"]
    assert shown["time_to_breach_s"] < 0


def test_the_queue_lists_the_soonest_breach_first(
    http: httpx.Client, node: LedgerNode, customer: dict[str, str]
) -> None:
    older = opened(http, node, customer)["complaint_id"]
    advance_chain(node, 600)
    newer = opened(http, node, customer)["complaint_id"]

    queue = http.get("/v1/complaints/queue", headers=OPERATOR).json()["complaints"]

    ids = [c["complaint_id"] for c in queue]
    assert ids.index(older) < ids.index(newer)
    breaches = [c["time_to_breach_s"] for c in queue if c["time_to_breach_s"] is not None]
    assert breaches == sorted(breaches)


def test_a_step_with_a_time_in_its_body_is_refused_and_sends_nothing(
    http: httpx.Client, node: LedgerNode, customer: dict[str, str]
) -> None:
    complaint_id = opened(http, node, customer)["complaint_id"]
    block = node.chain.w3.eth.block_number

    response = http.post(
        f"/v1/complaints/{complaint_id}/steps",
        json={"step": "respond", "text": "Answered in time!", "at": chain_time(node) - 3600},
        headers=OPERATOR,
    )

    assert response.status_code == 422
    assert node.chain.w3.eth.block_number == block


def test_a_steps_time_is_its_blocks_not_the_gateways_clock(
    http: httpx.Client, node: LedgerNode, customer: dict[str, str]
) -> None:
    complaint_id = opened(http, node, customer)["complaint_id"]
    # Two days ahead of every machine clock: a time taken from the gateway would show.
    advance_chain(node, 2 * 86_400)

    answered = step(http, complaint_id, "respond").json()

    block = node.chain.w3.eth.get_block(answered["block_number"])
    assert answered["step_at"] == int(block["timestamp"])
    assert by_step(answered)["responded"]["at"] == int(block["timestamp"])
    assert answered["step_at"] > time.time() + 86_400


def test_a_step_out_of_order_answers_409_with_the_contracts_error(
    http: httpx.Client, node: LedgerNode, customer: dict[str, str]
) -> None:
    complaint_id = opened(http, node, customer)["complaint_id"]

    response = step(http, complaint_id, "plan")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "complaint_registry_step_out_of_order"


def test_a_step_on_an_unknown_complaint_answers_complaint_not_found(http: httpx.Client) -> None:
    response = step(http, 999_999, "respond")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "complaint_not_found"


def test_a_customer_rates_a_resolution_and_reopens_it_into_round_two(
    http: httpx.Client, node: LedgerNode, customer: dict[str, str]
) -> None:
    complaint_id = opened(http, node, customer)["complaint_id"]
    for name in ("respond", "assign", "plan", "resolve"):
        assert step(http, complaint_id, name).status_code == 200
    rated = http.post(
        f"/v1/complaints/{complaint_id}/rate",
        json=signed_rate(http, node, CUSTOMER, customer, complaint_id, 2),
        headers=customer,
    )
    assert rated.status_code == 200, rated.text

    reopened = http.post(
        f"/v1/complaints/{complaint_id}/reopen",
        json=signed_reopen(http, node, CUSTOMER, customer, complaint_id, "Still wrong."),
        headers=customer,
    ).json()

    assert (reopened["status"], reopened["round"]) == ("open", 2)
    assert reopened["rounds"][0]["rating"] == 2
    assert reopened["rounds"][1]["text"] == "Still wrong."


def test_another_customer_cannot_rate_a_complaint_not_theirs(
    http: httpx.Client, node: LedgerNode, customer: dict[str, str], other_customer: dict[str, str]
) -> None:
    complaint_id = opened(http, node, customer)["complaint_id"]
    for name in ("respond", "assign", "plan", "resolve"):
        step(http, complaint_id, name)

    response = http.post(
        f"/v1/complaints/{complaint_id}/rate",
        json=signed_rate(http, node, OTHER_CUSTOMER, other_customer, complaint_id, 1),
        headers=other_customer,
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "complaint_not_found"


def test_an_auditor_reads_every_complaint_with_its_texts(
    http: httpx.Client, node: LedgerNode, customer: dict[str, str], auditor: dict[str, str]
) -> None:
    created = opened(http, node, customer, text="Auditors may read this.")

    shown = http.get(f"/v1/complaints/{created['complaint_id']}", headers=auditor).json()
    listed = http.get("/v1/complaints", headers=auditor).json()["complaints"]

    assert shown["text"] == "Auditors may read this."
    assert created["complaint_id"] in {c["complaint_id"] for c in listed}


def test_an_auditor_may_not_open_a_complaint(
    http: httpx.Client, node: LedgerNode, auditor: dict[str, str]
) -> None:
    response = http.post(
        "/v1/complaints", json=signed_open(http, node, AUDITOR, auditor), headers=auditor
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "customer_required"


@pytest.mark.parametrize("month", ["2026-13", "last month"])
def test_statistics_of_a_month_that_is_not_yyyy_mm_answer_complaint_invalid_month(
    http: httpx.Client, auditor: dict[str, str], month: str
) -> None:
    response = http.get(f"/v1/complaints/statistics?month={month}", headers=auditor)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "complaint_invalid_month"


def test_a_customer_may_not_read_the_statistics(
    http: httpx.Client, customer: dict[str, str]
) -> None:
    response = http.get("/v1/complaints/statistics?month=2026-11", headers=customer)

    assert response.status_code == 403
