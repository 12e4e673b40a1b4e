"""The chain stage: JSON-RPC client, Solidity compiler, deployment record, one transaction sender
per operator key, and the generated contract reference.

Owns everything that talks to an EVM node or builds what is sent to one. May import
`ledger.errors`, `ledger.settings` and `ledger.redaction` only: every other stage calls the chain
through this package, never the other way round.
"""
