"""Sign-In with Ethereum (api/routes/auth.py) against a gateway on a real chain (Anvil).

One gateway serves the module over real HTTP from this process; the clock is the machine's,
as a wallet's is. Every refusal has its own code and answers no token.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from api.auth import SESSION_SECRET_FILE, issue_session, session_secret, session_token
from ledger.chain.client import LocalChain, free_port
from ledger.node import LedgerNode
from ledger.settings import DEV_OPERATOR_KEY, Settings
from tests.contracts.solidity import compile_test_contract
from tests.fixtures.billing import serving
from tests.fixtures.chain import dev_account
from tests.fixtures.sign_in import (
    DOMAIN,
    URI,
    bearer,
    new_nonce,
    personal_sign,
    sign_in,
    siwe_message,
)

CUSTOMER = dev_account(1)
AUDITOR = dev_account(3)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerNode]:
    data_dir = tmp_path_factory.mktemp("sign-in") / "data"
    data_dir.mkdir()
    local = LocalChain(kind="anvil", port=free_port(), log_path=data_dir / "anvil.log")
    local.start()
    try:
        settings = Settings(
            rpc_url=local.rpc_url,
            data_dir=data_dir,
            operator_key=DEV_OPERATOR_KEY,
            anchor_enabled=False,
        )
        started = LedgerNode.start(settings)
        try:
            yield started
        finally:
            started.stop()
    finally:
        local.stop()


@pytest.fixture(scope="module")
def client(node: LedgerNode) -> Iterator[httpx.Client]:
    with serving(node) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        yield http


def _sign_in_with(client: httpx.Client, message: str, signature: str) -> Any:
    return client.post("/v1/auth/sign-in", json={"message": message, "signature": signature})


def _refusal(response: Any) -> str:
    """The refusal's code, after checking it opened no session."""
    assert response.status_code in (401, 422), response.text
    assert "token" not in response.json()
    code: str = response.json()["error"]["code"]
    return code


def _signed(
    client: httpx.Client, account: LocalAccount = CUSTOMER, **fields: Any
) -> tuple[str, str]:
    nonce = new_nonce(client)
    options = {"chain_id": nonce["chain_id"], **fields}
    message = siwe_message(account.address, nonce["nonce"], **options)
    return message, personal_sign(account, message)


def test_nonce_names_what_the_message_must_hold(client: httpx.Client, node: LedgerNode) -> None:
    nonce = new_nonce(client)

    assert (nonce["domain"], nonce["uri"], nonce["chain_id"]) == (DOMAIN, URI, node.chain.chain_id)
    assert len(nonce["nonce"]) >= 8 and nonce["nonce"].isalnum()


def test_signing_in_opens_a_customer_session_for_the_address(client: httpx.Client) -> None:
    session = sign_in(client, CUSTOMER)

    assert (session["address"], session["role"]) == (CUSTOMER.address, "customer")
    who = client.get("/v1/auth/session", headers=bearer(session)).json()
    assert who == {"role": "customer", "address": CUSTOMER.address}


def test_session_lasts_the_configured_lifetime(client: httpx.Client, node: LedgerNode) -> None:
    before = int(time.time())

    session = sign_in(client, CUSTOMER)

    after = int(time.time())
    ttl_s = node.settings.session_ttl_s
    # The gateway's clock read once, at some moment of the sign-in, whatever it took.
    assert before + ttl_s <= session["expires_at"] <= after + ttl_s


def test_session_ends_at_the_messages_expiration_time_when_sooner(client: httpx.Client) -> None:
    expiry = int(time.time()) + 120
    message, signature = _signed(client, expiration_time=expiry)

    session = _sign_in_with(client, message, signature).json()

    assert session["expires_at"] == expiry


def test_an_account_holding_auditor_role_signs_in_as_auditor(
    client: httpx.Client, node: LedgerNode
) -> None:
    registry = node.deployment.meter_registry
    node.chain.transact(registry.functions.grantRole(keccak(text="AUDITOR_ROLE"), AUDITOR.address))

    session = sign_in(client, AUDITOR)

    assert session["role"] == "auditor"


def test_a_contract_wallet_signs_in_through_eip_1271(
    client: httpx.Client, node: LedgerNode
) -> None:
    owner_key = dev_account(5)
    abi, bytecode = compile_test_contract(
        "contracts/test/ContractWallet1271.sol", "ContractWallet1271"
    )
    w3 = node.chain.w3
    receipt = node.chain.transact(
        w3.eth.contract(abi=abi, bytecode=bytecode).constructor(owner_key.address)
    )
    wallet = receipt["contractAddress"]
    nonce = new_nonce(client)
    message = siwe_message(wallet, nonce["nonce"], chain_id=nonce["chain_id"])

    session = _sign_in_with(client, message, personal_sign(owner_key, message)).json()

    assert (session["address"], session["role"]) == (wallet, "customer")


def test_a_nonce_signs_in_only_once(client: httpx.Client) -> None:
    message, signature = _signed(client)
    assert _sign_in_with(client, message, signature).status_code == 200

    assert _refusal(_sign_in_with(client, message, signature)) == "siwe_nonce_unknown"


