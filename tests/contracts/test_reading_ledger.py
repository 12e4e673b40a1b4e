"""ReadingLedger: anchoring batch roots with strictly consecutive ids, and verifying single readings
against them with Merkle proofs built in Python (tests/contracts/merkle_helpers.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from tests.contracts.merkle_helpers import (
    READING_TYPES,
    MerkleTree,
    process_proof,
    reading_leaf,
)
from tests.fixtures.chain import reverts

OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")
METER = b"METER-0001".ljust(32, b"\x00")
ROOT = keccak(text="some batch root")
FROM_TS = 1_700_000_000
TO_TS = 1_700_000_900


@pytest.fixture
def ledger(deployment: Deployment) -> Contract:
    return deployment.reading_ledger


def anchor(
    chain: Chain,
    ledger: Contract,
    batch_id: int,
    *,
    root: bytes = ROOT,
    count: int = 1,
    from_ts: int = FROM_TS,
    to_ts: int = TO_TS,
    sender: LocalAccount | None = None,
) -> TxReceipt:
    call = ledger.functions.anchor(batch_id, root, count, from_ts, to_ts)
    return chain.transact(call, sender=sender)


def readings(count: int, *, first_seq: int = 1) -> list[bytes]:
    """Leaves of `count` consecutive readings of one meter, one every 15 minutes."""
    return [
        reading_leaf(METER, seq, FROM_TS + 900 * seq, 10_000 + 250 * seq, 40 * seq)
        for seq in range(first_seq, first_seq + count)
    ]


def anchor_tree(chain: Chain, ledger: Contract, batch_id: int, tree: MerkleTree) -> None:
    anchor(chain, ledger, batch_id, root=tree.root, count=len(tree.leaves))


def verify(chain: Chain, ledger: Contract, batch_id: int, leaf: bytes, proof: list[bytes]) -> Any:
    return chain.call(ledger.functions.verifyReading(batch_id, leaf, proof))


# anchor


def test_anchor_stores_the_batch_root(chain: Chain, ledger: Contract) -> None:
    anchor(chain, ledger, 1, root=ROOT, count=96, from_ts=FROM_TS, to_ts=TO_TS)

    assert chain.call(ledger.functions.batchRoot(1)) == ROOT


def test_anchor_emits_reading_batch_anchored(chain: Chain, ledger: Contract) -> None:
    receipt = anchor(chain, ledger, 1, root=ROOT, count=96, from_ts=FROM_TS, to_ts=TO_TS)

    logs = ledger.events.ReadingBatchAnchored().process_receipt(receipt, errors=DISCARD)
    assert len(logs) == 1
    assert dict(logs[0]["args"]) == {
        "batchId": 1,
        "root": ROOT,
        "count": 96,
        "fromTimestamp": FROM_TS,
        "toTimestamp": TO_TS,
    }


def test_anchor_increments_last_batch_id(chain: Chain, ledger: Contract) -> None:
    seen = [chain.call(ledger.functions.lastBatchId())]
    for batch_id in (1, 2, 3):
        anchor(chain, ledger, batch_id, root=keccak(batch_id.to_bytes(32, "big")))
        seen.append(chain.call(ledger.functions.lastBatchId()))

    assert seen == [0, 1, 2, 3]


def test_anchor_accepts_a_batch_taken_at_a_single_instant(chain: Chain, ledger: Contract) -> None:
    receipt = anchor(chain, ledger, 1, from_ts=FROM_TS, to_ts=FROM_TS)

    logs = ledger.events.ReadingBatchAnchored().process_receipt(receipt, errors=DISCARD)
    assert (logs[0]["args"]["fromTimestamp"], logs[0]["args"]["toTimestamp"]) == (FROM_TS, FROM_TS)


def test_anchor_reverts_if_batch_id_is_zero(chain: Chain, ledger: Contract) -> None:
    with reverts("ReadingLedgerUnexpectedBatchId") as caught:
        anchor(chain, ledger, 0)
    assert caught.value.args_decoded == (0, 1)


@pytest.mark.parametrize("anchored_before", [0, 2])
def test_anchor_reverts_if_batch_id_skips_ahead(
    chain: Chain, ledger: Contract, anchored_before: int
) -> None:
    for batch_id in range(1, anchored_before + 1):
        anchor(chain, ledger, batch_id)

    with reverts("ReadingLedgerUnexpectedBatchId") as caught:
        anchor(chain, ledger, anchored_before + 2)
    assert caught.value.args_decoded == (anchored_before + 2, anchored_before + 1)
    assert chain.call(ledger.functions.lastBatchId()) == anchored_before


def test_anchor_reverts_if_batch_id_is_anchored_again(chain: Chain, ledger: Contract) -> None:
    anchor(chain, ledger, 1, root=ROOT)

    with reverts("ReadingLedgerUnexpectedBatchId") as caught:
        anchor(chain, ledger, 1, root=keccak(text="a replacement root"))
    assert caught.value.args_decoded == (1, 2)
    assert chain.call(ledger.functions.batchRoot(1)) == ROOT


def test_anchor_reverts_if_root_is_zero(chain: Chain, ledger: Contract) -> None:
    with reverts("ReadingLedgerZeroRoot") as caught:
        anchor(chain, ledger, 1, root=bytes(32))
    assert caught.value.args_decoded == (1,)


def test_anchor_reverts_if_batch_is_empty(chain: Chain, ledger: Contract) -> None:
    with reverts("ReadingLedgerEmptyBatch") as caught:
        anchor(chain, ledger, 1, count=0)
    assert caught.value.args_decoded == (1,)


def test_anchor_reverts_if_time_range_is_inverted(chain: Chain, ledger: Contract) -> None:
    with reverts("ReadingLedgerInvalidTimeRange") as caught:
        anchor(chain, ledger, 1, from_ts=TO_TS, to_ts=TO_TS - 1)
    assert caught.value.args_decoded == (1, TO_TS, TO_TS - 1)


def test_anchor_reverts_if_caller_lacks_operator_role(
    chain: Chain, ledger: Contract, stranger: LocalAccount
) -> None:
    with reverts("AccessControlUnauthorizedAccount") as caught:
        anchor(chain, ledger, 1, sender=stranger)
    who, role = caught.value.args_decoded
    assert (to_checksum_address(who), role) == (stranger.address, OPERATOR_ROLE)
    assert chain.call(ledger.functions.lastBatchId()) == 0


# batch and verifyReading on batches that do not exist


@pytest.mark.parametrize("batch_id", [0, 2])
def test_batch_reverts_if_batch_unknown(chain: Chain, ledger: Contract, batch_id: int) -> None:
    anchor(chain, ledger, 1)

    with reverts("ReadingLedgerUnknownBatch") as caught:
        chain.call(ledger.functions.batchRoot(batch_id))
    assert caught.value.args_decoded == (batch_id,)


@pytest.mark.parametrize("batch_id", [0, 2])
def test_verify_reading_reverts_if_batch_unknown(
    chain: Chain, ledger: Contract, batch_id: int
) -> None:
    tree = MerkleTree(readings(2))
    anchor_tree(chain, ledger, 1, tree)

    with reverts("ReadingLedgerUnknownBatch") as caught:
        verify(chain, ledger, batch_id, tree.leaves[0], tree.proof(0))
    assert caught.value.args_decoded == (batch_id,)


# verifyReading


def test_merkle_helper_hashes_sorted_pairs_and_lifts_an_odd_node() -> None:
    a, b, c = readings(3)
    ab = keccak(min(a, b) + max(a, b))

    tree = MerkleTree([a, b, c])

    assert tree.root == keccak(min(ab, c) + max(ab, c))
    assert (tree.proof(0), tree.proof(1), tree.proof(2)) == ([b, c], [a, c], [ab])
    assert all(
        process_proof(leaf, tree.proof(i)) == tree.root for i, leaf in enumerate(tree.leaves)
    )


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 8])
def test_verify_reading_accepts_the_proof_of_every_leaf(
    chain: Chain, ledger: Contract, size: int
) -> None:
    tree = MerkleTree(readings(size))
    anchor_tree(chain, ledger, 1, tree)

    results = [verify(chain, ledger, 1, leaf, tree.proof(i)) for i, leaf in enumerate(tree.leaves)]

    assert results == [True] * size


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_verify_reading_rejects_a_leaf_not_in_the_batch(
    chain: Chain, ledger: Contract, size: int
) -> None:
    tree = MerkleTree(readings(size))
    anchor_tree(chain, ledger, 1, tree)
    outsider = readings(1, first_seq=size + 1)[0]

    results = [verify(chain, ledger, 1, outsider, tree.proof(i)) for i in range(size)]

    assert results == [False] * size


def test_verify_reading_rejects_a_reading_whose_leaf_is_hashed_once(
    chain: Chain, ledger: Contract
) -> None:
    encoded = encode(list(READING_TYPES), [METER, 1337, 1, FROM_TS + 900, 10_250, 40])
    tree = MerkleTree(readings(3))
    assert tree.leaves[0] == keccak(keccak(encoded))
    anchor_tree(chain, ledger, 1, tree)

    assert verify(chain, ledger, 1, keccak(encoded), tree.proof(0)) is False


@pytest.mark.parametrize("size", [2, 3, 7])
def test_verify_reading_rejects_another_leafs_proof(
    chain: Chain, ledger: Contract, size: int
) -> None:
    tree = MerkleTree(readings(size))
    anchor_tree(chain, ledger, 1, tree)

    results = [
        verify(chain, ledger, 1, leaf, tree.proof((i + 1) % size))
        for i, leaf in enumerate(tree.leaves)
    ]

    assert results == [False] * size


def test_verify_reading_rejects_a_tampered_proof(chain: Chain, ledger: Contract) -> None:
    tree = MerkleTree(readings(7))
    anchor_tree(chain, ledger, 1, tree)
    proof = tree.proof(4)
    flipped = [proof[0], bytes([proof[1][0] ^ 1]) + proof[1][1:], *proof[2:]]

    assert verify(chain, ledger, 1, tree.leaves[4], flipped) is False
    assert verify(chain, ledger, 1, tree.leaves[4], proof[:-1]) is False
    assert verify(chain, ledger, 1, tree.leaves[4], [*proof, proof[0]]) is False


def test_verify_reading_rejects_a_proof_against_another_batch(
    chain: Chain, ledger: Contract
) -> None:
    first = MerkleTree(readings(3))
    second = MerkleTree(readings(3, first_seq=4))
    anchor_tree(chain, ledger, 1, first)
    anchor_tree(chain, ledger, 2, second)

    in_own_batch = [
        verify(chain, ledger, 1, leaf, first.proof(i)) for i, leaf in enumerate(first.leaves)
    ]
    in_other_batch = [
        verify(chain, ledger, 2, leaf, first.proof(i)) for i, leaf in enumerate(first.leaves)
    ]

    assert in_own_batch == [True] * 3
    assert in_other_batch == [False] * 3
