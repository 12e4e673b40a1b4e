"""BillRegistry: assigning a published tariff to a customer (assignTariff).

Every test runs against a fresh deployment on the session's Ganache (helpers.py).
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from ledger.chain.client import Chain
from tests.contracts.bill_registry.helpers import (
    OTHER_TARIFF,
    TARIFF,
    TARIFF_ROLE,
    ZERO_ADDRESS,
    assert_unauthorized,
    assign,
    only_event,
    published_ahead,
    revert_args,
)
from tests.fixtures.chain import latest_time, reverts


def test_assign_appends_the_customers_first_assignment(
    chain: Chain, bills: Contract, alice: LocalAccount
) -> None:
    valid_from = published_ahead(chain, bills)

    assign(chain, bills, alice.address, valid_from)

    assert chain.call(bills.functions.assignmentCount(alice.address)) == 1
    assert tuple(chain.call(bills.functions.assignment(alice.address, 0))) == (TARIFF, valid_from)


def test_assign_emits_tariff_assigned(chain: Chain, bills: Contract, alice: LocalAccount) -> None:
    valid_from = published_ahead(chain, bills)

    receipt = assign(chain, bills, alice.address, valid_from + 5)

    event = only_event(bills.events.TariffAssigned(), receipt)
    assert (event["customer"], event["tariffHash"], event["validFrom"]) == (
        alice.address,
        TARIFF,
        valid_from + 5,
    )


def test_a_later_assignment_is_appended_after_the_first(
    chain: Chain, bills: Contract, alice: LocalAccount
) -> None:
    valid_from = published_ahead(chain, bills)
    published_ahead(chain, bills, tariff=OTHER_TARIFF)
    assign(chain, bills, alice.address, valid_from)

    assign(chain, bills, alice.address, valid_from + 86_400, tariff=OTHER_TARIFF)

    assert chain.call(bills.functions.assignmentCount(alice.address)) == 2
    assert tuple(chain.call(bills.functions.assignment(alice.address, 0))) == (TARIFF, valid_from)
    assert tuple(chain.call(bills.functions.assignment(alice.address, 1))) == (
        OTHER_TARIFF,
        valid_from + 86_400,
    )


def test_assignments_of_one_customer_do_not_order_anothers(
    chain: Chain, bills: Contract, alice: LocalAccount, bob: LocalAccount
) -> None:
    valid_from = published_ahead(chain, bills)
    assign(chain, bills, alice.address, valid_from + 1_000)

    assign(chain, bills, bob.address, valid_from)

    assert tuple(chain.call(bills.functions.assignment(bob.address, 0))) == (TARIFF, valid_from)


def test_assign_reverts_for_the_zero_customer(chain: Chain, bills: Contract) -> None:
    valid_from = published_ahead(chain, bills)

    with reverts("BillRegistryZeroCustomer") as caught:
        assign(chain, bills, ZERO_ADDRESS, valid_from)

    assert caught.value.args_decoded == (TARIFF,)


def test_assign_reverts_for_a_tariff_not_published(
    chain: Chain, bills: Contract, alice: LocalAccount
) -> None:
    with reverts("BillRegistryUnknownTariff") as caught:
        assign(chain, bills, alice.address, latest_time(chain) + 100)

    assert caught.value.args_decoded == (TARIFF,)


def test_assign_reverts_if_valid_from_is_in_the_past(
    chain: Chain, bills: Contract, alice: LocalAccount
) -> None:
    published_ahead(chain, bills)
    now = latest_time(chain)

    with reverts("BillRegistryValidFromInPast") as caught:
        assign(chain, bills, alice.address, now - 1)

    tariff_hash, valid_from, current_time = caught.value.args_decoded
    assert (tariff_hash, valid_from) == (TARIFF, now - 1)
    assert current_time >= now


def test_assign_reverts_if_it_starts_before_the_tariff(
    chain: Chain, bills: Contract, alice: LocalAccount
) -> None:
    tariff_valid_from = published_ahead(chain, bills)

    with reverts("BillRegistryAssignmentBeforeTariff") as caught:
        assign(chain, bills, alice.address, tariff_valid_from - 1)

    assert revert_args(caught) == (
        alice.address,
        TARIFF,
        tariff_valid_from - 1,
        tariff_valid_from,
    )


def test_assign_reverts_if_it_starts_with_the_previous_assignment(
    chain: Chain, bills: Contract, alice: LocalAccount
) -> None:
    valid_from = published_ahead(chain, bills)
    published_ahead(chain, bills, tariff=OTHER_TARIFF)
    assign(chain, bills, alice.address, valid_from + 10)

    with reverts("BillRegistryAssignmentNotAfterPrevious") as caught:
        assign(chain, bills, alice.address, valid_from + 10, tariff=OTHER_TARIFF)

    assert revert_args(caught) == (alice.address, valid_from + 10, valid_from + 10)


def test_assign_reverts_if_it_starts_before_the_previous_assignment(
    chain: Chain, bills: Contract, alice: LocalAccount
) -> None:
    valid_from = published_ahead(chain, bills)
    assign(chain, bills, alice.address, valid_from + 10)

    with reverts("BillRegistryAssignmentNotAfterPrevious") as caught:
        assign(chain, bills, alice.address, valid_from + 9)

    assert revert_args(caught) == (alice.address, valid_from + 9, valid_from + 10)


def test_assign_without_the_tariff_role_reverts(
    chain: Chain, bills: Contract, alice: LocalAccount, stranger: LocalAccount
) -> None:
    valid_from = published_ahead(chain, bills)

    with reverts("AccessControlUnauthorizedAccount") as caught:
        assign(chain, bills, alice.address, valid_from, sender=stranger)

    assert_unauthorized(caught, stranger, TARIFF_ROLE)
