"""The market's arithmetic and order signing, without a chain."""

from __future__ import annotations

from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import given
from hypothesis import strategies as st

from ledger.market import (
    MarketDomain,
    OfferTerms,
    escrow_for,
    offer_typed_data,
    payment_for,
    recover_signer,
    sign_typed_data,
    take_typed_data,
)

DOMAIN = MarketDomain("EnergyMarket", "1", 1337, "0x" + "42" * 20)
TERMS = OfferTerms(b"PV-1".ljust(32, b"\x00"), 1500, 333, 1_800_000_000, 1_799_999_000)


def test_escrow_rounds_up_and_payment_rounds_down_to_a_minor_unit() -> None:
    assert escrow_for(333, 7) == 3  # 2.331 -> 3
    assert payment_for(333, 7) == 2  # 2.331 -> 2
    assert escrow_for(1000, 7) == payment_for(1000, 7) == 7


@given(
    quantity=st.integers(min_value=1, max_value=2**64 - 1),
    delivered_share=st.integers(min_value=0, max_value=1000),
    price=st.integers(min_value=1, max_value=2**128 - 1),
)
def test_payment_never_exceeds_the_escrow_and_misses_less_than_a_unit(
    quantity: int, delivered_share: int, price: int
) -> None:
    delivered = quantity * delivered_share // 1000
    escrow, paid = escrow_for(quantity, price), payment_for(delivered, price)
    assert 0 <= paid <= escrow
    assert paid * 1000 <= delivered * price < (paid + 1) * 1000
    assert (escrow - 1) * 1000 < quantity * price <= escrow * 1000


def test_a_signed_offer_recovers_to_its_signer_and_to_no_one_under_another_domain() -> None:
    seller: LocalAccount = Account.create()
    typed = offer_typed_data(DOMAIN, TERMS, seller.address, 0, 1_900_000_000)
    signature = sign_typed_data(seller.key, typed)

    assert recover_signer(typed, signature) == seller.address
    other_chain = MarketDomain(DOMAIN.name, DOMAIN.version, 1, DOMAIN.verifying_contract)
    moved = offer_typed_data(other_chain, TERMS, seller.address, 0, 1_900_000_000)
    assert recover_signer(moved, signature) != seller.address
    next_nonce = offer_typed_data(DOMAIN, TERMS, seller.address, 1, 1_900_000_000)
    assert recover_signer(next_nonce, signature) != seller.address


def test_a_malformed_signature_recovers_to_nobody() -> None:
    typed = take_typed_data(DOMAIN, 1, b"\x01" * 32, 10, "0x" + "11" * 20, 0, 1)
    assert recover_signer(typed, b"\x00" * 10) is None