def test_a_nonce_the_gateway_never_issued_is_refused(
    client: httpx.Client, node: LedgerNode
) -> None:
    message = siwe_message(CUSTOMER.address, "NeverIssued1234", chain_id=node.chain.chain_id)

    response = _sign_in_with(client, message, personal_sign(CUSTOMER, message))

    assert _refusal(response) == "siwe_nonce_unknown"


def test_a_message_for_another_domain_is_refused(client: httpx.Client) -> None:
    message, signature = _signed(client, domain="evil.example")

    assert _refusal(_sign_in_with(client, message, signature)) == "siwe_wrong_domain"


def test_a_message_for_another_uri_is_refused(client: httpx.Client) -> None:
    message, signature = _signed(client, uri="https://evil.example/login")

    assert _refusal(_sign_in_with(client, message, signature)) == "siwe_wrong_uri"


def test_a_message_for_another_chain_is_refused(client: httpx.Client) -> None:
    message, signature = _signed(client, chain_id=1)

    assert _refusal(_sign_in_with(client, message, signature)) == "siwe_wrong_chain"


def test_an_expired_message_is_refused(client: httpx.Client) -> None:
    past = time.time() - 60
    message, signature = _signed(client, issued_at=past - 60, expiration_time=past)

    assert _refusal(_sign_in_with(client, message, signature)) == "siwe_expired"


def test_a_message_not_yet_valid_is_refused(client: httpx.Client) -> None:
    message, signature = _signed(client, not_before=time.time() + 3600)

    assert _refusal(_sign_in_with(client, message, signature)) == "siwe_not_yet_valid"


def test_a_malformed_message_is_refused(client: httpx.Client) -> None:
    nonce = new_nonce(client)
    message = f"please let me in\nNonce: {nonce['nonce']}"

    response = _sign_in_with(client, message, personal_sign(CUSTOMER, message))

    assert response.status_code == 422
    assert _refusal(response) == "siwe_malformed"


def test_four_thousand_characters_of_anything_but_a_message_are_refused_as_malformed(
    client: httpx.Client,
) -> None:
    message = "a" * 4000

    response = _sign_in_with(client, message, personal_sign(CUSTOMER, message))

    assert response.status_code == 422
    assert _refusal(response) == "siwe_malformed"


def test_a_signature_by_another_key_is_refused(client: httpx.Client) -> None:
    nonce = new_nonce(client)
    message = siwe_message(CUSTOMER.address, nonce["nonce"], chain_id=nonce["chain_id"])

    response = _sign_in_with(client, message, personal_sign(dev_account(2), message))

    assert _refusal(response) == "siwe_bad_signature"


def test_a_signature_that_is_not_hex_is_refused(client: httpx.Client) -> None:
    nonce = new_nonce(client)
    message = siwe_message(CUSTOMER.address, nonce["nonce"], chain_id=nonce["chain_id"])

    assert _refusal(_sign_in_with(client, message, "not a signature")) == "siwe_bad_signature"


@pytest.mark.parametrize(
    "signature",
    ["0x" + "00" * 65, "0x" + "ff" * 65],
    ids=["no-public-key-recoverable", "s-above-the-curve-order"],
)
def test_a_signature_no_key_can_be_recovered_from_is_refused(
    client: httpx.Client, signature: str
) -> None:
    nonce = new_nonce(client)
    message = siwe_message(CUSTOMER.address, nonce["nonce"], chain_id=nonce["chain_id"])

    assert _refusal(_sign_in_with(client, message, signature)) == "siwe_bad_signature"


def test_an_expired_session_token_is_refused(client: httpx.Client, node: LedgerNode) -> None:
    now = int(time.time())
    expired = issue_session(CUSTOMER.address, "customer", now=now - 7200, ttl_s=3600)
    token = session_token(session_secret(node.settings), expired, now=now - 7200)

    response = client.get("/v1/auth/session", headers={"Authorization": f"Bearer {token}"})

    assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_session")


def test_a_token_signed_with_another_key_is_refused(client: httpx.Client) -> None:
    now = int(time.time())
    claims = {"iss": "energy-ledger", "sub": CUSTOMER.address, "role": "auditor",
              "iat": now, "exp": now + 600, "jti": "forged"}  # fmt: skip
    forged = jwt.encode(claims, b"x" * 32, algorithm="HS256")

    response = client.get("/v1/auth/session", headers={"Authorization": f"Bearer {forged}"})

    assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_session")


def test_without_a_token_the_caller_is_anonymous(client: httpx.Client) -> None:
    assert client.get("/v1/auth/session").json() == {"role": "anonymous", "address": None}


def test_the_session_key_is_created_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)

    first = session_secret(settings)

    assert session_secret(settings) == first and len(first) == 64
    assert os.stat(tmp_path / SESSION_SECRET_FILE).st_mode & 0o777 == 0o600


def test_a_configured_session_key_is_used_as_it_is(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, session_secret="k" * 32)

    assert session_secret(settings) == b"k" * 32
    assert not (tmp_path / SESSION_SECRET_FILE).exists()
