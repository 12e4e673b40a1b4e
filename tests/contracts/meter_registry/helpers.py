"""Constants and helpers shared by the MeterRegistry tests of this package.

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
