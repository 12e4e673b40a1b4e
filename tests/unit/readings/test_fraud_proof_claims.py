"""Building fraud-proof claims from stored or bundled readings (`ledger.readings.fraud_proof`):
the signature's anchored form is found from the batch root, a leaf of another form or version is
refused by name, and a verifier's candidate leaves hold both versions."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import utils

from ledger.anchoring.merkle import MerkleTree
from ledger.errors import LedgerError
from ledger.meters.keys import KeyAlgorithm, generate_key
from ledger.readings.fraud_proof import (
    candidate_leaves,
    claim_for_reading,
    commitments_for_leaf,
)
from ledger.readings.native import Reading, anchored_leaf, reading_leaf, sign_reading

READING = Reading(
    chain_id=1337,
    meter_id=b"MTR-CLAIM".ljust(32, b"\x00"),
    seq=4,
    timestamp=1_700_000_000,
    import_wh=1_234,
    export_wh=5,
    status=0,
)
OTHER_LEAF = b"\x07" * 32


def raw_and_der() -> tuple[bytes, bytes]:
    raw = sign_reading(generate_key(KeyAlgorithm.P256), READING)
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    return raw, utils.encode_dss_signature(r, s)


def test_a_claim_for_a_der_signature_carries_the_anchored_r_s_form() -> None:
    raw, der = raw_and_der()
    canonical = READING.encode()
    tree = MerkleTree([anchored_leaf(canonical, canonical, raw), OTHER_LEAF])

    claim = claim_for_reading(
        batch_id=3,
        canonical=canonical,
        signature=der,
        source="native",
        raw=None,
        proof=tree.proof(0),
        root=tree.root,
    )

    assert (claim.batch_id, claim.signature_form, claim.signed_bytes) == (3, raw, canonical)
    assert claim.arguments()[1] == (READING.meter_id, 4, 1_700_000_000, 1_234, 5, 0)


def test_a_claim_whose_leaf_is_not_under_the_root_is_fraud_proof_not_in_batch() -> None:
    raw, _ = raw_and_der()
    canonical = READING.encode()
    tree = MerkleTree([reading_leaf(canonical), OTHER_LEAF])  # a version-1 batch

    with pytest.raises(LedgerError) as caught:
        claim_for_reading(
            batch_id=3,
            canonical=canonical,
            signature=raw,
            source="native",
            raw=None,
            proof=tree.proof(0),
            root=tree.root,
        )
    assert caught.value.code == "fraud_proof_not_in_batch"


def test_commitments_for_a_version_1_leaf_are_none() -> None:
    raw, _ = raw_and_der()
    canonical = READING.encode()

    assert commitments_for_leaf(canonical, raw, "native", None, reading_leaf(canonical)) is None


def test_candidate_leaves_hold_the_version_2_and_the_version_1_leaf() -> None:
    raw, _ = raw_and_der()
    canonical = READING.encode()

    leaves = candidate_leaves(canonical, raw, "native", None)

    assert leaves == [anchored_leaf(canonical, canonical, raw), reading_leaf(canonical)]
