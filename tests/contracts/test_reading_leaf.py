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

from ledger.chain.client import Chain
from ledger.readings.native import DOMAIN_TAG, Reading, reading_leaf
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


@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
def test_library_leaf_equals_the_python_leaf(harness: Contract, vector: Reading) -> None:
    expected = reading_leaf(vector.encode())
    assert bytes(harness.functions.hash(*fields(vector)).call()) == expected


def test_library_leaf_of_the_docs_worked_vector_is_the_leaf_the_doc_states(
    harness: Contract,
) -> None:
    values, _ = doc_vector()
    leaf = harness.functions.hash(*fields(doc_reading(values))).call()
    assert bytes(leaf) == hex_value(values, "merkle_leaf")
