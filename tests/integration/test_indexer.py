"""The event indexer on a real Anvil: the read model matches the contracts, indexing is
idempotent, a reorganisation leaves no orphaned rows, and the indexer catches up after a restart
and after the chain was unreachable.

Each test deploys fresh contracts (their deployment block is where indexing starts) and runs on
SQLite and PostgreSQL (the `store` fixture). Reorganisations are made with Anvil's
`evm_snapshot` / `evm_revert`, as in test_reorg.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from ledger.anchoring.anchorer import ProofService
from ledger.chain.client import Chain, LocalChain, connect
from ledger.chain.deployment import Deployment, ensure_deployed
from ledger.market.indexer import EventIndexer, IndexerState
from ledger.market.orders import OfferTerms
from ledger.market.service import Market
from ledger.market.views import OfferView, TradeState
from ledger.settings import DEV_OPERATOR_KEY
from ledger.store.database import Store
from ledger.store.read_model import IndexCursor, ReadModel
from ledger.store.read_model_tables import READ_MODEL_TABLES
from tests.contracts.market_helpers import create_offer, fund, meter_id, register_meter, take_offer
from tests.fixtures.chain import latest_time
from tests.fixtures.rpc_proxy import RpcProxy, rpc_proxy_for

SLOT = 3600
PRICE = 250_000  # minor units per kWh
SELLER_METER = meter_id("IDX-PV-1")
BUYER_METER = meter_id("IDX-HH-1")


@pytest.fixture(scope="module")
def chain(anvil: LocalChain) -> Chain:
    return connect(anvil.rpc_url, DEV_OPERATOR_KEY)


@pytest.fixture
def deployment(chain: Chain, tmp_path: Path) -> Deployment:
    return ensure_deployed(chain, tmp_path)


@pytest.fixture
def read_model(store: Store) -> ReadModel:
    return ReadModel(store)


def indexer_for(
    chain: Chain, deployment: Deployment, read_model: ReadModel, **options: Any
) -> EventIndexer:
    return EventIndexer(chain, deployment, read_model, **options)


def rpc(chain: Chain, method: str, *params: Any) -> Any:
    return chain.w3.provider.make_request(method, list(params))["result"]  # type: ignore[arg-type]


def market_with_meters(
    chain: Chain, deployment: Deployment, seller: LocalAccount, buyer: LocalAccount
) -> None:
    register_meter(chain, deployment, SELLER_METER, seller.address)
    register_meter(chain, deployment, BUYER_METER, buyer.address)
    fund(chain, deployment, buyer, 10_000_000)


def offer(chain: Chain, deployment: Deployment, seller: LocalAccount, quantity_wh: int) -> int:
    start = (latest_time(chain) // SLOT + 2) * SLOT
    terms = OfferTerms(SELLER_METER, quantity_wh, PRICE, start, start - 60)
    return create_offer(chain, deployment.energy_market, seller, terms)


def rows(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every read-model table, in a stable order."""
    found = {}
    with store.read() as db:
        for table in READ_MODEL_TABLES:
            fetched = db.execute(f"SELECT * FROM {table.name}").fetchall()  # noqa: S608
            found[table.name] = sorted(
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in fetched
            )
    return found


