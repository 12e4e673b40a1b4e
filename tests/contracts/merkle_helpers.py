"""A small Merkle tree for contract tests, hashed exactly as OpenZeppelin `MerkleProof` expects.

Deliberately independent of `ledger.anchoring.merkle` (and of a different shape for odd levels): the
contract is tested against a second implementation, so a shared mistake cannot hide.

Leaves are `keccak256(bytes.concat(keccak256(abi.encode(...))))`: hashing twice means a 64-byte
leaf preimage can never pass as an inner node. Inner nodes are `keccak256` of the sorted pair, so
a proof is just the list of siblings, without left/right flags. A node without a sibling on its
level moves up unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi import encode
from eth_utils import keccak

# The fields a test reading is encoded with; only their hash matters to ReadingLedger.
READING_TYPES = ("bytes32", "uint256", "uint64", "uint64", "uint64", "uint64")


def leaf_hash(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """The leaf of one record: keccak256(bytes.concat(keccak256(abi.encode(values))))."""
    return keccak(keccak(encode(list(types), list(values))))


def reading_leaf(
    meter_id: bytes, seq: int, timestamp: int, import_wh: int, export_wh: int
) -> bytes:
    """The leaf of a test reading (chain id 1337 as in the managed chains)."""
    return leaf_hash(READING_TYPES, (meter_id, 1337, seq, timestamp, import_wh, export_wh))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """An inner node: keccak256 of the two children in ascending byte order."""
    return keccak(a + b) if a <= b else keccak(b + a)


class MerkleTree:
    """A Merkle tree over already-hashed leaves, in the given order."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        self.levels: list[list[bytes]] = [list(leaves)]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            above = [hash_pair(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            if len(below) % 2 == 1:
                above.append(below[-1])
            self.levels.append(above)

    @property
    def leaves(self) -> list[bytes]:
        return self.levels[0]

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    def proof(self, index: int) -> list[bytes]:
        """The siblings from leaf `index` up to the root."""
        if not 0 <= index < len(self.leaves):
            raise IndexError(f"leaf {index} is not in a tree of {len(self.leaves)} leaves")
        siblings: list[bytes] = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                siblings.append(level[sibling])
            index //= 2
        return siblings


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` leads to from `leaf` (OpenZeppelin `MerkleProof.processProof`)."""
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node
