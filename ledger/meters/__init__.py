"""The meters stage: the on-chain meter registry (who a meter is, which key it signs with, since
when) and the codecs of meter identities and public keys.

Every key format a meter or a registrar can present is parsed here, in one place. May import
`ledger.chain`, `ledger.store` (a meter's stored readings, and its key history from the read
model) and the top-level modules (`errors`, `settings`, `redaction`).
"""
