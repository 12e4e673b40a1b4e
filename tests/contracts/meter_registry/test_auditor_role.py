"""MeterRegistry: AUDITOR_ROLE, which gateways read at sign-in to let an account read every
customer's off-chain data; granted by the admin only, and it writes nothing on chain."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3.contract import Contract

from ledger.chain.client import Chain
from tests.contracts.meter_registry.helpers import register
from tests.fixtures.chain import reverts

AUDITOR_ROLE = keccak(text="AUDITOR_ROLE")


def test_auditor_role_is_the_hash_of_its_name(chain: Chain, registry: Contract) -> None:
    assert chain.call(registry.functions.AUDITOR_ROLE()) == AUDITOR_ROLE


def test_admin_grants_the_auditor_role(
    chain: Chain, registry: Contract, operator: LocalAccount, auditor: LocalAccount
) -> None:
    chain.transact(registry.functions.grantRole(AUDITOR_ROLE, auditor.address), sender=operator)

    assert chain.call(registry.functions.hasRole(AUDITOR_ROLE, auditor.address)) is True


def test_a_non_admin_cannot_grant_the_auditor_role(
    chain: Chain, registry: Contract, stranger: LocalAccount
) -> None:
    with reverts("AccessControlUnauthorizedAccount") as caught:
        chain.transact(
            registry.functions.grantRole(AUDITOR_ROLE, stranger.address), sender=stranger
        )

    who, role = caught.value.args_decoded
    assert (to_checksum_address(who), role) == (stranger.address, b"\x00" * 32)


def test_an_auditor_cannot_register_a_meter(
    chain: Chain, registry: Contract, operator: LocalAccount, auditor: LocalAccount
) -> None:
    chain.transact(registry.functions.grantRole(AUDITOR_ROLE, auditor.address), sender=operator)

    with reverts("AccessControlUnauthorizedAccount"):
        register(chain, registry, auditor, sender=auditor)
