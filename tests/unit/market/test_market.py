"""The market's arithmetic, order signing and relay quota, without a chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import ContractRevert
from ledger.market.orders import (
    MarketDomain,
    OfferTerms,
    RelayQuota,
    RelayQuotaExceeded,
    offer_typed_data,
    recover_signer,
    sign_typed_data,
    take_typed_data,
)
from ledger.market.views import escrow_for, payment_for
from ledger.store.database import Store

DOMAIN = MarketDomain("EnergyMarket", "1", 1337, "0x" + "42" * 20)
TERMS = OfferTerms(b"PV-1".ljust(32, b"\x00"), 1500, 333, 1_800_000_000, 1_799_999_000)


def test_escrow_rounds_up_and_payment_rounds_down_to_a_minor_unit() -> None:
    assert escrow_for(333, 7) == 3  # 2.331 -> 3
    assert payment_for(333, 7) == 2  # 2.331 -> 2
    assert escrow_for(1000, 7) == payment_for(1000, 7) == 7


@settings(deadline=None)  # integer arithmetic: a stall of the noisy machine is not a failure
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


# -- the relay quota (a SQLite store, no chain) -----------------------------------------------


class Clock:
    """A settable clock for the quota's window."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


SIGNER = "0x" + "AB" * 20
OTHER = "0x" + "CD" * 20


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "ledger.db")
    yield opened
    opened.close()


def relay(quota: RelayQuota, signer: str = SIGNER) -> None:
    with quota.relay(signer):
        pass


def test_the_relay_quota_refuses_a_signer_past_its_limit_with_the_wait_until_a_slot_frees(
    store: Store,
) -> None:
    clock = Clock(1_000_000)
    quota = RelayQuota(store, per_hour=3, clock=clock)
    for minutes in (0, 10, 20):
        clock.now = 1_000_000 + 60 * minutes
        relay(quota)

    with pytest.raises(RelayQuotaExceeded) as refused:
        relay(quota)
    assert refused.value.code == "relay_quota_exceeded"
    # 20 minutes after the first relay, it leaves the window in 40.
    assert refused.value.retry_after_s == 40 * 60
    relay(quota, OTHER)  # another signer has a quota of its own


def test_the_relay_quota_frees_a_slot_when_the_oldest_relay_is_an_hour_old(store: Store) -> None:
    clock = Clock(1_000_000)
    quota = RelayQuota(store, per_hour=1, clock=clock)
    relay(quota)
    clock.now += 3_599
    with pytest.raises(RelayQuotaExceeded):
        relay(quota)

    clock.now += 1
    relay(quota)


def test_the_relay_quota_does_not_count_a_relay_the_contract_refused(store: Store) -> None:
    quota = RelayQuota(store, per_hour=1, clock=Clock(1_000_000))
    with pytest.raises(ContractRevert), quota.relay(SIGNER):
        raise ContractRevert(error_name="EnergyMarketOfferNotOpen")

    relay(quota)  # the refused one left the slot free


def test_the_relay_quota_is_shared_by_every_process_on_the_database(tmp_path: Path) -> None:
    first, second = Store(tmp_path / "ledger.db"), Store(tmp_path / "ledger.db")
    try:
        clock = Clock(1_000_000)
        relay(RelayQuota(first, per_hour=1, clock=clock))
        with pytest.raises(RelayQuotaExceeded):
            relay(RelayQuota(second, per_hour=1, clock=clock))
    finally:
        first.close()
        second.close()
