"""The key source fed by the read model: a new meter costs a database query, not a chain call,
unless the read model is behind the block the cache ties histories to or does not know the meter.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.meters.keys import KeyAlgorithm, generate_key
from ledger.readings.indexed_keys import IndexedKeySource
from ledger.store.database import Store
from ledger.store.read_model import IndexCursor, LogRef, ReadModel
from tests.unit.readings.ingest_support import NOW, FakeRegistry, key_epoch

METER = b"IDX-1".ljust(32, b"\x00")


class FakeChain(FakeRegistry):
    def revoked_meters(self, from_block: int, to_block: int) -> set[bytes]:
        return set()


@pytest.fixture
def read_model(tmp_path: Path) -> ReadModel:
    return ReadModel(Store(tmp_path / "ledger.db"))


def index(read_model: ReadModel, registry: FakeRegistry, *, to_block: int) -> None:
    """Writes the registry's histories into the read model as the indexer would, up to a block."""
    with read_model.write() as db:
        for n, (meter_id, epochs) in enumerate(registry.histories.items()):
            first = epochs[0]
            read_model.add_meter(
                db,
                LogRef(1, bytes([n]) * 32, 0),
                meter_id=meter_id,
                owner="0x" + "11" * 20,
                algorithm=int(first.algorithm),
                public_key=first.public_key,
                valid_from=first.valid_from,
            )
        read_model.set_cursor(db, IndexCursor("test", to_block, b"\x01" * 32, NOW))


def test_a_meter_in_a_current_read_model_costs_no_chain_call(read_model: ReadModel) -> None:
    chain = FakeChain()
    chain.register(METER, generate_key(KeyAlgorithm.P256))
    index(read_model, chain, to_block=chain.block.number)
    source = IndexedKeySource(read_model, chain)
    source.latest_block()

    assert source.key_history(METER) == chain.histories[METER]
    assert chain.history_calls == 0


def test_a_meter_the_indexer_has_not_seen_is_read_from_the_chain(read_model: ReadModel) -> None:
    chain = FakeChain()
    index(read_model, chain, to_block=chain.block.number)
    chain.register(METER, generate_key(KeyAlgorithm.P256))  # registered after the last pass
    source = IndexedKeySource(read_model, chain)
    source.latest_block()

    assert source.key_history(METER) == chain.histories[METER]
    assert chain.history_calls == 1


def test_a_read_model_behind_the_latest_block_defers_to_the_chain(read_model: ReadModel) -> None:
    chain = FakeChain()
    key = generate_key(KeyAlgorithm.P256)
    chain.register(METER, key)
    index(read_model, chain, to_block=chain.block.number)
    chain.rotate(METER, generate_key(KeyAlgorithm.P256), NOW + 100)  # not indexed yet
    chain.mine(NOW + 50)
    source = IndexedKeySource(read_model, chain)
    source.latest_block()

    history = source.key_history(METER)

    assert history == (key_epoch(0, key, NOW - 10_000), chain.histories[METER][1])
    assert chain.history_calls == 1


def meters(count: int) -> list[bytes]:
    return [f"IDX-{n}".encode().ljust(32, b"\x00") for n in range(2, 2 + count)]


def test_a_read_model_behind_the_latest_block_is_caught_up_once_not_read_per_meter(
    read_model: ReadModel,
) -> None:
    chain = FakeChain()
    for meter in meters(3):
        chain.register(meter, generate_key(KeyAlgorithm.P256))
    index(read_model, chain, to_block=chain.block.number)
    chain.mine(NOW + 50)  # a block the indexer has not seen yet (an anchoring transaction)
    passes: list[int] = []

    def catch_up() -> None:
        passes.append(chain.block.number)
        index(read_model, chain, to_block=chain.block.number)

    source = IndexedKeySource(read_model, chain, catch_up=catch_up)
    source.latest_block()

    histories = [source.key_history(meter) for meter in meters(3)]

    assert histories == [chain.histories[meter] for meter in meters(3)]
    assert passes == [chain.block.number]
    assert chain.history_calls == 0


def test_a_catch_up_that_leaves_the_read_model_behind_runs_once_per_block(
    read_model: ReadModel,
) -> None:
    chain = FakeChain()
    for meter in meters(3):
        chain.register(meter, generate_key(KeyAlgorithm.P256))
    index(read_model, chain, to_block=chain.block.number)
    chain.mine(NOW + 50)
    passes: list[int] = []
    # With confirmations the indexer stays below the latest block: its pass cannot help.
    source = IndexedKeySource(read_model, chain, catch_up=lambda: passes.append(chain.block.number))
    source.latest_block()

    histories = [source.key_history(meter) for meter in meters(3)]

    assert histories == [chain.histories[meter] for meter in meters(3)]
    assert passes == [chain.block.number]
    assert chain.history_calls == 3
