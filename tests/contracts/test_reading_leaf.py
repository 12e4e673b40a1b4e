"""The ReadingLeaf library (contracts/libraries/ReadingLeaf.sol) builds the same Merkle leaf as the
Python encoder (`ledger.readings.native`) that the anchorer uses, through a test-only harness
(contracts/test/ReadingLeafHarness.sol) on a real chain. The vectors cover every field at zero and
at its maximum, a chain other than the managed chains' 1337 and the docs' worked vector; the
settlement tests check the same leaf through EnergyMarket.
"""

from __future__ import annotations

import pytest
from eth_utils import to_checksum_address
from web3.contract import Contract

from ledger.anchoring.merkle import keccak256
from ledger.chain.client import Chain
from ledger.readings.native import DOMAIN_TAG, LEAF_TAG_V2, Reading, anchored_leaf
from tests.contracts.solidity import compile_test_contract
from tests.unit.readings.test_native_doc_vector import doc_reading, doc_vector, hex_value

pytestmark = pytest.mark.chain

UINT64_MAX = 2**64 - 1
UINT32_MAX = 2**32 - 1

VECTORS = {
    "small": Reading(
        chain_id=1337,
        meter_id=b"MTR-0001".ljust(32, b"\x00"),
        seq=0,
        timestamp=1_700_000_000,
        import_wh=0,
        export_wh=0,
        status=0,
    ),
    "every-field-at-its-maximum": Reading(
        chain_id=2**256 - 1,
        meter_id=b"\xff" * 32,
        seq=UINT64_MAX,
        timestamp=UINT64_MAX,
        import_wh=UINT64_MAX,
        export_wh=UINT64_MAX,
        status=UINT32_MAX,
    ),
    "another-chain": Reading(
        chain_id=100,
        meter_id=bytes(range(32)),
        seq=41_000,
        timestamp=4_102_444_800,
        import_wh=12_345_678,
        export_wh=876_543,
        status=0x8000_0001,
    ),
    "docs-worked-vector": doc_reading(doc_vector()[0]),
}


@pytest.fixture(scope="module")
def harness(chain: Chain) -> Contract:
    abi, bytecode = compile_test_contract(
        "contracts/test/ReadingLeafHarness.sol", "ReadingLeafHarness"
    )
    receipt = chain.transact(chain.w3.eth.contract(abi=abi, bytecode=bytecode).constructor())
    return chain.w3.eth.contract(address=to_checksum_address(receipt["contractAddress"]), abi=abi)


def fields(r: Reading) -> tuple[tuple[bytes, int, int, int, int, int], int]:
    """The harness's arguments: the `Reading` struct and the chain id."""
    return (r.meter_id, r.seq, r.timestamp, r.import_wh, r.export_wh, r.status), r.chain_id


def test_library_domain_tag_is_the_python_encoders(harness: Contract) -> None:
    assert bytes(harness.functions.domainTag().call()) == DOMAIN_TAG


def test_library_leaf_tag_is_the_python_encoders(harness: Contract) -> None:
    assert bytes(harness.functions.leafTag().call()) == LEAF_TAG_V2


@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
def test_library_canonical_bytes_equal_the_python_encoding(
    harness: Contract, vector: Reading
) -> None:
    assert bytes(harness.functions.canonical(*fields(vector)).call()) == vector.encode()


@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
def test_library_leaf_equals_the_python_version_2_leaf(harness: Contract, vector: Reading) -> None:
    # An OCMF-like signed payload and a signature of another length than 64 count as well: the
    # leaf hashes them, whatever they are.
    signed, signature = vector.encode(), bytes(range(64))
    expected = anchored_leaf(vector.encode(), signed, signature)
    reading, chain_id = fields(vector)
    leaf = harness.functions.hash(reading, chain_id, keccak256(signed), keccak256(signature))
    assert bytes(leaf.call()) == expected


def test_library_leaf_of_the_docs_worked_vector_equals_the_python_version_2_leaf(
    harness: Contract,
) -> None:
    values, _ = doc_vector()
    r = doc_reading(values)
    signature = hex_value(values, "p256.signature")
    reading, chain_id = fields(r)
    leaf = harness.functions.hash(
        reading, chain_id, keccak256(r.encode()), keccak256(signature)
    ).call()
    assert bytes(leaf) == anchored_leaf(r.encode(), r.encode(), signature)
