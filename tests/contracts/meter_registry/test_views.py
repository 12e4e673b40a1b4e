"""MeterRegistry: the views of meters and their key history (isRegistered, ownerOf, keyEpochCount,
keyEpoch, keyAt).

Every test runs against a fresh deployment on the session's Ganache (helpers.py).
"""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from ledger.chain.client import Chain
from tests.contracts.meter_registry.helpers import (
    ED25519,
    FUTURE,
    METER,
    OTHER_METER,
    P256,
    block_time,
    ecdsa_key,
    ed25519_key,
    epoch_at,
    register,
    revoke,
    rotate,
)
from tests.fixtures.chain import latest_time, reverts

# Views


def test_is_registered_turns_true_on_registration(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    assert chain.call(registry.functions.isRegistered(METER)) is False

    register(chain, registry, alice)

    assert chain.call(registry.functions.isRegistered(METER)) is True
    assert chain.call(registry.functions.isRegistered(OTHER_METER)) is False


def test_owner_of_reverts_if_meter_unknown(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice)

    with reverts("MeterRegistryUnknownMeter") as caught:
        chain.call(registry.functions.ownerOf(OTHER_METER))
    assert caught.value.args_decoded == (OTHER_METER,)


def test_key_epoch_count_counts_every_epoch(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice)
    counts = [chain.call(registry.functions.keyEpochCount(METER))]
    for step in (1, 2):
        rotate(chain, registry, latest_time(chain) + FUTURE * step)
        counts.append(chain.call(registry.functions.keyEpochCount(METER)))

    assert counts == [1, 2, 3]


def test_key_epoch_count_reverts_if_meter_unknown(chain: Chain, registry: Contract) -> None:
    with reverts("MeterRegistryUnknownMeter") as caught:
        chain.call(registry.functions.keyEpochCount(OTHER_METER))
    assert caught.value.args_decoded == (OTHER_METER,)


def test_key_epoch_reverts_if_epoch_out_of_range(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice)

    with reverts("MeterRegistryUnknownEpoch") as caught:
        chain.call(registry.functions.keyEpoch(METER, 1))
    assert caught.value.args_decoded == (METER, 1)


def test_key_epoch_reverts_if_meter_unknown(chain: Chain, registry: Contract) -> None:
    with reverts("MeterRegistryUnknownMeter") as caught:
        chain.call(registry.functions.keyEpoch(OTHER_METER, 0))
    assert caught.value.args_decoded == (OTHER_METER,)


def test_key_at_reverts_if_meter_unknown(chain: Chain, registry: Contract) -> None:
    with reverts("MeterRegistryUnknownMeter") as caught:
        chain.call(registry.functions.keyAt(OTHER_METER, 5_000))
    assert caught.value.args_decoded == (OTHER_METER,)


def test_key_at_reverts_before_the_first_key(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice, valid_from=1_000)

    with reverts("MeterRegistryNoKeyAt") as caught:
        chain.call(registry.functions.keyAt(METER, 999))
    assert caught.value.args_decoded == (METER, 999)


@pytest.mark.parametrize("timestamp", [1_000, 1_001, 2**64 - 1])
def test_key_at_returns_the_first_key_within_epoch_zero(
    chain: Chain, registry: Contract, alice: LocalAccount, timestamp: int
) -> None:
    register(chain, registry, alice, algorithm=ED25519, key=ed25519_key(1), valid_from=1_000)

    epoch, key = chain.call(registry.functions.keyAt(METER, timestamp))

    assert (epoch, key) == (0, (ED25519, 1_000, 0, ed25519_key(1)))


def test_key_at_returns_the_new_epoch_exactly_at_the_rotation(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice, valid_from=1_000)
    boundary = latest_time(chain) + FUTURE
    rotate(chain, registry, boundary)

    assert epoch_at(chain, registry, boundary - 1) == 0
    assert epoch_at(chain, registry, boundary) == 1


def test_key_at_reverts_from_the_revocation_on(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice, valid_from=1_000)
    revoked_at = block_time(chain, revoke(chain, registry))

    for timestamp in (revoked_at, revoked_at + 1, revoked_at + FUTURE):
        with reverts("MeterRegistryNoKeyAt") as caught:
            chain.call(registry.functions.keyAt(METER, timestamp))
        assert caught.value.args_decoded == (METER, timestamp)


def test_key_at_still_returns_the_revoked_key_before_its_revocation(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice, key=ecdsa_key(1), valid_from=1_000)
    revoked_at = block_time(chain, revoke(chain, registry))

    epoch, key = chain.call(registry.functions.keyAt(METER, revoked_at - 1))

    assert (epoch, key) == (0, (P256, 1_000, revoked_at, ecdsa_key(1)))


def test_key_at_reverts_between_a_revocation_and_the_next_rotation(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice, valid_from=1_000)
    revoked_at = block_time(chain, revoke(chain, registry))
    next_start = latest_time(chain) + FUTURE
    rotate(chain, registry, next_start)

    with reverts("MeterRegistryNoKeyAt"):
        chain.call(registry.functions.keyAt(METER, next_start - 1))
    assert epoch_at(chain, registry, revoked_at - 1) == 0
    assert epoch_at(chain, registry, next_start) == 1


def test_key_at_finds_the_right_epoch_in_a_long_history(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    base = latest_time(chain) + FUTURE
    starts = [base + 1_000 * i for i in range(9)]
    register(chain, registry, alice, valid_from=starts[0])
    for start in starts[1:]:
        rotate(chain, registry, start)
    assert chain.call(registry.functions.keyEpochCount(METER)) == 9

    expected: dict[int, int] = {}
    for epoch, start in enumerate(starts):
        expected |= {start: epoch, start + 1: epoch, start + 999: epoch}
    found = {timestamp: epoch_at(chain, registry, timestamp) for timestamp in expected}

    assert found == expected
    with reverts("MeterRegistryNoKeyAt"):
        chain.call(registry.functions.keyAt(METER, starts[0] - 1))
