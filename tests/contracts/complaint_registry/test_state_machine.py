"""ComplaintRegistry against a plain Python model under random sequences of steps.

Any account opens complaints; the operator (or an account without the role) takes the operator's
steps; any account rates (0-6) or reopens; ids run from 0 to one past the last. Each call's
outcome (success, or the custom error's name) must be the model's, and after each step the
stored complaint it touched (customer, status, round, rating) and the count must be the model's.
The order of the contract's checks is part of what is compared: the role before the id, the id
before the party, the party before the status, the status before the rating.

About 20 s (30 derandomized examples of up to 40 steps). Shown once to catch a seeded bug: a
`rate` that skipped the status check (the machine answered `rate: contract
ComplaintRegistryInvalidRating, model ComplaintRegistryStepOutOfOrder`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from web3.contract import Contract

from ledger.chain.client import Chain, LocalChain, connect
from ledger.chain.deployment import ensure_deployed
from ledger.errors import ContractRevert
from ledger.settings import DEV_OPERATOR_KEY
from tests.contracts.complaint_registry.helpers import (
    ANSWER,
    ASSIGNED,
    HANDLER,
    OPEN,
    PLANNED,
    RATED,
    RESOLVED,
    RESPONDED,
    stored,
)
from tests.fixtures.chain import dev_account

pytestmark = [pytest.mark.chain, pytest.mark.slow]

SETTINGS = settings(
    max_examples=30,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# The status each operator step needs, and the one it leads to.
OPERATOR_STEPS = {
    "respond": (OPEN, RESPONDED),
    "assign": (RESPONDED, ASSIGNED),
    "plan": (ASSIGNED, PLANNED),
    "resolve": (PLANNED, RESOLVED),
}
CUSTOMERS = (1, 2, 3)  # dev account indexes


@dataclass
class Model:
    customer: str
    status: int = OPEN
    round: int = 1
    rating: int = 0


@dataclass
class Registry:
    chain: Chain
    complaints: Contract
    snapshot: str

    def reset(self) -> None:
        rpc = self.chain.w3.provider.make_request
        assert rpc("evm_revert", [self.snapshot])["result"] is True  # type: ignore[arg-type]
        self.snapshot = rpc("evm_snapshot", [])["result"]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def registry(anvil: LocalChain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    chain = connect(anvil.rpc_url, DEV_OPERATOR_KEY)
    deployment = ensure_deployed(chain, Path(tmp_path_factory.mktemp("complaint-machine")))
    snapshot = chain.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    yield Registry(chain, deployment.complaint_registry, snapshot)


def run_machine(registry: Registry) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    accounts = {index: dev_account(index) for index in CUSTOMERS}

    class ComplaintMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            registry.reset()
            self.model: dict[int, Model] = {}
            self.touched: int | None = None

        def _send(
            self, name: str, call: object, sender: LocalAccount | None, expected: str
        ) -> None:
            try:
                registry.chain.transact(call, sender=sender)  # type: ignore[arg-type]
                outcome = "ok"
            except ContractRevert as error:
                outcome = error.error_name
            outcomes[f"{name}: {outcome}"] += 1
            assert outcome == expected, f"{name}: contract {outcome}, model {expected}"

        def _pick(self, pick: int) -> int:
            """An id: the furthest along complaints first (small picks are drawn most), then
            the two ids no complaint has (0 and one past the last)."""
            ids = sorted(self.model, key=lambda i: (-self.model[i].status, i))
            candidates = [*ids, 0, len(self.model) + 1]
            return candidates[pick % len(candidates)]

        def _known(self, complaint_id: int) -> Model | None:
            return self.model.get(complaint_id)

        @rule(who=st.sampled_from(CUSTOMERS), kind=st.integers(0, 5))
        def open(self, who: int, kind: int) -> None:
            account = accounts[who]
            expected = "ok" if kind <= 4 else "ComplaintRegistryInvalidSubjectKind"
            call = registry.complaints.functions.open(kind, keccak(text="s"), keccak(text="t"))
            self._send("open", call, account, expected)
            if expected == "ok":
                self.model[len(self.model) + 1] = Model(account.address)
                self.touched = len(self.model)

        @rule(
            step=st.sampled_from(sorted(OPERATOR_STEPS)),
            pick=st.integers(0, 20),
            by_operator=st.booleans(),
        )
        def operator_step(self, step: str, pick: int, by_operator: bool) -> None:
            self._operator(step, self._pick(pick), by_operator)

        def _operator(self, step: str, complaint_id: int, by_operator: bool) -> None:
            found = self._known(complaint_id)
            needs, leads_to = OPERATOR_STEPS[step]
            if not by_operator:
                expected = "AccessControlUnauthorizedAccount"
            elif found is None:
                expected = "ComplaintRegistryUnknownComplaint"
            elif found.status != needs:
                expected = "ComplaintRegistryStepOutOfOrder"
            else:
                expected = "ok"
            functions = registry.complaints.functions
            call = (
                functions.assign(complaint_id, HANDLER, ANSWER)
                if step == "assign"
                else getattr(functions, step)(complaint_id, ANSWER)
            )
            sender = None if by_operator else accounts[CUSTOMERS[0]]
            self._send(step, call, sender, expected)
            if expected == "ok" and found is not None:
                found.status = leads_to
                self.touched = complaint_id

        @rule(pick=st.integers(0, 20))
        def operator_moves_one_on(self, pick: int) -> None:
            """The operator's next step on a complaint owing one: without it, random steps
            seldom get a complaint as far as its resolution."""
            owing = [i for i, m in sorted(self.model.items()) if m.status in (OPEN, RESPONDED,
                     ASSIGNED, PLANNED)]  # fmt: skip
            if not owing:
                return
            complaint_id = owing[pick % len(owing)]
            step = next(name for name, (needs, _) in OPERATOR_STEPS.items()
                        if needs == self.model[complaint_id].status)  # fmt: skip
            self._operator(step, complaint_id, True)

        @rule(pick=st.integers(0, 20))
        def operator_moves_another_on(self, pick: int) -> None:
            """The same rule twice: Hypothesis draws rules evenly, and a complaint needs four
            operator steps to reach the customer's."""
            self.operator_moves_one_on(pick + 1)

        @rule(pick=st.integers(0, 20), rating=st.integers(1, 5), reopens=st.booleans())
        def customer_follows_up(self, pick: int, rating: int, reopens: bool) -> None:
            """A resolved complaint's customer rates or reopens it (random parties seldom do)."""
            answered = [i for i, m in sorted(self.model.items()) if m.status in (RESOLVED, RATED)]
            if not answered:
                return
            complaint_id = answered[pick % len(answered)]
            who = next(
                i for i, a in accounts.items() if a.address == self.model[complaint_id].customer
            )
            if reopens or self.model[complaint_id].status == RATED:
                self._reopen(who, complaint_id)
            else:
                self._rate(who, complaint_id, rating)

        @rule(who=st.sampled_from(CUSTOMERS), pick=st.integers(0, 20), rating=st.integers(0, 6))
        def rate(self, who: int, pick: int, rating: int) -> None:
            self._rate(who, self._pick(pick), rating)

        def _rate(self, who: int, complaint_id: int, rating: int) -> None:
            found = self._known(complaint_id)
            account = accounts[who]
            if found is None:
                expected = "ComplaintRegistryUnknownComplaint"
            elif found.customer != account.address:
                expected = "ComplaintRegistryNotCustomer"
            elif found.status != RESOLVED:
                expected = "ComplaintRegistryStepOutOfOrder"
            elif not 1 <= rating <= 5:
                expected = "ComplaintRegistryInvalidRating"
            else:
                expected = "ok"
            call = registry.complaints.functions.rate(complaint_id, rating)
            self._send("rate", call, account, expected)
            if expected == "ok" and found is not None:
                found.status, found.rating = RATED, rating
                self.touched = complaint_id

        @rule(who=st.sampled_from(CUSTOMERS), pick=st.integers(0, 20))
        def reopen(self, who: int, pick: int) -> None:
            self._reopen(who, self._pick(pick))

        def _reopen(self, who: int, complaint_id: int) -> None:
            found = self._known(complaint_id)
            account = accounts[who]
            if found is None:
                expected = "ComplaintRegistryUnknownComplaint"
            elif found.customer != account.address:
                expected = "ComplaintRegistryNotCustomer"
            elif found.status not in (RESOLVED, RATED):
                expected = "ComplaintRegistryStepOutOfOrder"
            else:
                expected = "ok"
            call = registry.complaints.functions.reopen(complaint_id, ANSWER)
            self._send("reopen", call, account, expected)
            if expected == "ok" and found is not None:
                found.status, found.round = OPEN, found.round + 1
                self.touched = complaint_id

        @invariant()
        def the_touched_complaint_and_the_count_are_the_models(self) -> None:
            count = int(registry.chain.call(registry.complaints.functions.complaintCount()))
            assert count == len(self.model)
            if self.touched is None:
                return
            on_chain = stored(registry.chain, registry.complaints, self.touched)
            model = self.model[self.touched]
            assert (
                on_chain["customer"],
                on_chain["status"],
                on_chain["round"],
                on_chain["rating"],
            ) == (model.customer, model.status, model.round, model.rating)

    run_state_machine_as_test(ComplaintMachine, settings=SETTINGS)
    return outcomes


def test_the_registry_answers_every_random_step_as_the_model_does(registry: Registry) -> None:
    outcomes = run_machine(registry)

    # The runs reached every step's success and every refusal, not just the first few.
    for outcome in (
        "open: ok",
        "open: ComplaintRegistryInvalidSubjectKind",
        "respond: ok",
        "assign: ok",
        "plan: ok",
        "resolve: ok",
        "respond: AccessControlUnauthorizedAccount",
        "plan: ComplaintRegistryUnknownComplaint",
        "rate: ok",
        "rate: ComplaintRegistryNotCustomer",
        "rate: ComplaintRegistryUnknownComplaint",
        "rate: ComplaintRegistryStepOutOfOrder",
        "reopen: ok",
        "reopen: ComplaintRegistryNotCustomer",
        "reopen: ComplaintRegistryStepOutOfOrder",
    ):
        assert outcomes[outcome] > 0, f"no step had the outcome {outcome!r}: {dict(outcomes)}"
    out_of_order = sum(
        outcomes[f"{step}: ComplaintRegistryStepOutOfOrder"] for step in OPERATOR_STEPS
    )
    assert out_of_order > 0, "no operator step came out of order"
