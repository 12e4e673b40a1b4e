"""What the audit reads of the chain: the ledger's contracts named by a deployment record the
auditor holds, checked to be the ledger's code, and their events (`eth_getLogs`), never the
gateway's tables.

`ChainFacts.read(rpc_url, record)` gathers, in one pass over the contracts' logs from their
deployment blocks to the chain's head:

    MeterRegistry  MeterRegistered, MeterKeyRotated, MeterKeyRevoked  -> each meter's key epochs
    ReadingLedger  ReadingBatchAnchored, ReadingBatchProvenBad         -> batch root, count, times;
                                                                          batches proven bad
    EnergyMarket   BoundaryPinned, TradeSettled                        -> pinned registers,
                                                                          settlements, trade(id)
    BillRegistry   BillsAnchored, TariffAssigned                       -> bill runs, customers

A key epoch's revocation time is that of its last `MeterKeyRevoked` event (a revocation may be
moved earlier later, never later), the same rule `MeterRegistry.keyAt` applies to its storage.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils.address import is_address, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.types import FilterParams

from ledger.chain.client import read_only_web3
from ledger.chain.compiler import compile_contracts
from ledger.errors import ChainUnavailable, LedgerError
from ledger.meters.keys import KeyAlgorithm
from ledger.meters.registry import KeyEpochView

LOG_RANGE_BLOCKS = 5_000
"""Most blocks one `eth_getLogs` request spans (public endpoints cap the range)."""
AUDITED_CONTRACTS = ("MeterRegistry", "ReadingLedger", "EnergyMarket", "BillRegistry")
OPTIONAL_CONTRACTS = ("ComplaintRegistry",)
"""Audited when the record names them (a record from before complaints has none)."""


class AuditInputError(LedgerError):
    """The audit cannot start: a missing or unreadable input (deployment record, bundle, bills),
    or a chain or contracts other than the record names. Exit status 2."""

    code = "audit_input_error"
    http_status = 422


@dataclass(frozen=True)
class ChainBatch:
    """A `ReadingBatchAnchored` event."""

    batch_id: int
    root: bytes
    count: int
    from_ts: int
    to_ts: int
    block_number: int


@dataclass(frozen=True)
class PinnedBoundary:
    """A `BoundaryPinned` event: a meter's registers at a slot boundary, from reading `seq`."""

    meter_id: bytes
    time: int
    seq: int
    import_wh: int
    export_wh: int


@dataclass(frozen=True)
class Settlement:
    """A `TradeSettled` event with the trade's terms (`EnergyMarket.trade(id)`)."""

    trade_id: int
    delivered_wh: int
    paid: int
    refunded: int
    seller_meter: bytes
    buyer_meter: bytes
    slot_start: int
    quantity_wh: int
    price_per_kwh: int
    escrow: int


@dataclass(frozen=True)
class BillRun:
    """A `BillsAnchored` event."""

    run_id: int
    root: bytes
    bill_count: int
    period_start: int
    period_end: int


