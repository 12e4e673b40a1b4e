"""BillRegistry: the views of tariffs, assignments and runs (tariff, assignmentCount,
assignment, tariffAt, runCount, run, readingLedger).

Every test runs against a fresh deployment on the session's Ganache (helpers.py).
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3.contract import Contract

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from tests.contracts.bill_registry.helpers import (
    OTHER_TARIFF,
    TARIFF,
    ZERO_HASH,
    anchor,
    anchor_reading_batches,
    assign,
    published_ahead,
    revert_args,
)
from tests.fixtures.chain import reverts


def test_an_unknown_tariff_reads_as_zeros(chain: Chain, bills: Contract) -> None:
    assert tuple(chain.call(bills.functions.tariff(TARIFF))) == (0, 0)


def test_the_registry_names_the_deployments_reading_ledger(
    chain: Chain, bills: Contract, deployment: Deployment
) -> None:
    assert chain.call(bills.functions.readingLedger()) == deployment.reading_ledger.address


def test_a_customer_without_assignments_has_none(
    chain: Chain, bills: Contract, alice: LocalAccount
) -> None:
    assert chain.call(bills.functions.assignmentCount(alice.address)) == 0


def test_assignment_past_the_last_reverts(
    chain: Chain, bills: Contract, alice: LocalAccount
) -> None:
    valid_from = published_ahead(chain, bills)
    assign(chain, bills, alice.address, valid_from)

    with reverts("BillRegistryUnknownAssignment") as caught:
        chain.call(bills.functions.assignment(alice.address, 1))

    assert revert_args(caught) == (alice.address, 1)


def test_tariff_at_is_zero_for_a_customer_without_assignments(
    chain: Chain, bills: Contract, alice: LocalAccount
) -> None:
    assert chain.call(bills.functions.tariffAt(alice.address, 2**64 - 1)) == ZERO_HASH


def test_tariff_at_follows_the_assignments_at_before_and_between_their_starts(
    chain: Chain, bills: Contract, alice: LocalAccount
) -> None:
    first = published_ahead(chain, bills)
    published_ahead(chain, bills, tariff=OTHER_TARIFF)
    second = first + 86_400
    assign(chain, bills, alice.address, first)
    assign(chain, bills, alice.address, second, tariff=OTHER_TARIFF)

    def at(time: int) -> bytes:
        return bytes(chain.call(bills.functions.tariffAt(alice.address, time)))

    assert at(0) == ZERO_HASH
    assert at(first - 1) == ZERO_HASH
    assert at(first) == TARIFF
    assert at(first + 43_200) == TARIFF
    assert at(second - 1) == TARIFF
    assert at(second) == OTHER_TARIFF
    assert at(2**64 - 1) == OTHER_TARIFF


def test_tariff_at_finds_each_of_many_assignments(
    chain: Chain, bills: Contract, alice: LocalAccount
) -> None:
    tariffs = [keccak(text=f"tariff {i}") for i in range(7)]
    starts = [published_ahead(chain, bills, tariff=t) + 10 for t in tariffs]
    starts = [starts[-1] + 1_000 * i for i in range(7)]
    for tariff, start in zip(tariffs, starts, strict=True):
        assign(chain, bills, alice.address, start, tariff=tariff)

    def at(time: int) -> bytes:
        return bytes(chain.call(bills.functions.tariffAt(alice.address, time)))

    assert [at(start) for start in starts] == tariffs
    assert [at(start + 999) for start in starts] == tariffs
    assert [at(start - 1) for start in starts] == [ZERO_HASH, *tariffs[:-1]]


def test_tariff_at_is_per_customer(
    chain: Chain, bills: Contract, alice: LocalAccount, bob: LocalAccount
) -> None:
    valid_from = published_ahead(chain, bills)
    assign(chain, bills, alice.address, valid_from)

    assert chain.call(bills.functions.tariffAt(bob.address, valid_from)) == ZERO_HASH


def test_run_count_is_0_before_the_first_run(chain: Chain, bills: Contract) -> None:
    assert chain.call(bills.functions.runCount()) == 0


def test_run_0_is_unknown(chain: Chain, bills: Contract) -> None:
    with reverts("BillRegistryUnknownRun") as caught:
        chain.call(bills.functions.run(0))

    assert caught.value.args_decoded == (0,)


def test_a_run_not_anchored_yet_is_unknown(
    chain: Chain, bills: Contract, deployment: Deployment
) -> None:
    anchor_reading_batches(chain, deployment, 2)
    anchor(chain, bills)

    with reverts("BillRegistryUnknownRun") as caught:
        chain.call(bills.functions.run(2))

    assert caught.value.args_decoded == (2,)
