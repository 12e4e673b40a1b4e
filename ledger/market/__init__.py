"""The market stage: P2P offers and takes relayed for meter owners, market views, settlement from
anchored readings, and the operator-side market client.

May import `ledger.chain`, `ledger.meters`, `ledger.anchoring` and `ledger.store`.
"""
