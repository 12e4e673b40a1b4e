"""The running ledger: the chain (started here or reached by URL), its contracts and the store.

`LedgerNode.start()` is what `ledger serve` and `ledger deploy` build on: it starts a managed
Ganache/Anvil when no RPC URL is configured, connects, deploys or re-uses the contracts, and opens
the database. Its Chain sends under the database's transaction sender lock
(ledger/chain/txsender.py), which every worker, anchorer, `ledger` command and gateway on
the same database shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ledger.anchoring.anchorer import Anchorer, AnchorState, ProofService
from ledger.chain.client import Chain, LocalChain, answers_rpc, connect, port_is_free
from ledger.chain.deployment import Deployment, MarketParameters, ensure_deployed
from ledger.chain.txsender import sender_lock_for
from ledger.complaints.registry import ComplaintRegistryClient
from ledger.complaints.service import ComplaintService
from ledger.complaints.sla import levels_from_settings
from ledger.errors import ChainUnavailable, ToolchainError
from ledger.market.indexer import EventIndexer
from ledger.market.orders import RelayQuota
from ledger.market.service import Market
from ledger.meters.history import MeterHistory
from ledger.meters.registry import MeterAdmin
from ledger.readings.indexed_keys import IndexedKeySource
from ledger.readings.ingest import Ingestor
from ledger.readings.keys import ChainKeySource, KeyCache
from ledger.redaction import redact_url
from ledger.settings import Settings
from ledger.store.database import Store
from ledger.store.read_model import ReadModel

if TYPE_CHECKING:
    from ledger.billing.service import BillingService

PARENT_CHAIN_ENV = "EL_PARENT_STARTED_CHAIN"
"""Set by `ledger serve` for its workers: which chain kind it started (not a LEDGER_* setting)."""


@dataclass
class LedgerNode:
    """Everything a running gateway holds."""

    settings: Settings
    chain: Chain
    deployment: Deployment
    store: Store
    local_chain: LocalChain | None = None
    # In a worker process: the kind of chain the parent `ledger serve` started (for /healthz).
    chain_started_by_parent: str | None = None
    # The key cache the ingestor checks readings with (the revoke route updates it at once).
    keys: KeyCache = field(init=False)
    ingestor: Ingestor = field(init=False)
    anchorer: Anchorer = field(init=False)
    proofs: ProofService = field(init=False)
    # The read model of chain events and the indexer that keeps it current.
    read_model: ReadModel = field(init=False)
    indexer: EventIndexer = field(init=False)
    # Meters' key histories from the read model, the registry where it is behind.
    meter_history: MeterHistory = field(init=False)

    def __post_init__(self) -> None:
        self.read_model = ReadModel(self.store)
        self.indexer = EventIndexer(
            self.chain,
            self.deployment,
            self.read_model,
            confirmations=self.settings.confirmations,
            range_blocks=self.settings.indexer_range_blocks,
            poll_s=self.settings.indexer_poll_s,
        )
        self.meter_history = MeterHistory(
            self.chain,
            self.deployment,
            self.read_model,
            max_gap_blocks=self.settings.indexer_range_blocks,
        )
        # One key cache per node, shared by every request; a new meter's keys come from the
        # read model when it is current (ledger/readings/indexed_keys.py).
        # When the read model is behind the chain, one indexer pass catches it up rather than
        # one registry call per new meter (a fleet's first batch after a restart).
        key_source = IndexedKeySource(
            self.read_model,
            ChainKeySource(self.chain, self.deployment),
            catch_up=self.indexer.index_now,
        )
        self.keys = KeyCache(
            key_source,
            max_meters=self.settings.key_cache_meters,
            revocations=key_source,
            revocation_poll_s=self.settings.key_revocation_poll_s,
        )
        self.ingestor = Ingestor(
            self.store,
            self.keys,
            chain_id=self.chain.chain_id,
            max_batch=self.settings.max_batch,
            clock_skew_s=self.settings.clock_skew_s,
            max_seq_jump=self.settings.max_seq_jump,
        )
        self.anchorer = Anchorer(
            self.store,
            self.chain,
            self.deployment,
            interval_s=self.settings.anchor_interval_s,
            max_readings=self.settings.anchor_max_readings,
            confirmations=self.settings.confirmations,
        )
        self.proofs = ProofService(self.store, head=lambda: int(self.chain.w3.eth.block_number))
        self.market = Market(
            self.chain,
            self.deployment,
            self.store,
            self.proofs,
            read_model=self.read_model,
            indexer=self.indexer,
        )
        if not self.settings.anchor_enabled:
            self.anchorer.state = AnchorState.DISABLED

    def start_anchoring(self) -> None:
        """Starts the background anchorer unless LEDGER_ANCHOR_ENABLED is false."""
        if self.settings.anchor_enabled:
            self.anchorer.start()

    def start_indexing(self) -> None:
        """Starts the background event indexer (every worker runs one; see
        ledger/market/indexer.py on why several are harmless)."""
        self.indexer.start()

    def start_background_work(self) -> None:
        """What a serving gateway process runs beside its requests: the anchorer and the
        indexer. One call for the single-process `ledger serve` and for each worker."""
        self.start_anchoring()
        self.start_indexing()

    @classmethod
    def start(cls, settings: Settings, *, force_deploy: bool = False) -> LedgerNode:
        """Starts or reaches the chain, deploys if needed, and opens the store."""
        # 0700 when created here: the database and chain data are for this user only. An
        # existing directory keeps the mode its owner gave it.
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        local_chain = None
        rpc_url = settings.rpc_url
        if rpc_url is None and not port_is_free("127.0.0.1", settings.chain_port):
            # A managed chain is already up (a running gateway started it): share it rather
            # than fight over its port and database.
            if not answers_rpc(f"http://127.0.0.1:{settings.chain_port}"):
                raise ToolchainError(
                    f"port {settings.chain_port} is taken by something that is not a chain: "
                    "stop it, or set LEDGER_CHAIN_PORT or LEDGER_RPC_URL"
                )
            rpc_url = f"http://127.0.0.1:{settings.chain_port}"
        if rpc_url is None:
            local_chain = LocalChain(
                kind=settings.chain,
                port=settings.chain_port,
                chain_id=settings.chain_id,
                # The chain keeps its state here, so a second `make run` finds the same contracts.
                db_path=settings.data_dir / "chain" / settings.chain,
                log_path=settings.data_dir / f"{settings.chain}.log",
            )
            try:
                local_chain.start()
            except BaseException:  # e.g. SIGTERM while waiting for it to answer
                local_chain.stop()
                raise
            rpc_url = local_chain.rpc_url
        sender_lock = sender_lock_for(settings)
        try:
            chain = connect(rpc_url, settings.signing_key, sender_lock=sender_lock)
            deployment = ensure_deployed(
                chain,
                settings.data_dir,
                force=force_deploy,
                market=MarketParameters(
                    slot_s=settings.market_slot_s,
                    boundary_window_s=settings.market_boundary_window_s,
                    settlement_window_s=settings.market_settlement_window_s,
                    min_trade_value=settings.market_min_trade_value,
                    challenge_period_s=settings.challenge_period_s,
                ),
            )
            store = Store.open(settings)
        except BaseException:
            sender_lock.close()
            if local_chain is not None:
                local_chain.stop()
            raise
        return cls(settings, chain, deployment, store, local_chain)

    @cached_property
    def billing(self) -> BillingService:
        """Tariffs on record and issuing runs (built on first use: a gateway process that never
        bills does not load the billing core)."""
        from ledger.billing.service import BillingService

        return BillingService(
            self.chain,
            self.deployment,
            self.store,
            index_now=self.indexer.index_now,
            workers=self.settings.billing_workers,
        )

    @cached_property
    def complaints(self) -> ComplaintService:
        """Complaints: customers' relayed steps, the operator's, views and statistics."""
        return ComplaintService(
            self.chain,
            ComplaintRegistryClient(self.chain, self.deployment),
            self.store,
            self.read_model,
            levels=levels_from_settings(self.settings),
            quota=RelayQuota(self.store, per_hour=self.settings.relay_quota_per_hour),
            index_now=self.indexer.index_now,
        )

    @property
    def meters(self) -> MeterAdmin:
        return MeterAdmin(self.chain, self.deployment)

    def health(self) -> dict[str, Any]:
        """Chain id, latest block, contract addresses and database status."""
        try:
            latest = self.chain.w3.eth.block_number
        except Exception as error:  # noqa: BLE001 - any transport error means unreachable
            raise ChainUnavailable(rpc_url=self.chain.rpc_url, reason=str(error)) from error
        return {
            "status": "ok",
            "chain": {
                "chain_id": self.chain.chain_id,
                # Shown to anyone who can reach /healthz: without the URL's credentials.
                "rpc_url": redact_url(self.chain.rpc_url),
                "latest_block": latest,
                "managed": (
                    self.local_chain.kind if self.local_chain else self.chain_started_by_parent
                ),
                "ok": True,  # unreachable raised ChainUnavailable above
            },
            "contracts": self.deployment.addresses,
            "database": self.store.status(),
            "indexer": self.indexer.status(),
            "anchoring": {
                **self.anchorer.status(),
                "enabled": self.settings.anchor_enabled,
            },
        }

    def stop(self) -> None:
        """Stops the indexer and the anchorer, closes the store and stops a managed chain."""
        self.indexer.stop()
        self.anchorer.stop()
        self.store.close()
        self.chain.sender_lock.close()
        if self.local_chain is not None:
            self.local_chain.stop()
