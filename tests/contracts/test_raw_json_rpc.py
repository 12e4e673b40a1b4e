"""The raw JSON-RPC calls docs/contracts.md teaches work as written against a real chain: the
selectors from its tables, words encoded by hand as the page describes, a revert decoded by the
custom-error selector listed there. No web3 contract object is used to make the calls."""

from __future__ import annotations

from typing import Any

import httpx
from web3.contract import Contract

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.chain.reference import REFERENCE_FILE
from tests.contracts.merkle_helpers import MerkleTree
from tests.contracts.test_reading_ledger import anchor_tree, readings


def documented_selector(text: str) -> str:
    """The selector the reference table lists for `text` (a function or error as shown there)."""
    for line in REFERENCE_FILE.read_text().splitlines():
        if line.startswith(f"| `{text}` |"):
            return line.split("|")[2].strip().strip("`")[2:]
    raise AssertionError(f"{text} is not in docs/contracts.md")


def word(value: int | bytes) -> str:
    return (value.to_bytes(32, "big") if isinstance(value, int) else value).hex()


def eth_call(chain: Chain, to: str, data: str) -> dict[str, Any]:
    request = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_call",
        "params": [{"to": to, "data": "0x" + data}, "latest"],
    }
    answer: dict[str, Any] = httpx.post(chain.rpc_url, json=request, timeout=10).json()
    return answer


def test_documented_raw_calls_read_the_last_batch_and_its_root(
    chain: Chain, deployment: Deployment
) -> None:
    ledger: Contract = deployment.reading_ledger
    tree = MerkleTree(readings(5))
    anchor_tree(chain, ledger, 1, tree)

    last = eth_call(chain, ledger.address, documented_selector("lastBatchId()"))
    root = eth_call(
        chain, ledger.address, documented_selector("batchRoot(uint256 batchId)") + word(1)
    )

    assert int(last["result"], 16) == 1
    assert root["result"] == "0x" + tree.root.hex()


def test_documented_verify_reading_encoding_proves_a_leaf_and_refuses_another(
    chain: Chain, deployment: Deployment
) -> None:
    ledger: Contract = deployment.reading_ledger
    tree = MerkleTree(readings(5))
    anchor_tree(chain, ledger, 1, tree)
    selector = documented_selector("verifyReading(uint256 batchId, bytes32 leaf, bytes32[] proof)")

    def verify(leaf: bytes, proof: list[bytes]) -> int:
        data = selector + word(1) + word(leaf) + word(0x60) + word(len(proof))
        data += "".join(word(node) for node in proof)
        return int(eth_call(chain, ledger.address, data)["result"], 16)

    assert verify(tree.leaves[2], tree.proof(2)) == 1
    assert verify(tree.leaves[3], tree.proof(2)) == 0


def test_a_documented_custom_error_selector_decodes_a_raw_revert(
    chain: Chain, deployment: Deployment
) -> None:
    ledger: Contract = deployment.reading_ledger
    data = documented_selector("batchRoot(uint256 batchId)") + word(7)

    error = eth_call(chain, ledger.address, data)["error"]

    revert = error.get("data")
    revert = revert.get("result") or revert.get("data") if isinstance(revert, dict) else revert
    unknown_batch = documented_selector("ReadingLedgerUnknownBatch(uint256 batchId)")
    assert revert == "0x" + unknown_batch + word(7)
