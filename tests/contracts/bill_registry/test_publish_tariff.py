"""BillRegistry: publishing a tariff version (publishTariff).

Every test runs against a fresh deployment on the session's Ganache (helpers.py).
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from ledger.chain.client import Chain
from tests.contracts.bill_registry.helpers import (
    FUTURE,
    OPERATOR_ROLE,
    OTHER_TARIFF,
    TARIFF,
    TARIFF_ROLE,
    ZERO_HASH,
    assert_unauthorized,
    block_time,
    only_event,
    publish,
)
from tests.fixtures.chain import latest_time, reverts


def test_publish_records_valid_from_and_the_block_time(chain: Chain, bills: Contract) -> None:
    valid_from = latest_time(chain) + FUTURE

    receipt = publish(chain, bills, valid_from)

    assert tuple(chain.call(bills.functions.tariff(TARIFF))) == (
        valid_from,
        block_time(chain, receipt),
    )


def test_publish_emits_tariff_published(chain: Chain, bills: Contract) -> None:
    valid_from = latest_time(chain) + FUTURE

    receipt = publish(chain, bills, valid_from)

    event = only_event(bills.events.TariffPublished(), receipt)
    assert (event["tariffHash"], event["validFrom"]) == (TARIFF, valid_from)


def test_publish_leaves_other_tariffs_unknown(chain: Chain, bills: Contract) -> None:
    publish(chain, bills, latest_time(chain) + FUTURE)

    assert tuple(chain.call(bills.functions.tariff(OTHER_TARIFF))) == (0, 0)


def test_publish_reverts_for_the_zero_hash(chain: Chain, bills: Contract) -> None:
    with reverts("BillRegistryZeroTariffHash"):
        publish(chain, bills, latest_time(chain) + FUTURE, tariff=ZERO_HASH)


def test_publish_reverts_if_the_tariff_is_published_already(chain: Chain, bills: Contract) -> None:
    first_valid_from = latest_time(chain) + FUTURE
    publish(chain, bills, first_valid_from)

    with reverts("BillRegistryTariffAlreadyPublished") as caught:
        publish(chain, bills, first_valid_from + 1)

    assert caught.value.args_decoded == (TARIFF, first_valid_from)


def test_publish_reverts_if_valid_from_is_in_the_past(chain: Chain, bills: Contract) -> None:
    now = latest_time(chain)

    with reverts("BillRegistryValidFromInPast") as caught:
        publish(chain, bills, now - 1)

    tariff_hash, valid_from, current_time = caught.value.args_decoded
    assert (tariff_hash, valid_from) == (TARIFF, now - 1)
    assert current_time >= now


def test_publish_without_the_tariff_role_reverts(
    chain: Chain, bills: Contract, stranger: LocalAccount
) -> None:
    with reverts("AccessControlUnauthorizedAccount") as caught:
        publish(chain, bills, latest_time(chain) + FUTURE, sender=stranger)

    assert_unauthorized(caught, stranger, TARIFF_ROLE)


def test_the_operator_role_alone_cannot_publish(
    chain: Chain, bills: Contract, alice: LocalAccount
) -> None:
    chain.transact(bills.functions.grantRole(OPERATOR_ROLE, alice.address))

    with reverts("AccessControlUnauthorizedAccount") as caught:
        publish(chain, bills, latest_time(chain) + FUTURE, sender=alice)

    assert_unauthorized(caught, alice, TARIFF_ROLE)


def test_an_account_granted_the_tariff_role_may_publish(
    chain: Chain, bills: Contract, alice: LocalAccount
) -> None:
    chain.transact(bills.functions.grantRole(TARIFF_ROLE, alice.address))
    valid_from = latest_time(chain) + FUTURE

    publish(chain, bills, valid_from, sender=alice)

    assert chain.call(bills.functions.tariff(TARIFF))[0] == valid_from
