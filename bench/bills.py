"""Issuing bills at scale: `bills_issued_per_s` and `bill_anchor_gas_per_bill`.

A month of 15-minute readings for each of `customers` customers (one meter each), already in
final anchored batches, and one issuing run over the month: from the store (readings, tariff
assignments, trades) through the bill computation and the canonical documents to one
`BillRegistry.anchorBills` transaction. The figure is bills per second of that run.

What is real and what is set up directly: the chain (a past-clock Anvil), the contracts, the
meters' registrations and the tariff assignments (one transaction each, indexed by the event
indexer) are real. The readings are written straight into the gateway's database and their
batches' roots anchored as opaque values: signing and verifying three million readings would take
the bench an hour, and issuing never re-checks signatures (the ingestion benchmark measures
that). Each row has the size a real one has (256 canonical bytes, a 64-byte signature).
"""

from __future__ import annotations

import calendar
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_account import Account

from ledger.anchoring.merkle import keccak256
from ledger.chain.client import LocalChain, free_port
from ledger.meters.keys import KeyAlgorithm, generate_key
from ledger.node import LedgerNode
from ledger.settings import DEV_OPERATOR_KEY, Settings
from ledger.sim.market_day import advance_chain_to

PROJECT = Path(__file__).resolve().parents[1]
TARIFF = PROJECT / "tariffs" / "household-tou.toml"
INTERVAL_S = 900
METERS_PER_BATCH = 100


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def _month_before(now: int) -> tuple[str, int, int]:
    """The last full calendar month (UTC) before `now`: its label, start and end."""
    today = datetime.fromtimestamp(now, tz=UTC)
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    start = calendar.timegm((year, month, 1, 0, 0, 0))
    days = calendar.monthrange(year, month)[1]
    return f"{year:04d}-{month:02d}", start, start + days * 86_400


def measure_bills(work: Path, *, customers: int, say: Any) -> dict[str, Any]:
    """Sets up `customers` customers with a month of readings each, issues their bills once and
    returns the figures (see the module docstring)."""
    label, month_start, month_end = _month_before(int(time.time()))
    local = LocalChain(
        kind="anvil",
        port=free_port(),
        log_path=work / "bills-anvil.log",
        start_time=month_start - 2 * 86_400,
    )
    local.start()
    try:
        settings = Settings(
            rpc_url=local.rpc_url,
            data_dir=work / "bills",
            operator_key=DEV_OPERATOR_KEY,
            anchor_enabled=False,
        )
        node = LedgerNode.start(settings)
        try:
            return _measure(node, settings, customers, label, month_start, month_end, say)
        finally:
            node.stop()
    finally:
        local.stop()


def _measure(
    node: LedgerNode,
    settings: Settings,
    customers: int,
    label: str,
    month_start: int,
    month_end: int,
    say: Any,
) -> dict[str, Any]:
    say(f"bills: registering {customers} meters and assigning the tariff on chain")
    owners = [
        Account.from_key(keccak256(b"bench-customer-%d" % i)).address for i in range(customers)
    ]
    public_key = generate_key(KeyAlgorithm.P256).public_key()
    chain_now = int(node.chain.w3.eth.get_block("latest")["timestamp"])
    meter_ids = [f"BILL-BENCH-{i:06d}" for i in range(customers)]
    for meter_id, owner in zip(meter_ids, owners, strict=True):
        node.meters.register(meter_id, owner, public_key, chain_now - 3600)
    published = node.billing.publish_tariff(TARIFF.read_bytes(), month_start - 86_400)
    tariff = bytes.fromhex(published["tariff_hash"][2:])
    for owner in owners:
        node.billing.assign_tariff(owner, tariff, month_start - 86_400)

    ticks = (month_end - month_start) // INTERVAL_S + 2  # one before the month, one at its end
    say(f"bills: writing {customers * ticks:,} readings into the store")
    batches = _write_readings(settings.data_dir / "ledger.db", meter_ids, month_start, ticks)
    for batch_id, (root, count) in enumerate(batches, start=1):
        node.chain.transact(
            node.deployment.reading_ledger.functions.anchor(
                batch_id, root, count, month_start - INTERVAL_S, month_end
            )
        )
    advance_chain_to(node.chain, month_end + 60)
    node.indexer.run_once()

    say(f"bills: issuing {customers} bills for {label}")
    began = time.perf_counter()
    result = node.billing.issue(month_start, month_end, label=label)
    elapsed = time.perf_counter() - began
    if len(result.issued) != customers:
        raise RuntimeError(f"issued {len(result.issued)} bills of {customers}: {result.skipped}")
    receipt = node.chain.w3.eth.get_transaction_receipt(result.transaction_hash)  # type: ignore[arg-type]
    gas = int(receipt["gasUsed"])
    return {
        "bills_issued_per_s": round(customers / elapsed, 1),
        "bill_issue_s": round(elapsed, 2),
        "bill_anchor_gas": gas,
        "bill_anchor_gas_per_bill": round(gas / customers, 1),
        "bills_customers": customers,
        "bills_readings_per_customer": ticks,
    }


def _write_readings(
    db_path: Path, meter_ids: list[str], month_start: int, ticks: int
) -> list[tuple[bytes, int]]:
    """Writes every meter's readings, `METERS_PER_BATCH` meters to a final anchored batch, and
    returns each batch's (root, count) for the chain."""
    canonical, signature = bytes(256), bytes(64)
    batches: list[tuple[bytes, int]] = []
    now = datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with sqlite3.connect(db_path) as db:
        for first in range(0, len(meter_ids), METERS_PER_BATCH):
            batch_id = first // METERS_PER_BATCH + 1
            group = meter_ids[first : first + METERS_PER_BATCH]
            rows: list[tuple[Any, ...]] = []
            for meter_id in group:
                raw = meter_id.encode().ljust(32, b"\0")
                imported = exported = 0
                for seq in range(ticks):
                    hour = (seq // 4) % 24
                    imported += 60 + (120 if 17 <= hour <= 21 else 0) + seq % 11
                    exported += 150 if 10 <= hour <= 14 and meter_id.endswith("0") else 0
                    rows.append(
                        (
                            raw,
                            _u64(seq),
                            _u64(month_start - INTERVAL_S + seq * INTERVAL_S),
                            _u64(imported),
                            _u64(exported),
                            canonical,
                            signature,
                            raw[:24] + _u64(seq),  # a distinct 32-byte leaf
                            f"{meter_id}-{seq}",
                            now,
                            batch_id,
                            len(rows),
                        )
                    )
            db.executemany(
                "INSERT INTO readings (meter_id, seq, timestamp, import_wh, export_wh, status, "
                "canonical, signature, key_epoch, leaf, receipt_id, received_at, batch_id, "
                "leaf_index) VALUES (?, ?, ?, ?, ?, 0, ?, ?, 0, ?, ?, ?, ?, ?)",
                rows,
            )
            root = keccak256(b"bench-batch-%d" % batch_id)
            db.execute(
                "INSERT INTO batches (batch_id, root, count, from_ts, to_ts, status, created_at, "
                "anchored_at, final_at) VALUES (?, ?, ?, ?, ?, 'anchored', ?, ?, ?)",
                (batch_id, root, len(rows), _u64(0), _u64(0), now, now, now),
            )
            batches.append((root, len(rows)))
    return batches
