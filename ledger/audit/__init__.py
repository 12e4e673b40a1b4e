"""The audit: everything the operator publishes re-derived from the chain and the published data
alone (`ledger audit`, docs/audit.md).

Owns: reading a deployment record and the contracts' events for an auditor (`chain`), checking
reading lines of a bundle in worker processes (`signatures`), the pass over a bundle (batches,
sequences, settlements: `auditor`), the bills (`bills`), the report (`report`) and the command
(`cli`). Every Merkle leaf the audit computes comes from `leaves.leaf_of`.

May import: every stage before it (chain, store, meters, anchoring, readings, market, billing) and
the top-level modules; nothing imports it but the command line.
"""
