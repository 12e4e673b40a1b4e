"""Merkle trees over reading leaves, exactly as OpenZeppelin 5.4 `MerkleProof` verifies them.

Hashing:
- A leaf is `keccak256(keccak256(encoded))`, Solidity's
  `keccak256(bytes.concat(keccak256(abi.encode(...))))`. Hashing twice makes a leaf preimage 32
  bytes long, so no 64-byte string (the preimage of an inner node) can be passed off as a leaf
  *when the verifier computes the leaf itself from the record*.
- An inner node is `keccak256(min(a, b) || max(a, b))`, OpenZeppelin's
  `Hashes.commutativeKeccak256`. Sorting the pair means a proof is only the list of siblings,
  with no left/right flags.

Shape (odd levels): the tree is the array layout of OpenZeppelin's JavaScript library
(`@openzeppelin/merkle-tree` `makeMerkleTree`, used by `SimpleMerkleTree` and `StandardMerkleTree`):
a complete binary tree of `2n - 1` nodes in one array, node `i` having children `2i + 1` and
`2i + 2`, leaf `k` stored at `2n - 2 - k`. Every inner node has exactly two children, so no level
needs padding or a promoted node, and every leaf is at depth floor(log2 n) or one more. A tree
built here from leaves in a given order has the same root and proofs as
`SimpleMerkleTree.of(leaves, {sortLeaves: false})`, and as `StandardMerkleTree.of(values, types,
{sortLeaves: false})` when the leaves are `leaf_hash(abi.encode(types, value))`; so an auditor can
rebuild a batch root with OpenZeppelin's own tool. For a power-of-two count the root also equals
the one of a level-by-level tree.

Leaves are kept in the order given (the batcher's order); they are not sorted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sha3  # type: ignore[import-untyped]  # safe-pysha3: no type information

from ledger.errors import LedgerError

HASH_LENGTH = 32

# safe-pysha3's Keccak took 1.7 us per 256-byte input here, pycryptodome's 8.4 us (its keyword
# arguments and digest object cost more than the hash) and eth_utils.keccak more again. Every
# reading's version-2 leaf is four hashes, ingested or audited, and a 100,000-leaf tree hashes
# 99,999 inner nodes: the hash is a large share of both.
_keccak_256: Callable[[bytes], Any] = sha3.keccak_256


class MerkleError(LedgerError):
    """A Merkle tree cannot be built or queried with this input."""

    code = "merkle_error"


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (Ethereum's `keccak256`, not NIST SHA3-256) of `data`."""
    digest: bytes = _keccak_256(data).digest()
    return digest


def leaf_hash(encoded: bytes) -> bytes:
    """The leaf for one record's `abi.encode` bytes: `keccak256(keccak256(encoded))`."""
    return keccak256(keccak256(encoded))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """An inner node: keccak256 of the two children in ascending byte order."""
    return keccak256(a + b if a < b else b + a)


def process_proof(leaf: bytes, proof: Iterable[bytes]) -> bytes:
    """The root that `proof` leads to from `leaf` (OpenZeppelin `MerkleProof.processProof`)."""
    node = leaf
    for sibling in proof:
        node = keccak256(node + sibling if node < sibling else sibling + node)
    return node


def verify(proof: Sequence[bytes], root: bytes, leaf: bytes) -> bool:
    """Whether `proof` proves `leaf` under `root`, as `MerkleProof.verify` decides it.

    Malformed input (a value that is not 32 bytes) is answered False rather than raised: proofs
    arrive from outside (a reading bundle, an HTTP client), and to a verifier a malformed proof is
    simply one that does not prove anything. Note that, as on chain, an inner node with the rest
    of its path also "verifies"; callers must compute `leaf` from the record they are checking.
    """
    if len(root) != HASH_LENGTH or len(leaf) != HASH_LENGTH:
        return False
    if any(len(sibling) != HASH_LENGTH for sibling in proof):
        return False
    return process_proof(leaf, proof) == root


class MerkleTree:
    """A Merkle tree over already-hashed, distinct 32-byte leaves, kept in the order given.

    Args:
        leaves: The leaf hashes (usually `leaf_hash(canonical_bytes)`); at least one.

    Raises:
        MerkleError: No leaves, a leaf that is not 32 bytes, or the same leaf twice. Two equal
            leaves mean the same record twice in one batch, which is a bug upstream; refusing
            also keeps `index_of` unambiguous.
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        count = len(leaves)
        if count == 0:
            raise MerkleError("a Merkle tree needs at least one leaf")
        positions: dict[bytes, int] = {}
        for index, leaf in enumerate(leaves):
            if not isinstance(leaf, bytes) or len(leaf) != HASH_LENGTH:
                raise MerkleError(f"leaf {index} is not 32 bytes")
            first = positions.setdefault(leaf, index)
            if first != index:
                raise MerkleError(f"leaf {index} repeats leaf {first}: 0x{leaf.hex()}")
        self._positions = positions
        self._leaves = tuple(leaves)

        size = 2 * count - 1
        # Leaf k sits at size - 1 - k, so the leaves fill the array's tail in reverse order.
        nodes: list[bytes] = [b""] * (size - count) + list(reversed(self._leaves))
        new = _keccak_256
        for i in range(size - count - 1, -1, -1):
            left = nodes[2 * i + 1]
            right = nodes[2 * i + 2]
            nodes[i] = new(left + right if left < right else right + left).digest()
        self._nodes = nodes

    def __len__(self) -> int:
        return len(self._leaves)

    @property
    def leaves(self) -> tuple[bytes, ...]:
        """The leaf hashes, in the order given."""
        return self._leaves

    @property
    def root(self) -> bytes:
        """The root hash (the leaf itself for a one-leaf tree)."""
        return self._nodes[0]

    def index_of(self, leaf: bytes) -> int:
        """The position of `leaf` in the order given.

        Raises:
            MerkleError: The leaf is not in the tree.
        """
        try:
            return self._positions[leaf]
        except KeyError:
            raise MerkleError(f"leaf 0x{leaf.hex()} is not in the tree") from None

    def proof(self, index: int) -> list[bytes]:
        """The siblings from leaf `index` up to the root, as `MerkleProof.verify` takes them.

        Raises:
            MerkleError: `index` is not a leaf position.
        """
        count = len(self._leaves)
        if isinstance(index, bool) or not 0 <= index < count:
            raise MerkleError(f"leaf {index} is not in a tree of {count} leaves")
        nodes = self._nodes
        node = 2 * count - 2 - index
        siblings: list[bytes] = []
        while node > 0:
            # Odd positions are left children (sibling on the right), even ones right children.
            siblings.append(nodes[node + 1 if node % 2 else node - 1])
            node = (node - 1) // 2
        return siblings
