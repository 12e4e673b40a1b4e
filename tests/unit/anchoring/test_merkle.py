"""Merkle trees as OpenZeppelin `MerkleProof` checks them, without a chain."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.anchoring.merkle import (
    MerkleError,
    MerkleTree,
    hash_pair,
    keccak256,
    leaf_hash,
    process_proof,
    verify,
)
from ledger.errors import LedgerError

SIZES = [1, 2, 3, 4, 5, 7, 8, 1000]


def leaves(count: int, salt: str = "") -> list[bytes]:
    """`count` distinct leaves, hashed as the ledger hashes records."""
    return [leaf_hash(encode(["string", "uint256"], [salt, i])) for i in range(count)]


def flip(value: bytes) -> bytes:
    """`value` with its last bit flipped."""
    return value[:-1] + bytes([value[-1] ^ 1])


# hashing


def test_keccak256_is_ethereum_keccak_not_sha3() -> None:
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    assert keccak256(b"abc") == keccak(b"abc")


@pytest.mark.parametrize("encoded", [b"", b"\x00" * 64, encode(["uint256"], [7]), b"x" * 1000])
def test_leaf_hash_is_keccak_of_keccak(encoded: bytes) -> None:
    assert leaf_hash(encoded) == keccak(keccak(encoded))


def test_inner_nodes_hash_the_sorted_pair() -> None:
    low, high = b"\x01" * 32, b"\x02" * 32
    assert hash_pair(low, high) == hash_pair(high, low) == keccak(low + high)


# every size


@pytest.mark.parametrize("count", SIZES)
def test_every_proof_verifies(count: int) -> None:
    tree = MerkleTree(leaves(count))
    assert len(tree) == count
    for index, leaf in enumerate(tree.leaves):
        proof = tree.proof(index)
        assert verify(proof, tree.root, leaf)
        assert tree.index_of(leaf) == index


@pytest.mark.parametrize("count", SIZES)
def test_proofs_are_as_short_as_a_balanced_tree_allows(count: int) -> None:
    tree = MerkleTree(leaves(count))
    depth = (count - 1).bit_length()  # ceil(log2(count))
    lengths = {len(tree.proof(i)) for i in range(count)}
    assert max(lengths) == depth
    assert min(lengths) >= depth - 1


@pytest.mark.parametrize("count", SIZES)
def test_a_wrong_leaf_proof_or_root_fails(count: int) -> None:
    tree = MerkleTree(leaves(count))
    outsider = leaf_hash(b"not in the tree")
    for index in {0, count // 2, count - 1}:
        leaf, proof = tree.leaves[index], tree.proof(index)
        assert not verify(proof, tree.root, outsider)
        assert not verify(proof, tree.root, flip(leaf))
        assert not verify(proof, flip(tree.root), leaf)
        if proof:
            assert not verify([flip(proof[0]), *proof[1:]], tree.root, leaf)
            assert not verify(proof[:-1], tree.root, leaf)
            assert not verify([*proof, proof[-1]], tree.root, leaf)
        if count > 1:
            other = (index + 1) % count
            assert not verify(tree.proof(other), tree.root, leaf)


def test_a_one_leaf_tree_has_the_leaf_as_root_and_an_empty_proof() -> None:
    (leaf,) = leaves(1)
    tree = MerkleTree([leaf])
    assert tree.root == leaf
    assert tree.proof(0) == []


def test_a_power_of_two_tree_is_the_plain_level_by_level_tree() -> None:
    a, b, c, d = leaves(4)
    assert MerkleTree([a, b, c, d]).root == hash_pair(hash_pair(a, b), hash_pair(c, d))


def test_an_odd_tree_has_the_openzeppelin_array_shape() -> None:
    # Array of 5 nodes [root, n1, n2, a, b... reversed]: leaves a, b, c sit at 4, 3, 2.
    a, b, c = leaves(3)
    tree = MerkleTree([a, b, c])
    assert tree.root == hash_pair(hash_pair(b, a), c)
    assert tree.proof(2) == [hash_pair(b, a)]
    assert tree.proof(0) == [b, c]


def test_process_proof_returns_the_root() -> None:
    tree = MerkleTree(leaves(7))
    assert process_proof(tree.leaves[3], tree.proof(3)) == tree.root


def test_malformed_proof_values_are_answered_false() -> None:
    tree = MerkleTree(leaves(4))
    leaf, proof = tree.leaves[0], tree.proof(0)
    assert not verify(proof, tree.root[:31], leaf)
    assert not verify(proof, tree.root, leaf + b"\x00")
    assert not verify([proof[0][:31], *proof[1:]], tree.root, leaf)


# OpenZeppelin's own dumps (@openzeppelin/merkle-tree test/dumps/*.1_0_6.json, unsorted)


def test_matches_openzeppelin_simple_merkle_tree_dump() -> None:
    values = [
        "3ac225168df54212a25c1c01fd35bebfea408fdac2e31ddd6f80a4bbf9a5f1cb",
        "b5553de315e0edf504d9150af82dafa5c4667fa618ed0a6f19c69b41166c5510",
        "0b42b6393c1f53060fe3ddbfcd7aadcca894465a5a438f69c87d790b2299b9b2",
        "f1918e8562236eb17adc8502332f4c9c82bc14e19bfc0aa10ab674ff75b3d2f3",
        "a8982c89d80987fb9a510e25981ee9170206be21af3c8e0eb312ef1d3382e761",
        "d1e8aeb79500496ef3dc2e57ba746a8315d048b7a664a2bf948db4fa91960483",
    ]
    tree = MerkleTree([bytes.fromhex(v) for v in values])
    assert tree.root.hex() == "9012f1e18a87790d2e01faace75aaaca38e53df437cdce2c0552464dda4af49c"


def test_matches_openzeppelin_standard_merkle_tree_dump() -> None:
    tree = MerkleTree([leaf_hash(encode(["string"], [letter])) for letter in "abcdef"])
    assert tree.leaves[0].hex() == (
        "9c15a6a0eaeed500fd9eed4cbeab71f797cefcc67bfd46683e4d2e6ff7f06d1c"
    )
    assert tree.root.hex() == "23be0977360f08bb0bd7f709a7d543d2cd779c79c66d74e0441919871647de2b"


# refusals


def test_an_empty_tree_is_refused() -> None:
    with pytest.raises(MerkleError, match="at least one leaf"):
        MerkleTree([])


def test_a_duplicate_leaf_is_refused_naming_both_positions() -> None:
    a, b, c = leaves(3)
    with pytest.raises(MerkleError, match="leaf 3 repeats leaf 1"):
        MerkleTree([a, b, c, b])


@pytest.mark.parametrize("bad", [b"", b"\x01" * 31, b"\x01" * 33, "00" * 32])
def test_a_leaf_that_is_not_32_bytes_is_refused(bad: object) -> None:
    with pytest.raises(MerkleError, match="leaf 1 is not 32 bytes"):
        MerkleTree([leaves(1)[0], bad])  # type: ignore[list-item]


@pytest.mark.parametrize("index", [-1, 3, True])
def test_a_proof_for_a_missing_index_is_refused(index: int) -> None:
    with pytest.raises(MerkleError, match="not in a tree of 3 leaves"):
        MerkleTree(leaves(3)).proof(index)


def test_index_of_a_missing_leaf_is_refused() -> None:
    with pytest.raises(MerkleError, match="not in the tree"):
        MerkleTree(leaves(3)).index_of(leaf_hash(b"elsewhere"))


def test_merkle_error_is_a_ledger_error_with_a_stable_code() -> None:
    assert issubclass(MerkleError, LedgerError)
    assert MerkleError.code == "merkle_error"


# property


@settings(max_examples=40, deadline=None)
@given(st.sets(st.binary(min_size=32, max_size=32), min_size=1, max_size=70))
def test_every_leaf_of_any_tree_has_a_verifying_proof(unique: set[bytes]) -> None:
    tree = MerkleTree(sorted(unique))
    for index, leaf in enumerate(tree.leaves):
        assert verify(tree.proof(index), tree.root, leaf)
    assert not verify(tree.proof(0), tree.root, leaf_hash(b"outsider"))


@pytest.mark.parametrize("count", range(1, 131))
def test_every_inner_node_is_the_sorted_pair_hash_of_its_children_in_the_array(count: int) -> None:
    """The array layout node by node, from its definition (node i's children are 2i + 1 and
    2i + 2; leaf k sits at 2n - 2 - k), for every shape of partly filled last level up to 130."""
    given = leaves(count, salt="shape")
    expected: list[bytes] = [b""] * (count - 1) + list(reversed(given))
    for i in range(count - 2, -1, -1):
        expected[i] = hash_pair(expected[2 * i + 1], expected[2 * i + 2])

    tree = MerkleTree(given)

    assert tree.root == expected[0]
    assert [tree.proof(k) for k in range(count)] == [
        _proof_from(expected, 2 * count - 2 - k) for k in range(count)
    ]
    assert [tree.index_of(leaf) for leaf in given] == list(range(count))


def _proof_from(nodes: list[bytes], node: int) -> list[bytes]:
    siblings = []
    while node > 0:
        siblings.append(nodes[node + 1 if node % 2 else node - 1])
        node = (node - 1) // 2
    return siblings
