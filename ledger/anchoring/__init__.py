"""The anchoring stage: Merkle trees over stored readings, the anchorer that commits batches to the
ReadingLedger contract, and the inclusion proofs and settlement evidence built from them.

May import `ledger.chain` and `ledger.store`; the readings stage imports only `merkle` from here
(the leaf hash), so there is no cycle.
"""
