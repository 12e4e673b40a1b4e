"""Trees built by ledger/anchoring/merkle.py over canonical readings verify on chain with
OpenZeppelin's `MerkleProof`, through ReadingLedger.verifyReading, for odd and even batch sizes
alike.
"""

from __future__ import annotations

import pytest
from web3.contract import Contract

from ledger.anchoring.merkle import MerkleTree
from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.readings.native import Reading, reading_leaf
from tests.fixtures.chain import reverts

FIRST_TS = 1_700_000_000
METERS = [f"MTR-{n:04d}".encode().ljust(32, b"\x00") for n in range(1, 4)]


def batch_readings(chain: Chain, size: int, *, first_seq: int = 1) -> list[Reading]:
    """`size` readings from three meters, every 15 minutes, registers growing."""
    readings = []
    for i in range(size):
        seq = first_seq + i // len(METERS)
        readings.append(
            Reading(
                chain_id=chain.chain_id,
                meter_id=METERS[i % len(METERS)],
                seq=seq,
                timestamp=FIRST_TS + 900 * seq,
                import_wh=10_000 + 250 * seq,
                export_wh=40 * seq,
                status=0,
            )
        )
    return readings


def anchor(chain: Chain, ledger: Contract, batch_id: int, readings: list[Reading]) -> MerkleTree:
    """Anchors a tree over the readings' leaves as batch `batch_id`; returns the tree."""
    tree = MerkleTree([reading_leaf(r.encode()) for r in readings])
    timestamps = [r.timestamp for r in readings]
    call = ledger.functions.anchor(batch_id, tree.root, len(tree), min(timestamps), max(timestamps))
    chain.transact(call)
    assert chain.call(ledger.functions.batchRoot(batch_id)) == tree.root
    return tree


def verify_on_chain(
    chain: Chain, ledger: Contract, batch_id: int, leaf: bytes, proof: list[bytes]
) -> bool:
    result = chain.call(ledger.functions.verifyReading(batch_id, leaf, proof))
    assert isinstance(result, bool)
    return result


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13])
def test_every_reading_of_an_anchored_batch_verifies_on_chain(
    chain: Chain, deployment: Deployment, size: int
) -> None:
    ledger = deployment.reading_ledger
    readings = batch_readings(chain, size)
    tree = anchor(chain, ledger, 1, readings)

    for index, r in enumerate(readings):
        leaf = reading_leaf(r.encode())
        assert verify_on_chain(chain, ledger, 1, leaf, tree.proof(index)), f"reading {index}"


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13])
def test_a_tampered_reading_does_not_verify_on_chain(
    chain: Chain, deployment: Deployment, size: int
) -> None:
    ledger = deployment.reading_ledger
    readings = batch_readings(chain, size)
    tree = anchor(chain, ledger, 1, readings)

    for index, r in enumerate(readings):
        # One watt-hour more, same proof: what an operator altering a stored reading would try.
        fields = {**vars(r), "import_wh": r.import_wh + 1}
        tampered = reading_leaf(Reading(**fields).encode())
        assert not verify_on_chain(chain, ledger, 1, tampered, tree.proof(index))


def test_a_proof_verifies_only_in_its_own_batch(chain: Chain, deployment: Deployment) -> None:
    ledger = deployment.reading_ledger
    first = batch_readings(chain, 5, first_seq=1)
    second = batch_readings(chain, 5, first_seq=3)
    first_tree = anchor(chain, ledger, 1, first)
    second_tree = anchor(chain, ledger, 2, second)

    leaf = reading_leaf(first[0].encode())
    assert verify_on_chain(chain, ledger, 1, leaf, first_tree.proof(0))
    assert not verify_on_chain(chain, ledger, 2, leaf, first_tree.proof(0))
    leaf = reading_leaf(second[4].encode())
    assert verify_on_chain(chain, ledger, 2, leaf, second_tree.proof(4))
    with reverts("ReadingLedgerUnknownBatch"):
        chain.call(ledger.functions.verifyReading(3, leaf, second_tree.proof(4)))
