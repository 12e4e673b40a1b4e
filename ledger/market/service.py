"""The peer-to-peer energy market as the gateway runs it: relaying signed orders, listing offers
and trades, and settling trades from anchored readings.

Orders (`ledger/market/orders.py`) are checked locally and relayed to `EnergyMarket`, the
operator paying the gas. Nothing is mined for a refused order: every relay is one contract call
pre-checked with `eth_call` (`Chain.transact`), and a buyer's token permit travels inside its take
(`takeOfferBySigWithPermit`), never as a transaction of its own.

Where each answer comes from:
- Listings (`offers`, `open_offers`, `trades`, `trades_of`) are queries of the read model the
  event indexer keeps (`ledger/market/indexer.py`): one query, never one RPC per item. They lag
  the chain by at most one indexer poll plus LEDGER_CONFIRMATIONS blocks; after each relay this
  gateway indexes at once, so its own orders show in its next listing.
- One offer or trade by id (`offer`, `trade`), and everything settlement decides on, is read from
  the contract: fresh, one call each.

Settlement needs each meter's boundary readings (the first reading at or after each slot
boundary, and the reading before it, see contracts/interfaces/IEnergyMarket.sol):
`ledger/anchoring/evidence.py` finds them in the store with their Merkle proofs, and
`Market.settle` sends only the boundaries not yet pinned.
"""

from __future__ import annotations

from contextlib import nullcontext

from eth_utils.address import to_checksum_address
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from ledger.anchoring.anchorer import ProofService
from ledger.anchoring.evidence import (
    BoundaryEvidence,
    EvidenceInChallenge,
    EvidenceProvenBad,
    boundary_evidence,
)
from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.market.indexer import EventIndexer
from ledger.market.orders import (
    MarketDomain,
    OfferTerms,
    PermitSignature,
    RelayQuota,
    check_signature,
    offer_typed_data,
    permit_typed_data,
    read_eip712_domain,
    take_typed_data,
)
from ledger.market.views import OfferView, Settlement, TradeState, TradeView, tx_hash_hex
from ledger.readings.fraud_proof import leaf_commitments
from ledger.store.database import Store
from ledger.store.read_model import ReadModel


