"""MeterRegistry: registering meters (registerMeter) and the keys it accepts.

Every test runs against a fresh deployment on the session's Ganache (helpers.py).
"""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from ledger.chain.client import Chain
from tests.contracts.meter_registry.helpers import (
    ECDSA_ALGORITHMS,
    ED25519,
    FUTURE,
    METER,
    P256,
    REGISTRAR_ROLE,
    SECP256K1,
    ZERO_ADDRESS,
    assert_unauthorized,
    ecdsa_key,
    ed25519_key,
    only_event,
    register,
    rotate,
    valid_key,
)
from tests.fixtures.chain import latest_time, reverts
from tests.fixtures.ed25519_vectors import NON_CANONICAL_KEYS, SMALL_ORDER_KEYS

# registerMeter


def test_register_stores_owner_and_first_key_epoch(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice, algorithm=SECP256K1, key=ecdsa_key(7), valid_from=1_234)

    assert chain.call(registry.functions.ownerOf(METER)) == alice.address
    assert chain.call(registry.functions.keyEpochCount(METER)) == 1
    assert chain.call(registry.functions.keyEpoch(METER, 0)) == (SECP256K1, 1_234, 0, ecdsa_key(7))


def test_register_emits_meter_registered_with_all_fields(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    receipt = register(chain, registry, alice, algorithm=ED25519, key=ed25519_key(5), valid_from=99)

    event = only_event(registry.events.MeterRegistered(), receipt)
    assert event["meterId"] == METER
    assert event["owner"] == alice.address
    assert event["algorithm"] == ED25519
    assert event["publicKey"] == ed25519_key(5)
    assert event["validFrom"] == 99


@pytest.mark.parametrize("algorithm", [P256, ED25519, SECP256K1])
def test_register_accepts_each_supported_algorithm(
    chain: Chain, registry: Contract, alice: LocalAccount, algorithm: int
) -> None:
    register(chain, registry, alice, algorithm=algorithm, key=valid_key(algorithm, tag=3))

    stored_algorithm, _, _, stored_key = chain.call(registry.functions.keyEpoch(METER, 0))
    assert (stored_algorithm, stored_key) == (algorithm, valid_key(algorithm, tag=3))


def test_register_accepts_ed25519_key_whatever_its_first_byte(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    key = b"\x00" + ed25519_key(1)[1:]

    register(chain, registry, alice, algorithm=ED25519, key=key)

    assert chain.call(registry.functions.keyEpoch(METER, 0))[3] == key


def test_register_reverts_if_meter_already_registered(
    chain: Chain, registry: Contract, alice: LocalAccount, bob: LocalAccount
) -> None:
    register(chain, registry, alice)

    with reverts("MeterRegistryMeterAlreadyRegistered") as caught:
        register(chain, registry, bob, algorithm=ED25519)
    assert caught.value.args_decoded == (METER,)
    assert chain.call(registry.functions.ownerOf(METER)) == alice.address


def test_register_reverts_if_owner_is_zero(chain: Chain, registry: Contract) -> None:
    call = registry.functions.registerMeter(METER, ZERO_ADDRESS, P256, ecdsa_key(0), 1_000)

    with reverts("MeterRegistryZeroOwner") as caught:
        chain.transact(call)
    assert caught.value.args_decoded == (METER,)


@pytest.mark.parametrize("algorithm", [3, 4, 255])
def test_register_reverts_if_algorithm_unsupported(
    chain: Chain, registry: Contract, alice: LocalAccount, algorithm: int
) -> None:
    with reverts("MeterRegistryUnsupportedAlgorithm") as caught:
        register(chain, registry, alice, algorithm=algorithm, key=ecdsa_key(0))
    assert caught.value.args_decoded == (algorithm,)


@pytest.mark.parametrize(
    ("algorithm", "length"),
    [
        (P256, 0),
        (P256, 33),
        (P256, 64),
        (P256, 66),
        (ED25519, 0),
        (ED25519, 31),
        (ED25519, 33),
        (ED25519, 65),
        (SECP256K1, 0),
        (SECP256K1, 33),
        (SECP256K1, 64),
        (SECP256K1, 66),
    ],
)
def test_register_reverts_if_public_key_has_wrong_length(
    chain: Chain, registry: Contract, alice: LocalAccount, algorithm: int, length: int
) -> None:
    key = (b"\x04" + bytes(range(1, 100)))[:length]

    with reverts("MeterRegistryInvalidPublicKey") as caught:
        register(chain, registry, alice, algorithm=algorithm, key=key)
    assert caught.value.args_decoded == (algorithm, length)


@pytest.mark.parametrize("algorithm", ECDSA_ALGORITHMS)
@pytest.mark.parametrize("prefix", [b"\x00", b"\x02", b"\x03", b"\x05"])
def test_register_reverts_if_ecdsa_public_key_lacks_0x04_prefix(
    chain: Chain, registry: Contract, alice: LocalAccount, algorithm: int, prefix: bytes
) -> None:
    key = prefix + ecdsa_key(0)[1:]

    with reverts("MeterRegistryInvalidPublicKey") as caught:
        register(chain, registry, alice, algorithm=algorithm, key=key)
    assert caught.value.args_decoded == (algorithm, 65)


@pytest.mark.parametrize(
    "encoded", [h for _, h in SMALL_ORDER_KEYS + NON_CANONICAL_KEYS], ids=lambda h: h[:8] + h[-2:]
)
def test_register_reverts_if_ed25519_key_is_small_order_or_non_canonical(
    chain: Chain, registry: Contract, alice: LocalAccount, encoded: str
) -> None:
    key = bytes.fromhex(encoded)

    with reverts("MeterRegistryWeakPublicKey") as caught:
        register(chain, registry, alice, algorithm=ED25519, key=key)
    assert caught.value.args_decoded == (ED25519, key)
    assert chain.call(registry.functions.isRegistered(METER)) is False


def test_rotate_reverts_if_ed25519_key_is_the_identity(
    chain: Chain, registry: Contract, alice: LocalAccount
) -> None:
    register(chain, registry, alice)
    identity = bytes.fromhex(SMALL_ORDER_KEYS[0][1])

    with reverts("MeterRegistryWeakPublicKey"):
        rotate(chain, registry, latest_time(chain) + FUTURE, algorithm=ED25519, key=identity)


def test_register_reverts_if_caller_lacks_registrar_role(
    chain: Chain, registry: Contract, alice: LocalAccount, stranger: LocalAccount
) -> None:
    with reverts("AccessControlUnauthorizedAccount") as caught:
        register(chain, registry, alice, sender=stranger)
    assert_unauthorized(caught, stranger)
    assert chain.call(registry.functions.isRegistered(METER)) is False


def test_granting_registrar_role_lets_another_account_register(
    chain: Chain, registry: Contract, alice: LocalAccount, auditor: LocalAccount
) -> None:
    chain.transact(registry.functions.grantRole(REGISTRAR_ROLE, auditor.address))

    register(chain, registry, alice, sender=auditor)

    assert chain.call(registry.functions.ownerOf(METER)) == alice.address
