"""ComplaintRegistry: every step's time is the block's. No function takes a time, so whatever a
client (the gateway included) believes the time to be, the chain's clock is what is recorded."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from ledger.chain.client import Chain
from tests.contracts.complaint_registry.helpers import (
    block_time,
    only_event,
    open_complaint,
    step,
    stored,
)
from tests.fixtures.chain import advance_time

STATE_CHANGING = {"open", "openBySig", "respond", "assign", "plan", "resolve", "rate"}
TIME_WORDS = ("time", "at", "when", "timestamp")


def test_no_step_function_takes_a_time_argument(complaints: Contract) -> None:
    functions = [
        item
        for item in complaints.abi
        if item["type"] == "function" and item.get("stateMutability") == "nonpayable"
    ]
    names = {item["name"] for item in functions}
    assert STATE_CHANGING <= names
    inputs = [
        (item["name"], arg["name"])
        for item in functions
        if item["name"] not in {"grantRole", "revokeRole", "renounceRole"}
        for arg in item["inputs"]
    ]
    assert [i for i in inputs if i[1].lower().endswith(TIME_WORDS)] == []


def test_a_response_a_day_late_is_recorded_a_day_late(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    opened = block_time(chain, open_complaint(chain, complaints, alice))
    advance_time(chain, 86_400)

    receipt = step(chain, complaints, "respond")

    event = only_event(complaints.events.ComplaintResponded(), receipt)
    assert event["at"] == block_time(chain, receipt) == stored(chain, complaints)["respondedAt"]
    assert event["at"] - opened >= 86_400
