"""MeterRegistry: registering meters, rotating and revoking their keys, and the key history views.

Every test runs against a fresh deployment on the session's Ganache; `operator` is the admin and
the only registrar unless a test grants the role.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from tests.fixtures.chain import advance_time, latest_time, reverts
from tests.fixtures.ed25519_vectors import NON_CANONICAL_KEYS, SMALL_ORDER_KEYS

P256, ED25519, SECP256K1 = 0, 1, 2
ECDSA_ALGORITHMS = (P256, SECP256K1)
ZERO_ADDRESS = "0x" + "00" * 20
REGISTRAR_ROLE = keccak(text="REGISTRAR_ROLE")
# Far enough ahead of the chain's clock that a rotation to it is never "in the past".
FUTURE = 100_000


def meter_id(serial: str) -> bytes:
    """A bytes32 meter id: the serial, right-padded (as ledger.meters.registry does)."""
    return serial.encode().ljust(32, b"\x00")


def ecdsa_key(tag: int) -> bytes:
    """A 65-byte SEC1 uncompressed point; the registry checks only the encoding, not the curve."""
    return b"\x04" + keccak(bytes([tag, 1])) + keccak(bytes([tag, 2]))


def ed25519_key(tag: int) -> bytes:
    """A 32-byte Ed25519 public key."""
    return keccak(bytes([tag, 3]))


def valid_key(algorithm: int, tag: int = 0) -> bytes:
    return ed25519_key(tag) if algorithm == ED25519 else ecdsa_key(tag)


METER = meter_id("METER-0001")
OTHER_METER = meter_id("METER-0002")


@pytest.fixture
def registry(deployment: Deployment) -> Contract:
    return deployment.meter_registry


def register(
    chain: Chain,
    registry: Contract,
    owner: LocalAccount,
    *,
    meter: bytes = METER,
    algorithm: int = P256,
    key: bytes | None = None,
    valid_from: int = 1_000,
    sender: LocalAccount | None = None,
) -> TxReceipt:
    public_key = valid_key(algorithm) if key is None else key
    call = registry.functions.registerMeter(meter, owner.address, algorithm, public_key, valid_from)
    return chain.transact(call, sender=sender)


def rotate(
    chain: Chain,
    registry: Contract,
    valid_from: int,
    *,
    meter: bytes = METER,
    algorithm: int = P256,
    key: bytes | None = None,
    sender: LocalAccount | None = None,
) -> TxReceipt:
    public_key = valid_key(algorithm, tag=valid_from % 251) if key is None else key
    call = registry.functions.rotateKey(meter, algorithm, public_key, valid_from)
    return chain.transact(call, sender=sender)


def revoke(
    chain: Chain, registry: Contract, *, meter: bytes = METER, sender: LocalAccount | None = None
) -> TxReceipt:
    return chain.transact(registry.functions.revokeKey(meter), sender=sender)


def block_time(chain: Chain, receipt: TxReceipt) -> int:
    return int(chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])


def epoch_at(chain: Chain, registry: Contract, timestamp: int, meter: bytes = METER) -> int:
    epoch, _key = chain.call(registry.functions.keyAt(meter, timestamp))
    return int(epoch)


def only_event(event: Any, receipt: TxReceipt) -> Any:
    logs = event.process_receipt(receipt, errors=DISCARD)
    assert len(logs) == 1
    return logs[0]["args"]


def assert_unauthorized(caught: pytest.ExceptionInfo[Any], account: LocalAccount) -> None:
    who, role = caught.value.args_decoded
    assert to_checksum_address(who) == account.address
    assert role == REGISTRAR_ROLE


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


def revoke_since(
    chain: Chain,
    registry: Contract,
    compromised_since: int,
    *,
    meter: bytes = METER,
    sender: LocalAccount | None = None,
) -> TxReceipt:
    call = registry.functions.revokeKeyCompromisedSince(meter, compromised_since)
    return chain.transact(call, sender=sender)


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
