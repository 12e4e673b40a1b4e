"""MeterRegistry: revoking a meter's key now (revokeKey) or from a past compromise
(revokeKeyCompromisedSince).

Every test runs against a fresh deployment on the session's Ganache (helpers.py).
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from ledger.chain.client import Chain
from tests.contracts.meter_registry.helpers import (
    FUTURE,
    METER,
    OTHER_METER,
    P256,
    assert_unauthorized,
    block_time,
    ecdsa_key,
    epoch_at,
    only_event,
    register,
    revoke,
    revoke_since,
    rotate,
)
from tests.fixtures.chain import advance_time, latest_time, reverts

# revokeKey


def test_revoke_sets_revoked_at_to_block_time(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice, key=ecdsa_key(1), valid_from=1_000)

    receipt = revoke(chain, registry)

    assert chain.call(registry.functions.keyEpoch(METER, 0)) == (
        P256,
        1_000,
        block_time(chain, receipt),
        ecdsa_key(1),
    )


def test_revoke_emits_meter_key_revoked(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice)

    receipt = revoke(chain, registry)

    event = only_event(registry.events.MeterKeyRevoked(), receipt)
    assert event["meterId"] == METER
    assert event["epoch"] == 0
    assert event["revokedAt"] == block_time(chain, receipt)


def test_revoke_revokes_the_current_epoch_and_returns_its_index(
    chain: Chain, registry: Contract, operator: LocalAccount, alice: LocalAccount
) -> None:
    register(chain, registry, alice, valid_from=1_000)
    now = latest_time(chain)
    rotate(chain, registry, now + 10)
    rotate(chain, registry, now + 20)
    advance_time(chain, 60)  # both rotations have started: epoch 2 is the current key

    returned = registry.functions.revokeKey(METER).call({"from": operator.address})
    receipt = revoke(chain, registry)

    assert returned == 2
    assert only_event(registry.events.MeterKeyRevoked(), receipt)["epoch"] == 2
    assert chain.call(registry.functions.keyEpoch(METER, 1))[2] == 0


def test_revoke_reverts_if_key_already_revoked(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice)
    revoke(chain, registry)

    with reverts("MeterRegistryKeyAlreadyRevoked") as caught:
        revoke(chain, registry)
    assert caught.value.args_decoded == (METER, 0)


def test_revoke_reverts_if_meter_unknown(chain: Chain, registry: Contract) -> None:
    with reverts("MeterRegistryUnknownMeter") as caught:
        revoke(chain, registry, meter=OTHER_METER)
    assert caught.value.args_decoded == (OTHER_METER,)


def test_revoke_reverts_if_caller_lacks_registrar_role(
    chain: Chain, registry: Contract, alice: LocalAccount, stranger: LocalAccount
) -> None:
    register(chain, registry, alice)

    with reverts("AccessControlUnauthorizedAccount") as caught:
        revoke(chain, registry, sender=stranger)
    assert_unauthorized(caught, stranger)
    assert chain.call(registry.functions.keyEpoch(METER, 0))[2] == 0


def test_rotate_after_revocation_gives_the_meter_a_valid_key_again(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice, valid_from=1_000)
    revoke(chain, registry)
    valid_from = latest_time(chain) + 10

    rotate(chain, registry, valid_from, key=ecdsa_key(8))

    epoch, key = chain.call(registry.functions.keyAt(METER, valid_from))
    assert (epoch, key) == (1, (P256, valid_from, 0, ecdsa_key(8)))
    advance_time(chain, 60)
    revoked_at = block_time(chain, revoke(chain, registry))  # the new key is revocable in turn
    assert chain.call(registry.functions.keyEpoch(METER, 1))[2] == revoked_at


def test_revoke_with_a_pending_rotation_revokes_the_key_valid_now(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice, valid_from=1_000)
    rotate(chain, registry, latest_time(chain) + FUTURE)

    revoked_at = block_time(chain, revoke(chain, registry))

    with reverts("MeterRegistryNoKeyAt"):
        chain.call(registry.functions.keyAt(METER, revoked_at + 1))


def test_revoke_of_a_first_key_that_has_not_started_yet_succeeds(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    start = 2**64 - 1  # far beyond any block time (year 10000 and later are allowed on chain)
    register(chain, registry, alice, valid_from=start)

    revoked_at = block_time(chain, revoke(chain, registry))

    assert chain.call(registry.functions.keyEpoch(METER, 0))[1:3] == (start, revoked_at)


# revokeKeyCompromisedSince


def test_revoke_compromised_since_sets_revoked_at_to_the_compromise_time(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice, key=ecdsa_key(1), valid_from=1_000)
    compromised = latest_time(chain) - 500

    revoke_since(chain, registry, compromised)

    assert chain.call(registry.functions.keyEpoch(METER, 0)) == (
        P256,
        1_000,
        compromised,
        ecdsa_key(1),
    )


def test_revoke_compromised_since_emits_meter_key_revoked_with_the_compromise_time(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice, valid_from=1_000)

    receipt = revoke_since(chain, registry, 5_000)

    event = only_event(registry.events.MeterKeyRevoked(), receipt)
    assert (event["meterId"], event["epoch"], event["revokedAt"]) == (METER, 0, 5_000)


def test_key_at_reverts_for_a_time_after_the_compromise_but_before_the_revocation(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice, valid_from=1_000)
    revoke_since(chain, registry, 5_000)

    assert epoch_at(chain, registry, 4_999) == 0
    with reverts("MeterRegistryNoKeyAt"):
        chain.call(registry.functions.keyAt(METER, 5_000))


def test_revoke_compromised_since_reverts_if_the_time_is_in_the_future(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice, valid_from=1_000)
    future = latest_time(chain) + FUTURE

    with reverts("MeterRegistryCompromiseInFuture") as caught:
        revoke_since(chain, registry, future)
    assert caught.value.args_decoded[:2] == (METER, future)
    assert chain.call(registry.functions.keyEpoch(METER, 0))[2] == 0


def test_revoke_compromised_since_reverts_if_the_time_is_before_the_key_start(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice, valid_from=1_000)

    with reverts("MeterRegistryCompromiseBeforeKey") as caught:
        revoke_since(chain, registry, 999)
    assert caught.value.args_decoded == (METER, 0, 999, 1_000)


def test_revoke_compromised_since_moves_an_earlier_revocation_back(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice, valid_from=1_000)
    revoke(chain, registry)

    revoke_since(chain, registry, 2_000)

    assert chain.call(registry.functions.keyEpoch(METER, 0))[2] == 2_000


def test_revoke_compromised_since_reverts_if_the_key_is_revoked_earlier_already(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice, valid_from=1_000)
    revoke_since(chain, registry, 2_000)

    with reverts("MeterRegistryKeyAlreadyRevoked") as caught:
        revoke_since(chain, registry, 3_000)
    assert caught.value.args_decoded == (METER, 0)
    assert chain.call(registry.functions.keyEpoch(METER, 0))[2] == 2_000


def test_revoke_compromised_since_reverts_if_caller_lacks_registrar_role(
    chain: Chain, registry: Contract, alice: LocalAccount, stranger: LocalAccount
) -> None:
    register(chain, registry, alice, valid_from=1_000)

    with reverts("AccessControlUnauthorizedAccount") as caught:
        revoke_since(chain, registry, 2_000, sender=stranger)
    assert_unauthorized(caught, stranger)


def test_revoke_compromised_since_reverts_if_meter_unknown(
    chain: Chain, registry: Contract
) -> None:
    with reverts("MeterRegistryUnknownMeter"):
        revoke_since(chain, registry, 2_000, meter=OTHER_METER)