def wait_for(condition: Any, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        time.sleep(0.05)


def test_the_read_model_holds_offers_and_trades_as_the_contract_does(
    chain: Chain,
    deployment: Deployment,
    store: Store,
    read_model: ReadModel,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    market_with_meters(chain, deployment, alice, bob)
    first = offer(chain, deployment, alice, 4000)
    cancelled = offer(chain, deployment, alice, 2000)
    take_offer(chain, deployment.energy_market, bob, first, BUYER_METER, 1000)
    take_offer(chain, deployment.energy_market, bob, first, BUYER_METER, 500)
    chain.transact(deployment.energy_market.functions.cancelOffer(cancelled), sender=alice)
    market = Market(chain, deployment, store, ProofService(store), read_model=read_model)

    indexer_for(chain, deployment, read_model).run_once()

    assert market.offers() == [market.offer(first), market.offer(cancelled)]
    assert [o.offer_id for o in market.open_offers()] == [first]
    assert market.offers()[0].remaining_wh == 2500
    assert market.trades_of(bob.address) == [market.trade(1), market.trade(2)]
    assert market.trades_of(alice.address.lower()) == market.trades()
    assert all(t.state is TradeState.OPEN for t in market.trades())


def test_a_refund_shows_in_the_read_model_as_the_contract_shows_it(
    chain: Chain,
    deployment: Deployment,
    store: Store,
    read_model: ReadModel,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    market_with_meters(chain, deployment, alice, bob)
    offer_id = offer(chain, deployment, alice, 4000)
    trade_id = take_offer(chain, deployment.energy_market, bob, offer_id, BUYER_METER, 1000)
    market = Market(chain, deployment, store, ProofService(store), read_model=read_model)
    _, _, window = market.parameters
    rpc(chain, "evm_increaseTime", 3 * SLOT + window)
    rpc(chain, "evm_mine")
    market.refund(trade_id)

    indexer_for(chain, deployment, read_model).run_once()

    (trade,) = market.trades_of(bob.address)
    assert trade == market.trade(trade_id)
    assert trade.state is TradeState.REFUNDED and trade.refunded == trade.escrow


def test_key_epochs_and_revocations_are_indexed(
    chain: Chain, deployment: Deployment, read_model: ReadModel, alice: LocalAccount
) -> None:
    registry = deployment.meter_registry.functions
    register_meter(chain, deployment, SELLER_METER, alice.address)
    chain.transact(registry.revokeKey(SELLER_METER))

    indexer_for(chain, deployment, read_model).run_once()

    cursor, meter = read_model.meter(SELLER_METER)
    assert meter is not None and meter.owner == alice.address
    (epoch,) = meter.epochs
    on_chain = chain.call(registry.keyEpoch(SELLER_METER, 0))
    assert epoch.revoked_at == int(on_chain[2]) != 0
    assert cursor is not None and cursor.block_number == chain.w3.eth.block_number


def test_indexing_the_same_blocks_again_changes_nothing(
    chain: Chain,
    deployment: Deployment,
    store: Store,
    read_model: ReadModel,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    market_with_meters(chain, deployment, alice, bob)
    offer_id = offer(chain, deployment, alice, 4000)
    take_offer(chain, deployment.energy_market, bob, offer_id, BUYER_METER, 1000)
    indexer = indexer_for(chain, deployment, read_model, range_blocks=3)
    indexer.run_once()
    before = rows(store)
    cursor = read_model.cursor()
    assert cursor is not None

    with store.write() as db:  # back to before the deployment, keeping every row
        read_model.set_cursor(
            db, IndexCursor(cursor.deployment, deployment.start_block - 1, None, 0)
        )
    again = indexer.run_once()

    assert again.logs > 0
    assert rows(store) == before


def test_blocks_within_the_confirmation_depth_are_not_indexed_so_their_reorg_leaves_nothing(
    chain: Chain,
    deployment: Deployment,
    store: Store,
    read_model: ReadModel,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    market_with_meters(chain, deployment, alice, bob)
    indexer = indexer_for(chain, deployment, read_model, confirmations=2)
    indexer.run_once()
    snapshot = rpc(chain, "evm_snapshot")
    offer(chain, deployment, alice, 4000)
    indexer.run_once()  # the offer's block is not 2 deep yet
    assert read_model.offers() == []

    assert rpc(chain, "evm_revert", snapshot)
    rpc(chain, "anvil_mine", hex(3))
    result = indexer.run_once()

    assert result.rolled_back_to is None and result.current
    assert read_model.offers() == [] and read_model.trades() == []


def test_rows_of_blocks_a_reorg_replaced_are_rolled_back(
    chain: Chain,
    deployment: Deployment,
    store: Store,
    read_model: ReadModel,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    market_with_meters(chain, deployment, alice, bob)
    indexer = indexer_for(chain, deployment, read_model)  # 0 confirmations: indexes the head
    indexer.run_once()
    snapshot = rpc(chain, "evm_snapshot")
    lost = offer(chain, deployment, alice, 4000)
    take_offer(chain, deployment.energy_market, bob, lost, BUYER_METER, 1000)
    indexer.run_once()
    assert [t.offer_id for t in read_model.trades()] == [lost]

    assert rpc(chain, "evm_revert", snapshot)
    kept = offer(chain, deployment, alice, 3000)  # the same id on the new branch
    rpc(chain, "anvil_mine", hex(2))
    result = indexer.run_once()

    assert result.rolled_back_to is not None
    assert read_model.trades() == []
    (indexed,) = read_model.offers()
    assert OfferView.of_indexed(indexed) == Market(
        chain, deployment, store, ProofService(store), read_model=read_model
    ).offer(kept)
    with store.read() as db:
        orphans = db.execute(
            "SELECT count(*) FROM chain_blocks WHERE block_number > ?", (result.indexed_to,)
        ).fetchone()[0]
    assert orphans == 0


def test_a_new_indexer_catches_up_with_what_was_mined_while_none_ran(
    chain: Chain,
    deployment: Deployment,
    store: Store,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    market_with_meters(chain, deployment, alice, bob)
    indexer_for(chain, deployment, ReadModel(store)).run_once()
    offer_id = offer(chain, deployment, alice, 4000)  # mined while no indexer runs
    take_offer(chain, deployment.energy_market, bob, offer_id, BUYER_METER, 1000)

    restarted = ReadModel(store)  # as a restarted gateway opens it
    result = indexer_for(chain, deployment, restarted).run_once()

    assert result.current
    assert [t.offer_id for t in restarted.trades_of(bob.address)] == [offer_id]


@pytest.fixture
def proxy(anvil: LocalChain) -> Iterator[RpcProxy]:
    yield from rpc_proxy_for(anvil.rpc_url)


def test_the_indexer_retries_while_the_chain_is_unreachable_and_then_catches_up(
    chain: Chain,
    deployment: Deployment,
    read_model: ReadModel,
    proxy: RpcProxy,
    alice: LocalAccount,
    bob: LocalAccount,
) -> None:
    market_with_meters(chain, deployment, alice, bob)
    through_proxy = connect(proxy.url, DEV_OPERATOR_KEY)
    indexer = indexer_for(through_proxy, deployment, read_model, poll_s=0.05)
    indexer.start()
    try:
        wait_for(lambda: indexer.state is IndexerState.CURRENT, "indexer current")
        proxy.refuse()
        offer_id = offer(chain, deployment, alice, 4000)
        take_offer(chain, deployment.energy_market, bob, offer_id, BUYER_METER, 1000)
        wait_for(lambda: indexer.failures >= 2, "two failed passes")
        assert indexer.state is IndexerState.CHAIN_UNAVAILABLE
        assert read_model.trades() == []

        proxy.restore()
        wait_for(lambda: len(read_model.trades()) == 1, "the trade indexed after the outage")
    finally:
        indexer.stop()
    assert indexer.failures == 0 and indexer.state is IndexerState.CURRENT
