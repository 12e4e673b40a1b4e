"""The readings stage: the native signed-reading format, OCMF records, and ingestion (verify a
submitted reading against the key the registry held at its time, then store it durably), with the
per-reading results a gateway answers.

May import `ledger.chain`, `ledger.meters`, `ledger.anchoring.merkle` (the leaf hash) and
`ledger.store`.
"""
