"""MeterRegistry: rotating a meter's key (rotateKey).

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
    SECP256K1,
    assert_unauthorized,
    ecdsa_key,
    ed25519_key,
    only_event,
    register,
    rotate,
)
from tests.fixtures.chain import latest_time, reverts

# rotateKey


def test_rotate_appends_a_key_epoch_and_keeps_the_first(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice, algorithm=P256, key=ecdsa_key(1), valid_from=1_000)
    valid_from = latest_time(chain) + FUTURE

    rotate(chain, registry, valid_from, algorithm=ED25519, key=ed25519_key(2))

    assert chain.call(registry.functions.keyEpochCount(METER)) == 2
    assert chain.call(registry.functions.keyEpoch(METER, 0)) == (P256, 1_000, 0, ecdsa_key(1))
    assert chain.call(registry.functions.keyEpoch(METER, 1)) == (
        ED25519,
        valid_from,
        0,
        ed25519_key(2),
    )


def test_rotate_emits_meter_key_rotated(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice)
    valid_from = latest_time(chain) + FUTURE

    receipt = rotate(chain, registry, valid_from, algorithm=SECP256K1, key=ecdsa_key(9))

    event = only_event(registry.events.MeterKeyRotated(), receipt)
    assert event["meterId"] == METER
    assert event["epoch"] == 1
    assert event["algorithm"] == SECP256K1
    assert event["publicKey"] == ecdsa_key(9)
    assert event["validFrom"] == valid_from


def test_rotate_returns_the_new_epoch_index(
    chain: Chain, registry: Contract, operator: LocalAccount, alice: LocalAccount
) -> None:
    register(chain, registry, alice)
    first = latest_time(chain) + FUTURE
    rotate(chain, registry, first)

    returned = registry.functions.rotateKey(METER, P256, ecdsa_key(4), first + 1).call(
        {"from": operator.address}
    )

    assert returned == 2


def test_rotate_reverts_if_meter_unknown(chain: Chain, registry: Contract) -> None:
    with reverts("MeterRegistryUnknownMeter") as caught:
        rotate(chain, registry, latest_time(chain) + FUTURE, meter=OTHER_METER)
    assert caught.value.args_decoded == (OTHER_METER,)


def test_rotate_reverts_if_valid_from_in_past(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice, valid_from=1_000)
    past = latest_time(chain) - 60

    with reverts("MeterRegistryValidFromInPast") as caught:
        rotate(chain, registry, past)
    meter, valid_from, current_time = caught.value.args_decoded
    assert (meter, valid_from) == (METER, past)
    assert current_time >= past + 60
    assert chain.call(registry.functions.keyEpochCount(METER)) == 1


@pytest.mark.parametrize("offset", [0, -1])
def test_rotate_reverts_if_valid_from_not_after_previous(
    chain: Chain, registry: Contract, alice: LocalAccount, offset: int
) -> None:
    previous = latest_time(chain) + FUTURE
    register(chain, registry, alice, valid_from=previous)

    with reverts("MeterRegistryKeyNotAfterPrevious") as caught:
        rotate(chain, registry, previous + offset)
    assert caught.value.args_decoded == (METER, previous + offset, previous)


@pytest.mark.parametrize(
    ("algorithm", "key"),
    [
        (P256, b"\x04" + bytes(63)),
        (SECP256K1, b"\x02" + ecdsa_key(0)[1:]),
        (ED25519, ecdsa_key(0)),
    ],
)
def test_rotate_reverts_if_public_key_invalid(
    chain: Chain, registry: Contract, alice: LocalAccount, algorithm: int, key: bytes
) -> None:
    register(chain, registry, alice)

    with reverts("MeterRegistryInvalidPublicKey") as caught:
        rotate(chain, registry, latest_time(chain) + FUTURE, algorithm=algorithm, key=key)
    assert caught.value.args_decoded == (algorithm, len(key))


def test_rotate_reverts_if_algorithm_unsupported(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice)

    with reverts("MeterRegistryUnsupportedAlgorithm") as caught:
        rotate(chain, registry, latest_time(chain) + FUTURE, algorithm=3, key=ecdsa_key(0))
    assert caught.value.args_decoded == (3,)


def test_rotate_reverts_if_caller_lacks_registrar_role(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice)

    # The meter's owner is not a registrar either.
    with reverts("AccessControlUnauthorizedAccount") as caught:
        rotate(chain, registry, latest_time(chain) + FUTURE, sender=alice)
    assert_unauthorized(caught, alice)