@dataclass
class ChainFacts:
    """Everything the audit takes from the chain (see the module docstring)."""

    chain_id: int
    addresses: dict[str, str]
    head: int
    slot_s: int
    boundary_window_s: int
    meters: dict[bytes, tuple[KeyEpochView, ...]] = field(default_factory=dict)
    batches: dict[int, ChainBatch] = field(default_factory=dict)
    boundaries: dict[tuple[bytes, int], PinnedBoundary] = field(default_factory=dict)
    settlements: list[Settlement] = field(default_factory=list)
    bill_runs: dict[int, BillRun] = field(default_factory=dict)
    customers: list[str] = field(default_factory=list)
    proven_bad: dict[int, tuple[bytes, int]] = field(default_factory=dict)
    """Batches a fraud proof marked bad: the (meter, seq) of the reading that proved it."""
    w3: Web3 | None = None
    complaint_registry: Contract | None = None

    @classmethod
    def read(cls, rpc_url: str, record_path: Path) -> ChainFacts:
        """Connects, checks the record's contracts, and reads their events.

        Raises:
            AuditInputError: the record is unreadable, names another chain, or an address
                holds other code than the ledger's contract.
            ChainUnavailable: the endpoint does not answer.
        """
        w3 = read_only_web3(rpc_url, timeout_s=60)
        try:
            chain_id = int(w3.eth.chain_id)
            head = int(w3.eth.block_number)
        except Exception as error:  # noqa: BLE001 - any transport failure means unreachable
            raise ChainUnavailable(rpc_url=rpc_url, reason=str(error)) from error
        addresses, blocks = load_record(record_path, chain_id)
        contracts = bind_contracts(w3, addresses)
        market = contracts["EnergyMarket"].functions
        facts = cls(
            chain_id=chain_id,
            addresses=addresses,
            head=head,
            slot_s=int(market.slotSeconds().call()),
            boundary_window_s=int(market.boundaryWindow().call()),
            w3=w3,
            complaint_registry=contracts.get("ComplaintRegistry"),
        )
        start = min((blocks.get(name, 0) for name in AUDITED_CONTRACTS), default=0)
        facts._read_events(w3, contracts, start, head)
        return facts

    def _read_events(self, w3: Web3, contracts: dict[str, Contract], first: int, last: int) -> None:
        events: dict[tuple[str, bytes], Any] = {}
        for name, event_names in (
            ("MeterRegistry", ("MeterRegistered", "MeterKeyRotated", "MeterKeyRevoked")),
            ("ReadingLedger", ("ReadingBatchAnchored", "ReadingBatchProvenBad")),
            ("EnergyMarket", ("BoundaryPinned", "TradeSettled")),
            ("BillRegistry", ("BillsAnchored", "TariffAssigned")),
        ):
            contract = contracts[name]
            for event_name in event_names:
                event = contract.events[event_name]()
                topic = bytes.fromhex(str(event.topic).removeprefix("0x"))
                events[(str(contract.address).lower(), topic)] = event
        addresses = sorted({to_checksum_address(a) for a, _ in events})
        topics = sorted({"0x" + t.hex() for _, t in events})
        epochs: dict[bytes, dict[int, list[Any]]] = defaultdict(dict)
        customers: dict[str, None] = {}
        settled: list[tuple[int, int, int, int]] = []
        for start in range(first, last + 1, LOG_RANGE_BLOCKS):
            logs = w3.eth.get_logs(
                FilterParams(
                    address=addresses,
                    fromBlock=start,
                    toBlock=min(last, start + LOG_RANGE_BLOCKS - 1),
                    topics=[topics],
                )
            )
            for entry in sorted(logs, key=lambda x: (int(x["blockNumber"]), int(x["logIndex"]))):
                if not entry["topics"]:
                    continue
                found = events.get((str(entry["address"]).lower(), bytes(entry["topics"][0])))
                if found is None:
                    continue
                decoded = found.process_log(entry)
                name, args = decoded["event"], decoded["args"]
                if name == "MeterRegistered":
                    epochs[bytes(args["meterId"])][0] = [
                        int(args["algorithm"]), bytes(args["publicKey"]),
                        int(args["validFrom"]), 0,
                    ]  # fmt: skip
                elif name == "MeterKeyRotated":
                    epochs[bytes(args["meterId"])][int(args["epoch"])] = [
                        int(args["algorithm"]), bytes(args["publicKey"]),
                        int(args["validFrom"]), 0,
                    ]  # fmt: skip
                elif name == "MeterKeyRevoked":
                    epoch = epochs[bytes(args["meterId"])].get(int(args["epoch"]))
                    if epoch is not None:
                        epoch[3] = int(args["revokedAt"])
                elif name == "ReadingBatchAnchored":
                    batch_id = int(args["batchId"])
                    self.batches[batch_id] = ChainBatch(
                        batch_id,
                        bytes(args["root"]),
                        int(args["count"]),
                        int(args["fromTimestamp"]),
                        int(args["toTimestamp"]),
                        int(entry["blockNumber"]),
                    )
                elif name == "ReadingBatchProvenBad":
                    self.proven_bad.setdefault(
                        int(args["batchId"]), (bytes(args["meterId"]), int(args["seq"]))
                    )
                elif name == "BoundaryPinned":
                    key = (bytes(args["meterId"]), int(args["time"]))
                    # Pinned once: the contract ignores later evidence for the same boundary.
                    self.boundaries.setdefault(
                        key,
                        PinnedBoundary(
                            key[0],
                            key[1],
                            int(args["seq"]),
                            int(args["importWh"]),
                            int(args["exportWh"]),
                        ),  # fmt: skip
                    )
                elif name == "TradeSettled":
                    settled.append(
                        (int(args["tradeId"]), int(args["deliveredWh"]), int(args["paid"]),
                         int(args["refunded"]))
                    )  # fmt: skip
                elif name == "BillsAnchored":
                    run_id = int(args["runId"])
                    self.bill_runs[run_id] = BillRun(
                        run_id,
                        bytes(args["root"]),
                        int(args["billCount"]),
                        int(args["periodStart"]),
                        int(args["periodEnd"]),
                    )
                elif name == "TariffAssigned":
                    customers[to_checksum_address(args["customer"])] = None
        self.meters = {
            meter: tuple(
                KeyEpochView(index, KeyAlgorithm(a), key, valid_from, revoked)
                for index, (a, key, valid_from, revoked) in sorted(found.items())
            )
            for meter, found in epochs.items()
        }
        self.customers = list(customers)
        market = contracts["EnergyMarket"].functions
        for trade_id, delivered, paid, refunded in settled:
            # IEnergyMarket.Trade: offerId, seller, deliveryStart, buyer, quantityWh, sellerMeter,
            # buyerMeter, pricePerKWh, deliveredWh, state, escrow, paid
            t = market.trade(trade_id).call()
            self.settlements.append(
                Settlement(
                    trade_id=trade_id,
                    delivered_wh=delivered,
                    paid=paid,
                    refunded=refunded,
                    seller_meter=bytes(t[5]),
                    buyer_meter=bytes(t[6]),
                    slot_start=int(t[2]),
                    quantity_wh=int(t[4]),
                    price_per_kwh=int(t[7]),
                    escrow=int(t[10]),
                )
            )


