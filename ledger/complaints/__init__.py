"""The complaints stage: customers' complaints and the operator's answers on the chain's clock
(the ComplaintRegistry contract), their service-level targets, the read model of their events
and the monthly statistics an auditor recomputes from those events alone.

Modules: `signing` (the EIP-712 messages a customer signs), `registry` (the contract's client
over the operator's transaction sender), `sla` (targets per category), `stats` (the monthly
statistics, a pure function of chain events), `store` (the read model's queries), `indexer`
(chain events into the read model) and `service` (what the gateway's routes call).

May import `ledger.chain`, `ledger.store` and `ledger.market` (its EIP-712 signing helpers and
the per-signer relay quota).
"""
