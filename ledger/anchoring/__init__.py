"""The anchoring stage: Merkle trees over stored readings, the anchorer that commits batches to the
ReadingLedger contract, the inclusion proofs and settlement evidence built from them, and the
reading bundles that carry them to auditors.

May import `ledger.chain` and `ledger.store`; the readings stage imports only `merkle` from here
(the leaf hash), so there is no cycle.
"""