def load_record(path: Path, chain_id: int) -> tuple[dict[str, str], dict[str, int]]:
    """The contract addresses and deployment blocks of a deployment record
    (`<data dir>/deployments/<chain id>.json`, as `ledger deploy` writes it).

    Raises:
        AuditInputError: unreadable, not a record, another chain's, or a contract missing.
    """
    try:
        record = json.loads(path.read_text())
        contracts = record["contracts"]
        recorded_chain = int(record.get("chainId", chain_id))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise AuditInputError(f"deployment record {path}: not readable as one: {error}") from None
    if recorded_chain != chain_id:
        raise AuditInputError(
            f"deployment record {path} is for chain {recorded_chain}; the RPC serves {chain_id}"
        )
    addresses: dict[str, str] = {}
    for name in AUDITED_CONTRACTS:
        address = contracts.get(name) if isinstance(contracts, dict) else None
        if not isinstance(address, str) or not is_address(address):
            raise AuditInputError(f"deployment record {path} names no {name} address")
        addresses[name] = to_checksum_address(address)
    for name in OPTIONAL_CONTRACTS:
        address = contracts.get(name) if isinstance(contracts, dict) else None
        if address is not None:
            if not isinstance(address, str) or not is_address(address):
                raise AuditInputError(f"deployment record {path}: {name} is not an address")
            addresses[name] = to_checksum_address(address)
    blocks_raw = record.get("blocks", {})
    blocks = {
        name: int(block)
        for name, block in (blocks_raw.items() if isinstance(blocks_raw, dict) else ())
        if name in addresses and isinstance(block, int)
    }
    return addresses, blocks


def bind_contracts(w3: Web3, addresses: dict[str, str]) -> dict[str, Contract]:
    """The record's contracts, each checked to hold this build's code and to be linked to the
    record's others (the market's and the bill registry's ReadingLedger and MeterRegistry).

    Raises:
        AuditInputError: other code at an address, or links to other contracts.
    """
    artifacts = compile_contracts()
    contracts: dict[str, Contract] = {}
    for name, address in addresses.items():
        code = bytes(w3.eth.get_code(to_checksum_address(address)))
        if not artifacts[name].runtime_code_matches(code):
            raise AuditInputError(f"the code at {address} is not the ledger's {name}")
        contracts[name] = w3.eth.contract(
            address=to_checksum_address(address), abi=artifacts[name].abi
        )
    market = contracts["EnergyMarket"].functions
    links = {
        ("EnergyMarket", "ReadingLedger"): market.readingLedger().call(),
        ("EnergyMarket", "MeterRegistry"): market.meterRegistry().call(),
        ("BillRegistry", "ReadingLedger"): contracts["BillRegistry"]
        .functions.readingLedger()
        .call(),
    }
    for (holder, name), linked in links.items():
        if to_checksum_address(linked) != addresses[name]:
            raise AuditInputError(
                f"{holder} uses the {name} at {linked}, the record names {addresses[name]}"
            )
    return contracts
