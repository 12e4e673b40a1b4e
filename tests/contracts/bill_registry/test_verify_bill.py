"""BillRegistry: bill leaves and proofs (billLeaf, verifyBill) against trees built in Python with
ledger.anchoring.merkle, as the issuing run builds them.

Every test runs against a fresh deployment on the session's Ganache (helpers.py).
"""

from __future__ import annotations

import pytest
from eth_utils import keccak
from web3.contract import Contract

from ledger.anchoring.merkle import MerkleTree, hash_pair
from ledger.billing.document import bill_leaf
from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from tests.contracts.bill_registry.helpers import anchor, anchor_reading_batches

BILL_HASHES = [keccak(text=f"bill {i}") for i in range(5)]  # an odd count: an uneven tree


@pytest.fixture
def tree(chain: Chain, bills: Contract, deployment: Deployment) -> MerkleTree:
    """Run 1 anchored over BILL_HASHES."""
    anchor_reading_batches(chain, deployment, 2)
    built = MerkleTree([bill_leaf(h) for h in BILL_HASHES])
    anchor(chain, bills, root=built.root, bill_count=len(BILL_HASHES))
    return built


def verify(
    chain: Chain, bills: Contract, run_id: int, bill_hash: bytes, proof: list[bytes]
) -> bool:
    return bool(chain.call(bills.functions.verifyBill(run_id, bill_hash, proof)))


@pytest.mark.parametrize(
    "bill_hash", [bytes(32), b"\xff" * 32, keccak(text="a bill")], ids=["zero", "ones", "hash"]
)
def test_the_chains_bill_leaf_is_the_python_bill_leaf(
    chain: Chain, bills: Contract, bill_hash: bytes
) -> None:
    assert chain.call(bills.functions.billLeaf(bill_hash)) == bill_leaf(bill_hash)


def test_every_bill_of_the_run_verifies_with_its_proof(
    chain: Chain, bills: Contract, tree: MerkleTree
) -> None:
    assert all(
        verify(chain, bills, 1, bill_hash, tree.proof(index))
        for index, bill_hash in enumerate(BILL_HASHES)
    )


def test_a_bill_not_in_the_run_does_not_verify(
    chain: Chain, bills: Contract, tree: MerkleTree
) -> None:
    assert not verify(chain, bills, 1, keccak(text="another bill"), tree.proof(0))


def test_a_bill_with_another_bills_proof_does_not_verify(
    chain: Chain, bills: Contract, tree: MerkleTree
) -> None:
    assert not verify(chain, bills, 1, BILL_HASHES[0], tree.proof(1))


def test_an_unknown_run_verifies_nothing(chain: Chain, bills: Contract, tree: MerkleTree) -> None:
    assert not verify(chain, bills, 2, BILL_HASHES[0], tree.proof(0))


def test_run_0_verifies_nothing(chain: Chain, bills: Contract, tree: MerkleTree) -> None:
    assert not verify(chain, bills, 0, BILL_HASHES[0], tree.proof(0))


def test_an_inner_node_does_not_pass_as_a_bill(
    chain: Chain, bills: Contract, deployment: Deployment
) -> None:
    anchor_reading_batches(chain, deployment, 2)
    leaves = [bill_leaf(h) for h in BILL_HASHES[:4]]
    anchor(chain, bills, root=MerkleTree(leaves).root, bill_count=4)
    left, right = hash_pair(leaves[0], leaves[1]), hash_pair(leaves[2], leaves[3])

    assert not verify(chain, bills, 1, left, [right])


def test_a_run_of_one_bill_verifies_with_an_empty_proof(
    chain: Chain, bills: Contract, deployment: Deployment
) -> None:
    anchor_reading_batches(chain, deployment, 2)
    anchor(chain, bills, root=bill_leaf(BILL_HASHES[0]), bill_count=1)

    assert verify(chain, bills, 1, BILL_HASHES[0], [])
