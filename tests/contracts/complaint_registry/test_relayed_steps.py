"""ComplaintRegistry: a customer's steps relayed with the customer's EIP-712 signature
(openBySig, rateBySig, reopenBySig), sent here by the operator as the gateway does."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from ledger.chain.client import Chain
from tests.contracts.complaint_registry.helpers import (
    OPEN,
    RATED,
    nonce,
    resolved,
    signed_open,
    signed_rate,
    signed_reopen,
    stored,
)
from tests.fixtures.chain import latest_time, reverts


def test_open_by_sig_opens_the_complaint_for_the_signer_not_the_relayer(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    chain.transact(complaints.functions.openBySig(*signed_open(chain, complaints, alice)))

    complaint = stored(chain, complaints)
    assert (complaint["customer"], complaint["status"]) == (alice.address, OPEN)


def test_open_by_sig_uses_up_the_customers_nonce(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    chain.transact(complaints.functions.openBySig(*signed_open(chain, complaints, alice)))

    assert nonce(chain, complaints, alice.address) == 1


def test_open_by_sig_replayed_reverts_invalid_signature(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    args = signed_open(chain, complaints, alice)
    chain.transact(complaints.functions.openBySig(*args))

    with reverts("ComplaintRegistryInvalidSignature"):
        chain.transact(complaints.functions.openBySig(*args))


def test_open_by_sig_signed_by_another_key_reverts_invalid_signature(
    chain: Chain, complaints: Contract, alice: LocalAccount, bob: LocalAccount
) -> None:
    args = signed_open(chain, complaints, bob, customer=alice.address)

    with reverts("ComplaintRegistryInvalidSignature") as caught:
        chain.transact(complaints.functions.openBySig(*args))

    assert caught.value.args_decoded[0].lower() == alice.address.lower()


def test_open_by_sig_past_its_deadline_reverts_signature_expired(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    expired = latest_time(chain) - 1
    args = signed_open(chain, complaints, alice, until=expired)

    with reverts("ComplaintRegistrySignatureExpired") as caught:
        chain.transact(complaints.functions.openBySig(*args))

    assert caught.value.args_decoded[0] == expired


def test_open_by_sig_with_a_malformed_signature_reverts_invalid_signature(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    *fields, _ = signed_open(chain, complaints, alice)

    with reverts("ComplaintRegistryInvalidSignature"):
        chain.transact(complaints.functions.openBySig(*fields, b"\x01" * 64))


def test_rate_by_sig_rates_for_the_signer(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    complaint_id = resolved(chain, complaints, alice)

    chain.transact(
        complaints.functions.rateBySig(*signed_rate(chain, complaints, alice, complaint_id, 5))
    )

    complaint = stored(chain, complaints, complaint_id)
    assert (complaint["status"], complaint["rating"]) == (RATED, 5)


def test_rate_by_sig_of_another_customers_complaint_reverts_not_customer(
    chain: Chain, complaints: Contract, alice: LocalAccount, bob: LocalAccount
) -> None:
    complaint_id = resolved(chain, complaints, alice)

    with reverts("ComplaintRegistryNotCustomer"):
        chain.transact(
            complaints.functions.rateBySig(*signed_rate(chain, complaints, bob, complaint_id, 1))
        )


def test_reopen_by_sig_reopens_for_the_signer(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    complaint_id = resolved(chain, complaints, alice)

    chain.transact(
        complaints.functions.reopenBySig(*signed_reopen(chain, complaints, alice, complaint_id))
    )

    complaint = stored(chain, complaints, complaint_id)
    assert (complaint["status"], complaint["round"]) == (OPEN, 2)


def test_a_customers_nonces_are_shared_by_every_relayed_step(
    chain: Chain, complaints: Contract, alice: LocalAccount
) -> None:
    chain.transact(complaints.functions.openBySig(*signed_open(chain, complaints, alice)))
    complaint_id = resolved(chain, complaints, alice)
    chain.transact(
        complaints.functions.rateBySig(*signed_rate(chain, complaints, alice, complaint_id, 2))
    )

    assert nonce(chain, complaints, alice.address) == 2
