"""SettlementToken: six-decimal minor units, minting by MINTER_ROLE only, and ERC-2612 permits.

Permits are signed here with eth_account's EIP-712 encoder from the token's own `eip712Domain()`,
independently of `ledger.market.service`, so the contract is checked against a second
implementation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from ledger.chain.client import Chain
from ledger.chain.compiler import CONTRACTS_DIR
from ledger.chain.deployment import Deployment, ensure_deployed, record_path
from ledger.errors import DeploymentError
from tests.contracts.solidity import Compiled, compile_sources
from tests.fixtures.chain import latest_time, reverts

MINTER_ROLE = keccak(text="MINTER_ROLE")
DEFAULT_ADMIN_ROLE = bytes(32)
ZERO_ADDRESS = "0x" + "00" * 20
PERMIT_FIELDS = [
    {"name": "owner", "type": "address"},
    {"name": "spender", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


@pytest.fixture
def token(deployment: Deployment) -> Contract:
    return deployment.settlement_token


def only_event(event: Any, receipt: TxReceipt) -> Any:
    logs = event.process_receipt(receipt, errors=DISCARD)
    assert len(logs) == 1
    return logs[0]["args"]


def signed_permit(
    chain: Chain,
    token: Contract,
    signer: LocalAccount,
    owner: str,
    spender: str,
    value: int,
    deadline: int,
    *,
    nonce: int | None = None,
) -> bytes:
    """`signer`'s ERC-2612 permit signature for `owner` (the owner's current nonce by default)."""
    _, name, version, chain_id, verifying, _, _ = chain.call(token.functions.eip712Domain())
    if nonce is None:
        nonce = int(chain.call(token.functions.nonces(owner)))
    typed = {
        "types": {"EIP712Domain": DOMAIN_FIELDS, "Permit": PERMIT_FIELDS},
        "primaryType": "Permit",
        "domain": {
            "name": name,
            "version": version,
            "chainId": chain_id,
            "verifyingContract": verifying,
        },
        "message": {
            "owner": owner,
            "spender": spender,
            "value": value,
            "nonce": nonce,
            "deadline": deadline,
        },
    }
    signed = Account.sign_message(encode_typed_data(full_message=typed), signer.key)
    return bytes(signed.signature)


def permit(
    chain: Chain,
    token: Contract,
    owner: str,
    spender: str,
    value: int,
    deadline: int,
    signature: bytes,
) -> TxReceipt:
    """Relays a permit as the operator (the owner sends nothing)."""
    v, r, s = signature[64], signature[:32], signature[32:64]
    return chain.transact(token.functions.permit(owner, spender, value, deadline, v, r, s))


# metadata and roles


def test_token_counts_in_minor_units_with_six_decimals(chain: Chain, token: Contract) -> None:
    assert chain.call(token.functions.decimals()) == 6
    assert chain.call(token.functions.symbol()) == "ELC"
    assert chain.call(token.functions.name()) == "Energy Ledger Currency"
    assert chain.call(token.functions.totalSupply()) == 0


def test_admin_holds_admin_and_minter_roles(
    chain: Chain, token: Contract, operator: LocalAccount, stranger: LocalAccount
) -> None:
    for role in (DEFAULT_ADMIN_ROLE, MINTER_ROLE):
        assert chain.call(token.functions.hasRole(role, operator.address))
        assert not chain.call(token.functions.hasRole(role, stranger.address))


# mint


def test_minter_mints_to_an_account(chain: Chain, token: Contract, alice: LocalAccount) -> None:
    receipt = chain.transact(token.functions.mint(alice.address, 12_345))

    assert dict(only_event(token.events.Transfer(), receipt)) == {
        "from": ZERO_ADDRESS,
        "to": alice.address,
        "value": 12_345,
    }
    assert chain.call(token.functions.balanceOf(alice.address)) == 12_345
    assert chain.call(token.functions.totalSupply()) == 12_345


@pytest.mark.parametrize("who", ["alice", "stranger"])
def test_mint_reverts_if_caller_lacks_minter_role(
    chain: Chain, token: Contract, who: str, request: pytest.FixtureRequest
) -> None:
    account: LocalAccount = request.getfixturevalue(who)

    with reverts("AccessControlUnauthorizedAccount") as caught:
        chain.transact(token.functions.mint(account.address, 1), sender=account)
    sender, role = caught.value.args_decoded
    assert (to_checksum_address(sender), role) == (account.address, MINTER_ROLE)
    assert chain.call(token.functions.totalSupply()) == 0


def test_granting_minter_role_lets_another_account_mint(
    chain: Chain, token: Contract, auditor: LocalAccount, bob: LocalAccount
) -> None:
    chain.transact(token.functions.grantRole(MINTER_ROLE, auditor.address))

    chain.transact(token.functions.mint(bob.address, 700), sender=auditor)

    assert chain.call(token.functions.balanceOf(bob.address)) == 700


# permit (ERC-2612)


def test_permit_sets_the_allowance_from_the_owners_signature(
    chain: Chain, token: Contract, alice: LocalAccount, bob: LocalAccount
) -> None:
    deadline = latest_time(chain) + 3_600
    signature = signed_permit(chain, token, alice, alice.address, bob.address, 2_500, deadline)

    receipt = permit(chain, token, alice.address, bob.address, 2_500, deadline, signature)

    assert dict(only_event(token.events.Approval(), receipt)) == {
        "owner": alice.address,
        "spender": bob.address,
        "value": 2_500,
    }
    assert chain.call(token.functions.allowance(alice.address, bob.address)) == 2_500
    assert chain.call(token.functions.nonces(alice.address)) == 1


def test_permit_lets_the_spender_move_the_owners_units(
    chain: Chain, token: Contract, alice: LocalAccount, bob: LocalAccount, auditor: LocalAccount
) -> None:
    chain.transact(token.functions.mint(alice.address, 1_000))
    deadline = latest_time(chain) + 3_600
    signature = signed_permit(chain, token, alice, alice.address, bob.address, 600, deadline)
    permit(chain, token, alice.address, bob.address, 600, deadline, signature)

    chain.transact(token.functions.transferFrom(alice.address, auditor.address, 600), sender=bob)

    assert chain.call(token.functions.balanceOf(alice.address)) == 400
    assert chain.call(token.functions.balanceOf(auditor.address)) == 600
    assert chain.call(token.functions.allowance(alice.address, bob.address)) == 0


def test_permit_reverts_if_the_signature_is_replayed(
    chain: Chain, token: Contract, alice: LocalAccount, bob: LocalAccount
) -> None:
    deadline = latest_time(chain) + 3_600
    signature = signed_permit(chain, token, alice, alice.address, bob.address, 2_500, deadline)
    permit(chain, token, alice.address, bob.address, 2_500, deadline, signature)
    chain.transact(token.functions.approve(bob.address, 0), sender=alice)

    # The nonce in the signed message is used up, so the same bytes recover some other address.
    with reverts("ERC2612InvalidSigner") as caught:
        permit(chain, token, alice.address, bob.address, 2_500, deadline, signature)
    recovered, owner = caught.value.args_decoded
    assert to_checksum_address(owner) == alice.address
    assert to_checksum_address(recovered) != alice.address
    assert chain.call(token.functions.allowance(alice.address, bob.address)) == 0
    assert chain.call(token.functions.nonces(alice.address)) == 1


def test_permit_reverts_if_signed_by_another_account(
    chain: Chain, token: Contract, alice: LocalAccount, bob: LocalAccount
) -> None:
    deadline = latest_time(chain) + 3_600
    signature = signed_permit(chain, token, bob, alice.address, bob.address, 2_500, deadline)

    with reverts("ERC2612InvalidSigner") as caught:
        permit(chain, token, alice.address, bob.address, 2_500, deadline, signature)
    recovered, owner = caught.value.args_decoded
    assert (to_checksum_address(recovered), to_checksum_address(owner)) == (
        bob.address,
        alice.address,
    )


def test_permit_reverts_if_the_value_differs_from_the_signed_one(
    chain: Chain, token: Contract, alice: LocalAccount, bob: LocalAccount
) -> None:
    deadline = latest_time(chain) + 3_600
    signature = signed_permit(chain, token, alice, alice.address, bob.address, 2_500, deadline)

    with reverts("ERC2612InvalidSigner"):
        permit(chain, token, alice.address, bob.address, 2_501, deadline, signature)
    assert chain.call(token.functions.nonces(alice.address)) == 0


def test_permit_reverts_if_the_deadline_has_passed(
    chain: Chain, token: Contract, alice: LocalAccount, bob: LocalAccount
) -> None:
    deadline = latest_time(chain) - 1
    signature = signed_permit(chain, token, alice, alice.address, bob.address, 2_500, deadline)

    with reverts("ERC2612ExpiredSignature") as caught:
        permit(chain, token, alice.address, bob.address, 2_500, deadline, signature)
    assert caught.value.args_decoded == (deadline,)
    assert chain.call(token.functions.allowance(alice.address, bob.address)) == 0


# deployments from before six decimals


def two_decimal_token_artifact() -> Compiled:
    """(abi, bytecode) of SettlementToken as it was with two decimals (one unit = one cent)."""
    source = (CONTRACTS_DIR / "SettlementToken.sol").read_text()
    six = "        return 6;\n"
    assert source.count(six) == 1, "the decimals line moved"
    # Compiled from memory under the test-only tree, like the market's mutants.
    path = "contracts/test/old/SettlementToken.sol"
    compiled = compile_sources(
        {path: source.replace(six, "        return 2;\n")}, {path: "SettlementToken"}
    )
    return compiled[path]


def test_a_recorded_two_decimal_token_is_refused_rather_than_used_with_the_new_market(
    chain: Chain, deployment: Deployment, tmp_path: Path
) -> None:
    # A data directory from before six decimals: its record names a token whose code is the old
    # build's. Re-using it would settle micro-unit prices in cents, a hundred times too dear.
    abi, bytecode = two_decimal_token_artifact()
    factory = chain.w3.eth.contract(abi=abi, bytecode=bytecode)
    receipt = chain.transact(factory.constructor(chain.operator.address))
    record = record_path(tmp_path, chain.chain_id)
    stored = json.loads(record.read_text())
    stored["contracts"]["SettlementToken"] = receipt["contractAddress"]
    record.write_text(json.dumps(stored))

    with pytest.raises(DeploymentError, match="different code than this build"):
        ensure_deployed(chain, tmp_path)
