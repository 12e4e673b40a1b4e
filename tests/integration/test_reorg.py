"""Reorganisations on Anvil: a batch whose anchoring block is lost is anchored again.

A reorganisation is reproduced with Anvil's snapshots: `evm_snapshot` before the anchoring
transaction, `evm_revert` after it (the block and its transaction are gone), then new blocks. The
anchorer asks for confirmations, so the batch is not final when its block disappears; it must
notice, anchor the batch again (under its id, or release its readings to a later batch when the
id was taken), and afterwards every reading is in exactly one batch and its proof verifies on
chain.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_utils.crypto import keccak

from ledger.anchoring.anchorer import Anchorer, ProofService
from ledger.anchoring.merkle import verify as verify_proof
from ledger.chain.client import Chain, LocalChain, connect, free_port
from ledger.chain.deployment import Deployment, ensure_deployed
from ledger.settings import DEV_OPERATOR_KEY
from ledger.store.batches import BatchStatus
from ledger.store.database import Store
from ledger.store.readings import StoredReading
from tests.fixtures.gateway import OPERATOR_HEADERS, ledger_env, start_gateway
from tests.integration.test_anchoring import FIRST_TS, add_readings, chain_last
from tests.integration.test_readings_http import METER, post, register_meter, signed

CONFIRMATIONS = 2


@pytest.fixture(scope="module")
def anvil_chain(anvil: LocalChain) -> Chain:
    return connect(anvil.rpc_url, DEV_OPERATOR_KEY)


@pytest.fixture
def anvil_deployment(anvil_chain: Chain, tmp_path: Path) -> Deployment:
    return ensure_deployed(anvil_chain, tmp_path)


@pytest.fixture
def anchorer(store: Store, anvil_chain: Chain, anvil_deployment: Deployment) -> Iterator[Anchorer]:
    made = Anchorer(
        store,
        anvil_chain,
        anvil_deployment,
        interval_s=0.05,
        max_readings=1000,
        confirmations=CONFIRMATIONS,
    )
    yield made
    made.stop()


def rpc(chain: Chain, method: str, *params: Any) -> Any:
    return chain.w3.provider.make_request(method, list(params))["result"]  # type: ignore[arg-type]


def mine(chain: Chain, blocks: int) -> None:
    rpc(chain, "anvil_mine", hex(blocks))


def assert_each_reading_in_one_batch_and_provable_on_chain(
    store: Store, chain: Chain, deployment: Deployment, readings: list[StoredReading]
) -> None:
    ledger = deployment.reading_ledger
    proofs = ProofService(store)
    leaves = [leaf for b in store.batches() for leaf in store.batch_leaves(b.batch_id)]
    assert sorted(leaves) == sorted(r.leaf for r in readings)  # each exactly once
    for reading in readings:
        current = store.reading(reading.meter_id, reading.seq)
        assert current is not None
        proof = proofs.proof(current)
        assert proof is not None and proof.final, f"seq {reading.seq} has no final proof"
        batch_id = proof.batch.batch_id
        assert verify_proof(list(proof.proof), proof.batch.root, current.leaf)
        assert chain.call(ledger.functions.verifyReading(batch_id, current.leaf, list(proof.proof)))


def test_a_batch_whose_block_was_reorganised_away_is_anchored_again_under_its_id(
    store: Store, anchorer: Anchorer, anvil_chain: Chain, anvil_deployment: Deployment
) -> None:
    readings = add_readings(store, anvil_chain, 6)
    snapshot = rpc(anvil_chain, "evm_snapshot")
    assert anchorer.run_once().anchored == (1,)
    (first,) = store.batches()

    assert rpc(anvil_chain, "evm_revert", snapshot)
    mine(anvil_chain, 3)  # the other branch grows past the lost block
    assert chain_last(anvil_chain, anvil_deployment) == 0
    again = anchorer.run_once()

    assert again.dropped == (1,)
    (batch,) = store.batches()
    assert (batch.batch_id, batch.status, batch.root) == (1, BatchStatus.ANCHORED, first.root)
    assert batch.tx_hash is not None and batch.block_number is not None
    receipt = anvil_chain.w3.eth.get_transaction_receipt(batch.tx_hash)  # type: ignore[arg-type]
    assert receipt["blockNumber"] == batch.block_number != first.block_number
    assert chain_last(anvil_chain, anvil_deployment) == 1
    mine(anvil_chain, CONFIRMATIONS)
    anchorer.run_once()
    assert_each_reading_in_one_batch_and_provable_on_chain(
        store, anvil_chain, anvil_deployment, readings
    )


def test_readings_of_a_lost_batch_whose_id_was_taken_go_into_a_later_batch(
    store: Store, anchorer: Anchorer, anvil_chain: Chain, anvil_deployment: Deployment
) -> None:
    readings = add_readings(store, anvil_chain, 4)
    snapshot = rpc(anvil_chain, "evm_snapshot")
    anchorer.run_once()

    assert rpc(anvil_chain, "evm_revert", snapshot)
    # On the winning branch, batch 1 holds another root (an anchor this database did not send).
    anvil_chain.transact(
        anvil_deployment.reading_ledger.functions.anchor(
            1, keccak(text="the other branch"), 1, FIRST_TS, FIRST_TS
        )
    )
    again = anchorer.run_once()
    mine(anvil_chain, CONFIRMATIONS)
    anchorer.run_once()

    assert (again.dropped, again.released) == ((1,), 4)
    assert [(b.batch_id, b.status) for b in store.batches()] == [
        (1, BatchStatus.FOREIGN),
        (2, BatchStatus.ANCHORED),
    ]
    assert_each_reading_in_one_batch_and_provable_on_chain(
        store, anvil_chain, anvil_deployment, readings
    )


def test_a_batch_is_final_only_once_enough_blocks_are_on_top(
    store: Store, anchorer: Anchorer, anvil_chain: Chain
) -> None:
    (reading,) = add_readings(store, anvil_chain, 1)
    proofs = ProofService(store, head=lambda: int(anvil_chain.w3.eth.block_number))
    anchorer.run_once()
    stored = store.reading(reading.meter_id, reading.seq)
    assert stored is not None

    seen = []
    for _ in range(CONFIRMATIONS + 1):
        anchorer.run_once()
        shown = proofs.anchoring(stored)
        assert shown is not None
        seen.append((shown.confirmations, shown.final, proofs.proof(stored) is not None))
        mine(anvil_chain, 1)

    assert seen == [(0, False, False), (1, False, False), (2, True, True)]


def test_the_gateway_anchors_again_a_batch_a_reorganisation_dropped(tmp_path: Path) -> None:
    env = ledger_env(
        tmp_path / "data",
        "anvil",
        free_port(),
        LEDGER_ANCHOR_INTERVAL_S="0.1",
        LEDGER_CONFIRMATIONS=str(CONFIRMATIONS),
    )
    gateway = start_gateway(env, tmp_path / "gateway.log")
    try:
        key, start = register_meter(gateway, METER)
        chain = connect(f"http://127.0.0.1:{env['LEDGER_CHAIN_PORT']}", DEV_OPERATOR_KEY)
        ledger = ensure_deployed(chain, tmp_path / "data").reading_ledger
        snapshot = rpc(chain, "evm_snapshot")
        assert post(gateway, {"readings": [signed(key, start, 1)]}).json()["accepted"] == 1
        first = wait_for_anchor(gateway, lambda a: a is not None)
        assert (first["final"], first["confirmations"]) == (False, 0)

        assert rpc(chain, "evm_revert", snapshot)
        mine(chain, 1)
        again = wait_for_anchor(gateway, lambda a: a is not None and a["tx_hash"] is not None
                                and a["block_number"] != first["block_number"])  # fmt: skip
        final = wait_for_anchor(gateway, lambda a: a["final"], mine_on=chain)

        assert again["batch_id"] == final["batch_id"] == 1
        assert final["confirmations"] >= CONFIRMATIONS
        leaf = bytes.fromhex(final["leaf"][2:])
        proof = [bytes.fromhex(p[2:]) for p in final["proof"]]
        assert chain.call(ledger.functions.verifyReading(1, leaf, proof))
        assert int(chain.call(ledger.functions.lastBatchId())) == 1
    finally:
        gateway.stop()  # and the Anvil it started


def wait_for_anchor(
    gateway: Any, done: Any, *, mine_on: Chain | None = None, timeout_s: float = 60
) -> dict[str, Any]:
    """Polls the reading's `anchor` until `done(anchor)`, mining a block per poll if asked (a
    chain that mines only on transactions otherwise never deepens)."""
    deadline = time.monotonic() + timeout_s
    anchor: Any = None
    while time.monotonic() < deadline:
        view = httpx.get(
            f"{gateway.base_url}/v1/meters/{METER}/readings/1", headers=OPERATOR_HEADERS, timeout=10
        ).json()
        anchor = view["anchor"]
        if done(anchor):
            return {**anchor, "leaf": view["leaf"]}
        if mine_on is not None:
            mine(mine_on, 1)
        time.sleep(0.1)
    raise AssertionError(f"anchor not as expected after {timeout_s}s: {anchor}")
