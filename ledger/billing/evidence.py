"""A bill's verification package: the bill with everything needed to check it against the chain.

`bill_evidence(...)` gathers, from the store, what `ledger verify-bill` (and anyone else) needs
beside a chain endpoint (format in docs/bills.md, "Verification package"):

- the bill document (its canonical bytes are what was hashed and anchored) and its hash;
- the run it was anchored in and the Merkle proof of its leaf in the run's root;
- the ledger's contract addresses on that chain;
- the text of every tariff the bill names (the chain holds only their hashes);
- every reading the bill relies on, as the meter signed it (native canonical bytes and
  signature, or the whole OCMF record), with its batch id and Merkle proof;
- the ids of the trades it nets.

Nothing here is trusted by a verifier: each item is checked against the chain.
"""

from __future__ import annotations

import json
from typing import Any

from ledger.anchoring.merkle import MerkleTree, keccak256
from ledger.billing.document import bill_leaf
from ledger.chain.deployment import Deployment
from ledger.errors import LedgerError
from ledger.readings.fraud_proof import commitments_for_leaf
from ledger.store.bills import BillStore, StoredBill
from ledger.store.database import Store

EVIDENCE_FORMAT = "energy-ledger/bill-evidence/v1"


class BillNotFound(LedgerError):
    code = "bill_not_found"
    http_status = 404


class BillAnchorPending(LedgerError):
    """The bill's run is committed but its anchoring has not been seen mined yet."""

    code = "bill_anchor_pending"
    http_status = 409


def hex0x(raw: bytes) -> str:
    return "0x" + raw.hex()


def bill_proof(bills: BillStore, bill: StoredBill) -> list[bytes]:
    """The Merkle proof of the bill's leaf in its run's root."""
    tree = MerkleTree([bill_leaf(h) for h in bills.run_bill_hashes(bill.run_id)])
    return tree.proof(bill.leaf_index)


def bill_view(bills: BillStore, bill: StoredBill) -> dict[str, Any]:
    """A stored bill as the API shows it: the document, its hash, run, proof and links."""
    run = bills.run(bill.run_id)
    anchored = run is not None and run.status == "anchored"
    return {
        "bill_hash": hex0x(bill.bill_hash),
        "customer": bill.customer,
        "period_start": bill.period_start,
        "period_end": bill.period_end,
        "total_minor": bill.total_minor,
        "estimated": bill.estimated,
        "status": "anchored" if anchored else "anchoring",
        "current": bill.replaced_by is None,
        "replaces": None if bill.replaces is None else hex0x(bill.replaces),
        "replaced_by": None if bill.replaced_by is None else hex0x(bill.replaced_by),
        "anchor": {
            "run_id": bill.run_id,
            "leaf_index": bill.leaf_index,
            "root": None if run is None else hex0x(run.root),
            "transaction_hash": (None if run is None or not run.tx_hash else hex0x(run.tx_hash)),
            "block_number": None if run is None else run.block_number,
            "proof": [hex0x(p) for p in bill_proof(bills, bill)],
        },
        "document": json.loads(bill.document),
    }


def bill_evidence(store: Store, deployment: Deployment, bill_hash: bytes) -> dict[str, Any]:
    """The verification package of a bill (see the module docstring).

    Raises:
        BillNotFound: no bill has this hash.
        BillAnchorPending: its run is not anchored yet.
        LedgerError: a tariff text or a reading the bill names is missing from the store.
    """
    bills = BillStore(store)
    bill = bills.bill(bill_hash)
    if bill is None:
        raise BillNotFound(f"no bill 0x{bill_hash.hex()}")
    run = bills.run(bill.run_id)
    if run is None or run.status != "anchored":
        raise BillAnchorPending(f"bill 0x{bill_hash.hex()} is not anchored yet: ask again shortly")
    document = json.loads(bill.document)
    tariffs: dict[str, str] = {}
    for digest in document["tariffs"]:
        text = bills.tariff_text(bytes.fromhex(digest.removeprefix("0x")))
        if text is None:
            raise LedgerError(f"this gateway holds no text for tariff {digest}")
        tariffs[digest] = text.decode("utf-8")
    return {
        "format": EVIDENCE_FORMAT,
        "bill": document,
        "bill_hash": hex0x(bill.bill_hash),
        "anchor": {"run_id": bill.run_id, "proof": [hex0x(p) for p in bill_proof(bills, bill)]},
        "contracts": dict(sorted(deployment.addresses.items())),
        "tariffs": tariffs,
        "readings": _readings(store, bills, document),
        "trades": sorted(
            {int(t) for line in document["lines"] for t in line["evidence"]["trades"]}
        ),
    }


def _readings(store: Store, bills: BillStore, document: dict[str, Any]) -> list[dict[str, Any]]:
    trees: dict[int, MerkleTree] = {}
    readings: list[dict[str, Any]] = []
    for meter_hex, first_seq, last_seq, batch_id in sorted(
        document["reading_batches"], key=lambda run: (run[0], run[1])
    ):
        meter = bytes.fromhex(meter_hex.removeprefix("0x"))
        rows = bills.signed_readings(meter, int(first_seq), int(last_seq))
        if len(rows) != int(last_seq) - int(first_seq) + 1:
            raise LedgerError(
                f"meter {meter_hex} readings {first_seq}..{last_seq} are not all stored"
            )
        tree = trees.get(batch_id)
        if tree is None:
            tree = trees[batch_id] = MerkleTree(store.batch_leaves(int(batch_id)))
        for seq, canonical, signature, source, raw, row_batch, leaf_index in rows:
            if row_batch != batch_id or leaf_index is None:
                raise LedgerError(f"meter {meter_hex} reading {seq} is not in batch {batch_id}")
            item: dict[str, Any] = {
                "meter_id": meter_hex,
                "seq": seq,
                "batch_id": int(batch_id),
                "proof": [hex0x(p) for p in tree.proof(leaf_index)],
            }
            # The canonical bytes are the leaf's preimage; for an OCMF reading they are the
            # gateway's re-encoding of the record, which a verifier rebuilds from the record.
            item["canonical"] = hex0x(canonical)
            # A version-2 leaf also hashes the signed bytes and the signature's fixed form
            # (docs/reading-format.md): their hashes let a verifier without an OCMF parser (the
            # customer page) rebuild the leaf from the canonical bytes. Absent: a version-1 leaf.
            found = commitments_for_leaf(
                bytes(canonical),
                bytes(signature),
                str(source),
                None if raw is None else bytes(raw),
                tree.leaves[leaf_index],
            )
            if found is not None:
                item["signed_hash"] = hex0x(keccak256(found[0]))
                item["signature_hash"] = hex0x(keccak256(found[1]))
            if source == "ocmf" and raw is not None:
                item["ocmf"] = raw.decode("utf-8")
            else:
                item["signature"] = hex0x(signature)
            readings.append(item)
    return readings