class Market:
    """Relays orders to the EnergyMarket, lists from the read model, settles with evidence from
    the store."""

    def __init__(
        self,
        chain: Chain,
        deployment: Deployment,
        store: Store,
        proofs: ProofService,
        *,
        read_model: ReadModel,
        indexer: EventIndexer | None = None,
    ) -> None:
        self.chain = chain
        self.contract: Contract = deployment.energy_market
        self.reading_ledger: Contract = deployment.reading_ledger
        self.token: Contract = deployment.settlement_token
        self._store = store
        self._proofs = proofs
        self._read_model = read_model
        self._indexer = indexer
        self._domain: MarketDomain | None = None
        self._token_domain: MarketDomain | None = None
        self._params: tuple[int, int, int] | None = None
        self._min_trade_value: int | None = None

    @property
    def domain(self) -> MarketDomain:
        if self._domain is None:
            self._domain = read_eip712_domain(self.chain, self.contract)
        return self._domain

    @property
    def token_domain(self) -> MarketDomain:
        """The settlement token's EIP-712 domain (for ERC-2612 permits)."""
        if self._token_domain is None:
            self._token_domain = read_eip712_domain(self.chain, self.token)
        return self._token_domain

    def permit_nonce(self, account: str) -> int:
        return int(self.chain.call(self.token.functions.nonces(to_checksum_address(account))))

    def check_permit(self, owner: str, permit: PermitSignature) -> None:
        """Refuses a permit that is not `owner`'s over the token's current permit nonce."""
        typed = permit_typed_data(
            self.token_domain,
            owner,
            self.contract.address,
            permit.value,
            self.permit_nonce(owner),
            permit.deadline,
        )
        check_signature(typed, permit.signature, owner)
        permit.as_tuple()  # refuses a signature that is not 65 bytes

    @property
    def min_trade_value(self) -> int:
        """The least value of an offer or take in this deployment, minor units."""
        if self._min_trade_value is None:
            self._min_trade_value = int(self.chain.call(self.contract.functions.minTradeValue()))
        return self._min_trade_value

    @property
    def parameters(self) -> tuple[int, int, int]:
        """(slot seconds, boundary window, settlement window) of this deployment."""
        if self._params is None:
            f = self.contract.functions
            self._params = (
                int(self.chain.call(f.slotSeconds())),
                int(self.chain.call(f.boundaryWindow())),
                int(self.chain.call(f.settlementWindow())),
            )
        return self._params

    def nonce(self, account: str) -> int:
        return int(self.chain.call(self.contract.functions.nonces(to_checksum_address(account))))

    def chain_time(self) -> int:
        return int(self.chain.w3.eth.get_block("latest")["timestamp"])

    # --- relaying -----------------------------------------------------------------------------

    def relay_offer(
        self,
        terms: OfferTerms,
        seller: str,
        deadline: int,
        signature: bytes,
        *,
        quota: RelayQuota | None = None,
    ) -> tuple[int, TxReceipt]:
        """Checks the seller's signature and sends `createOfferBySig`; returns the offer id.

        A call the contract would refuse is not sent (its eth_call pre-check raises
        ContractRevert); with a `quota`, the relay counts against the seller's.
        """
        typed = offer_typed_data(self.domain, terms, seller, self.nonce(seller), deadline)
        check_signature(typed, signature, seller)
        call = self.contract.functions.createOfferBySig(
            terms.as_tuple(), to_checksum_address(seller), deadline, signature
        )
        with quota.relay(seller) if quota is not None else nullcontext():
            receipt = self.chain.transact(call)
        self._index_now()
        (event,) = self.contract.events.OfferCreated().process_receipt(receipt, errors=DISCARD)
        return int(event["args"]["offerId"]), receipt

    def relay_take(
        self,
        offer_id: int,
        buyer_meter: bytes,
        quantity_wh: int,
        buyer: str,
        deadline: int,
        signature: bytes,
        *,
        permit: PermitSignature | None = None,
        quota: RelayQuota | None = None,
    ) -> tuple[int, TxReceipt]:
        """Checks the buyer's signatures and sends the take (`takeOfferBySig`, or with a permit
        `takeOfferBySigWithPermit`, which uses the permit only if the take goes through); returns
        the trade id.

        One contract call, pre-checked with eth_call before it is sent: a refused take (with or
        without a permit) raises ContractRevert and mines nothing. With a `quota`, the relay
        counts against the buyer's.
        """
        typed = take_typed_data(
            self.domain, offer_id, buyer_meter, quantity_wh, buyer, self.nonce(buyer), deadline
        )
        check_signature(typed, signature, buyer)
        args = (offer_id, buyer_meter, quantity_wh, to_checksum_address(buyer), deadline, signature)
        functions = self.contract.functions
        if permit is None:
            call = functions.takeOfferBySig(*args)
        else:
            self.check_permit(buyer, permit)
            call = functions.takeOfferBySigWithPermit(*args, permit.as_tuple())
        with quota.relay(buyer) if quota is not None else nullcontext():
            receipt = self.chain.transact(call)
        self._index_now()
        (event,) = self.contract.events.OfferTaken().process_receipt(receipt, errors=DISCARD)
        return int(event["args"]["tradeId"]), receipt

    def _index_now(self) -> None:
        """Indexes this gateway's own transaction at once (read your writes in listings)."""
        if self._indexer is not None:
            self._indexer.index_now()

    # --- one item, from the contract ----------------------------------------------------------

    def offer(self, offer_id: int) -> OfferView:
        """The offer as the contract holds it now."""
        o = self.chain.call(self.contract.functions.offer(offer_id))
        return OfferView(
            offer_id=offer_id,
            seller=str(o[0]),
            delivery_start=int(o[1]),
            expiry=int(o[2]),
            seller_meter=bytes(o[3]),
            price_per_kwh=int(o[4]),
            remaining_wh=int(o[5]),
            cancelled=bool(o[6]),
        )

    def trade(self, trade_id: int) -> TradeView:
        """The trade as the contract holds it now."""
        t = self.chain.call(self.contract.functions.trade(trade_id))
        return TradeView(
            trade_id=trade_id,
            offer_id=int(t[0]),
            seller=str(t[1]),
            delivery_start=int(t[2]),
            buyer=str(t[3]),
            quantity_wh=int(t[4]),
            seller_meter=bytes(t[5]),
            buyer_meter=bytes(t[6]),
            price_per_kwh=int(t[7]),
            delivered_wh=int(t[8]),
            state=TradeState(int(t[9])),
            escrow=int(t[10]),
            paid=int(t[11]),
        )

    # --- listings, from the read model --------------------------------------------------------

    def offers(self) -> list[OfferView]:
        """Every indexed offer, oldest first."""
        return [OfferView.of_indexed(o) for o in self._read_model.offers()]

    def open_offers(self) -> list[OfferView]:
        """Indexed offers that can be taken now (chain time), oldest first."""
        now = self.chain_time()
        return [OfferView.of_indexed(o) for o in self._read_model.offers(open_at=now)]

    def trades(self) -> list[TradeView]:
        """Every indexed trade, oldest first."""
        return [TradeView.of_indexed(t) for t in self._read_model.trades()]

    def trades_of(self, account: str) -> list[TradeView]:
        """Indexed trades in which `account` is the buyer or the seller, oldest first."""
        indexed = self._read_model.trades_of(to_checksum_address(account))
        return [TradeView.of_indexed(t) for t in indexed]

    # --- settlement, from the contract and the store ------------------------------------------

    def boundary_evidence(self, meter_id: bytes, time: int) -> BoundaryEvidence:
        """The `BoundaryEvidence` tuple for meter `meter_id` at boundary `time`
        (`ledger.anchoring.evidence.boundary_evidence` with this market's window)."""
        _, window, _ = self.parameters
        return boundary_evidence(
            self._store,
            self._proofs,
            meter_id,
            time,
            window_s=window,
            commitments=leaf_commitments,
        )

    def settlement_evidence(self, trade: TradeView) -> list[BoundaryEvidence]:
        """Evidence for the trade's four boundaries, leaving out those already pinned."""
        slot, _, _ = self.parameters
        needed = []
        for meter_id in (trade.seller_meter, trade.buyer_meter):
            for time in (trade.delivery_start, trade.delivery_start + slot):
                pinned = self.chain.call(self.contract.functions.boundary(meter_id, time))
                if not pinned[3]:
                    needed.append(self.boundary_evidence(meter_id, time))
        self._require_usable_batches(needed)
        return needed

    def _require_usable_batches(self, evidence: list[BoundaryEvidence]) -> None:
        """Refuses, before anything is sent, evidence the market would refuse: from a batch still
        in its challenge period, or proven bad (a refused settle mines nothing)."""
        batch_ids = sorted({anchored[3] for _, *readings in evidence for anchored in readings})
        now = self.chain_time()
        for batch_id in batch_ids:
            _, challenge_ends_at, bad = self.chain.call(
                self.reading_ledger.functions.batchStatus(batch_id)
            )
            if bad:
                raise EvidenceProvenBad(
                    f"batch {batch_id} was proven bad on chain: the trade cannot settle from it "
                    "and is refunded once its settlement window closes"
                )
            if now < int(challenge_ends_at):
                raise EvidenceInChallenge(
                    f"batch {batch_id} is in its challenge period until {int(challenge_ends_at)} "
                    f"(chain time {now}): settle again then"
                )

    def settle(self, trade_id: int) -> Settlement:
        """Settles a trade from the stored, anchored boundary readings (anyone may)."""
        trade = self.trade(trade_id)
        slot, _, window = self.parameters
        end = trade.delivery_start + slot
        settleable = trade.state == TradeState.OPEN and end <= self.chain_time() < end + window
        # Otherwise the contract's own refusal (not over yet, closed, settled) says it best.
        evidence = self.settlement_evidence(trade) if settleable else []
        receipt = self.chain.transact(self.contract.functions.settle(trade_id, evidence))
        self._index_now()
        (event,) = self.contract.events.TradeSettled().process_receipt(receipt, errors=DISCARD)
        args = event["args"]
        return Settlement(
            trade_id=trade_id,
            delivered_wh=int(args["deliveredWh"]),
            paid=int(args["paid"]),
            refunded=int(args["refunded"]),
            tx_hash=tx_hash_hex(receipt),
            block_number=int(receipt["blockNumber"]),
        )

    def refund(self, trade_id: int) -> Settlement:
        """Returns the escrow of a trade whose settlement window has closed (anyone may)."""
        receipt = self.chain.transact(self.contract.functions.refund(trade_id))
        self._index_now()
        (event,) = self.contract.events.TradeRefunded().process_receipt(receipt, errors=DISCARD)
        return Settlement(
            trade_id=trade_id,
            delivered_wh=0,
            paid=0,
            refunded=int(event["args"]["refunded"]),
            tx_hash=tx_hash_hex(receipt),
            block_number=int(receipt["blockNumber"]),
        )
