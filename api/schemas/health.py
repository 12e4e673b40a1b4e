"""`GET /healthz`: chain, contracts, database and anchoring, as `LedgerNode.health()` has them."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ChainHealth(BaseModel):
    chain_id: int
    rpc_url: str
    latest_block: int
    managed: str | None = Field(description="ganache/anvil when the gateway started the chain")
    ok: bool


class DatabaseHealth(BaseModel):
    backend: str = Field(description="sqlite or postgresql")
    path: str | None = Field(default=None, description="SQLite: the database file")
    journal_mode: str | None = Field(default=None, description="SQLite: wal")
    synchronous: str | None = Field(default=None, description="SQLite: FULL")
    url: str | None = Field(default=None, description="PostgreSQL: the URL, password hidden")
    synchronous_commit: str | None = Field(default=None, description="PostgreSQL: on")
    fsync: str | None = Field(default=None, description="PostgreSQL: on")
    reconnects: int | None = Field(
        default=None, description="PostgreSQL: connections replaced since start (server restarts)"
    )
    schema_version: int


class AnchoringHealth(BaseModel):
    enabled: bool
    state: str = Field(
        description="starting, idle, anchoring, standby (another gateway holds the anchoring "
        "lease), chain_unavailable, store_unavailable, stuck (needs an operator) or disabled"
    )
    last_error: str | None
    pending_readings: int = Field(description="stored readings in no batch yet")
    unanchored_batches: int = Field(
        description="batch intents committed but not yet seen anchored on chain"
    )
    unfinal_batches: int = Field(
        description="batches anchored but not yet LEDGER_CONFIRMATIONS deep (proofs not final)"
    )
    last_anchored_batch: int | None
    confirmations: int = Field(description="LEDGER_CONFIRMATIONS: blocks on top before final")


class IndexerHealth(BaseModel):
    state: str = Field(
        description="starting, catching_up, current (indexed to head - confirmations at its "
        "last pass), chain_unavailable or store_unavailable (retried with backoff)"
    )
    last_error: str | None
    indexed_block: int | None = Field(description="the read model holds every event up to here")
    confirmations: int = Field(description="LEDGER_CONFIRMATIONS: blocks left unindexed on top")


class HealthPublic(BaseModel):
    status: str
    chain: ChainHealth
    contracts: dict[str, str]
    database: DatabaseHealth
    indexer: IndexerHealth
    anchoring: AnchoringHealth
