"""A whole simulated month, billed, and every bill recomputed by an independent implementation.

`ledger.sim.month.simulated_month` runs October 2026 (billed in Europe/Berlin, so the month starts
at 22:00 UTC and its last Sunday has 25 hours) for 20 households, 5 with PV, on a past-clock Anvil
and an in-process gateway: a month of signed 15-minute readings, the P2P market on two days, then
one issuing run. The checks then read the raw data themselves (the signed readings' bytes from the
store, decoded here; assignments, trades, runs and the currency from the chain) and:

- recompute every bill with `tests/integration/bill_oracle.py`, a second implementation written
  from docs/bills.md alone, and compare it line by line;
- check every bill's verification package with `ledger verify-bill`'s `verify_bill_package`;
- check the anchoring, the P2P lines and the netting;
- audit the month with `ledger audit` from its reading bundle and bills (the tamper cases, the
  audit through the gateway and the one with the gateway stopped are in test_audit.py, on a
  smaller month).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import decode as abi_decode
from eth_utils.crypto import keccak

from ledger.anchoring.bundle import BundleSelection, export_bundle
from ledger.audit.auditor import AuditOptions, run_audit
from ledger.billing.evidence import bill_evidence, bill_proof
from ledger.billing.verify import verify_bill_package
from ledger.chain.deployment import record_path
from ledger.node import LedgerNode
from ledger.sim.month import simulated_month
from ledger.store.bills import BillStore, StoredBill
from tests.integration.bill_oracle import (
    OracleReading,
    OracleTrade,
    describe_differences,
    recompute_bill,
)

pytestmark = [pytest.mark.chain, pytest.mark.slow]

MONTH = "2026-10"
TIME_ZONE = "Europe/Berlin"
PERIOD = (1790805600, 1793487600)  # 2026-09-30T22:00Z, 2026-10-31T23:00Z (after DST ended)
READING_TYPES = ["bytes32", "uint256", "bytes32", "uint64", "uint64", "uint64", "uint64", "uint32"]
READING_TAG = keccak(text="EnergyLedger.Reading.v1")
SETTLED, OPEN = 2, 1
WORKED_EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "bills"


@dataclass
class Month:
    summary: dict[str, Any]
    node: LedgerNode
    bills: dict[str, StoredBill]  # by customer
    documents: dict[str, dict[str, Any]]
    deployment: Path


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Month]:
    data_dir = tmp_path_factory.mktemp("sim-month") / "data"
    with simulated_month(data_dir, month=MONTH, time_zone=TIME_ZONE) as (summary, _, node):
        store = BillStore(node.store)
        bills = {}
        for row in summary["bills"]:
            stored = store.bill(bytes.fromhex(row["bill_hash"][2:]))
            assert stored is not None
            bills[row["customer"]] = stored
        documents = {c: json.loads(b.document) for c, b in bills.items()}
        deployment = record_path(data_dir, node.chain.chain_id)
        yield Month(summary, node, bills, documents, deployment)


# --- the raw inputs, read here -----------------------------------------------------------------


def signed_readings(node: LedgerNode, meter: bytes) -> list[OracleReading]:
    """The meter's readings in final anchored batches, decoded from the bytes it signed."""
    with node.store.read() as db:
        rows = db.execute(
            "SELECT r.canonical, r.batch_id FROM readings r JOIN batches b "
            "ON b.batch_id = r.batch_id WHERE r.meter_id = ? AND b.status = 'anchored' "
            "AND b.final_at IS NOT NULL",
            (meter,),
        ).fetchall()
    readings = []
    for canonical, batch_id in rows:
        tag, chain_id, meter_id, seq, timestamp, import_wh, export_wh, _ = abi_decode(
            READING_TYPES, bytes(canonical)
        )
        assert (tag, chain_id, meter_id) == (READING_TAG, node.chain.chain_id, meter)
        readings.append(OracleReading(meter, seq, timestamp, import_wh, export_wh, int(batch_id)))
    return sorted(readings, key=lambda r: r.seq)


def chain_trades(node: LedgerNode) -> dict[int, Any]:
    """Every trade on chain by id (`IEnergyMarket.Trade` fields in order)."""
    market = node.deployment.energy_market.functions
    count = int(market.tradeCount().call())
    return {i: market.trade(i).call() for i in range(1, count + 1)}


def recomputed_bill(
    month: Month,
    customer: str,
    meter_text: str,
    trades: dict[int, Any],
    before_netting: dict[tuple[bytes, str, str, str | None], tuple[int, int]] | None = None,
) -> dict[str, Any]:
    node = month.node
    registry = node.deployment.bill_registry.functions
    token = node.deployment.settlement_token.functions
    meter = meter_text.encode().ljust(32, b"\0")
    owner = node.deployment.meter_registry.functions.ownerOf(meter).call()
    assert owner == customer
    assignments = [
        (int(valid_from), bytes(digest))
        for digest, valid_from in (
            registry.assignment(customer, i).call()
            for i in range(int(registry.assignmentCount(customer).call()))
        )
    ]
    texts = {}
    for _, digest in assignments:
        text = BillStore(node.store).tariff_text(digest)
        assert text is not None and keccak(text) == digest
        texts[digest] = text
    slot_s = int(node.deployment.energy_market.functions.slotSeconds().call())
    mine = {
        trade_id: t
        for trade_id, t in trades.items()
        if meter in (bytes(t[5]), bytes(t[6])) and PERIOD[0] <= int(t[2]) < PERIOD[1]
    }
    return recompute_bill(
        chain_id=node.chain.chain_id,
        bill_registry=node.deployment.bill_registry.address,
        customer=customer,
        period_start=PERIOD[0],
        period_end=PERIOD[1],
        label=MONTH,
        meters=[meter],
        readings={meter: signed_readings(node, meter)},
        tariff_texts=texts,
        assignments=assignments,
        trades=[
            OracleTrade(
                trade_id=trade_id,
                seller_meter=bytes(t[5]),
                buyer_meter=bytes(t[6]),
                slot_start=int(t[2]),
                slot_end=int(t[2]) + slot_s,
                delivered_wh=int(t[8]),
                paid=int(t[11]),
            )
            for trade_id, t in mine.items()
            if int(t[9]) == SETTLED
        ],
        pending_trades=[trade_id for trade_id, t in mine.items() if int(t[9]) == OPEN],
        currency=(str(token.symbol().call()), int(token.decimals().call())),
        before_netting=before_netting,
    )


# --- the checks --------------------------------------------------------------------------------


def test_the_oracle_rebuilds_the_worked_example_of_docs_bills_byte_for_byte() -> None:
    inputs = json.loads((WORKED_EXAMPLE / "example-inputs.json").read_text())

    def raw(text: str) -> bytes:
        return bytes.fromhex(text[2:])

    texts = {name: (WORKED_EXAMPLE / name).read_bytes() for name in inputs["tariff_files"]}
    readings: dict[bytes, list[OracleReading]] = defaultdict(list)
    for r in inputs["readings"]:
        meter = raw(r["meter_id"])
        readings[meter].append(
            OracleReading(
                meter, r["seq"], r["timestamp"], r["import_wh"], r["export_wh"], r["batch_id"]
            )
        )
    document = recompute_bill(
        chain_id=inputs["chain_id"],
        bill_registry=inputs["bill_registry"],
        customer=inputs["customer"],
        period_start=inputs["period_start"],
        period_end=inputs["period_end"],
        label=inputs["period_label"],
        meters=[raw(m) for m in inputs["meters"]],
        readings=readings,
        tariff_texts={keccak(text): text for text in texts.values()},
        assignments=[
            (a["valid_from"], keccak(texts[a["tariff_file"]])) for a in inputs["assignments"]
        ],
        trades=[
            OracleTrade(
                t["trade_id"],
                raw(t["seller_meter"]),
                raw(t["buyer_meter"]),
                t["slot_start"],
                t["slot_end"],
                t["delivered_wh"],
                t["paid"],
            )
            for t in inputs["trades"]
        ],
        pending_trades=inputs["pending_trades"],
        currency=(inputs["currency"][0], inputs["currency"][1]),
    )
    expected = json.loads((WORKED_EXAMPLE / "example-bill.json").read_text())
    assert describe_differences(expected, document) == []
    changed = json.loads(json.dumps(expected))
    changed["lines"][0]["amount_minor"] += 1
    assert describe_differences(changed, document) == [
        f"line 0 (grid_import peak average_rate) amount_minor: issued "
        f"{changed['lines'][0]['amount_minor']}, recomputed {document['lines'][0]['amount_minor']}"
    ]
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical.encode() == (WORKED_EXAMPLE / "example-bill.canonical.json").read_bytes()


def test_the_month_bills_every_household_for_the_whole_month_in_one_run(month: Month) -> None:
    summary = month.summary
    assert (summary["households"], summary["pv"]) == (20, 5)
    assert (summary["period_start"], summary["period_end"]) == PERIOD
    assert len(month.bills) == 20 and {b.run_id for b in month.bills.values()} == {
        summary["run_id"]
    }
    assert summary["readings_posted"] == 20 * ((PERIOD[1] - PERIOD[0]) // 900 + 2)
    for document in month.documents.values():
        assert document["period"] == {"start": PERIOD[0], "end": PERIOD[1], "label": MONTH}
        assert not any(line["estimated"] for line in document["lines"])


def test_every_bill_is_anchored_in_the_runs_root_on_chain(month: Month) -> None:
    registry = month.node.deployment.bill_registry.functions
    run_id = month.summary["run_id"]
    root, count, start, end, *_ = registry.run(run_id).call()
    assert "0x" + bytes(root).hex() == month.summary["root"]
    assert (count, start, end) == (20, *PERIOD)
    store = BillStore(month.node.store)
    for stored in month.bills.values():
        proof = bill_proof(store, stored)
        assert registry.verifyBill(run_id, stored.bill_hash, proof).call() is True
        assert keccak(stored.document) == stored.bill_hash


def test_an_independent_recomputation_gives_every_bill_line_for_line(month: Month) -> None:
    trades = chain_trades(month.node)
    differences = {}
    for row in month.summary["bills"]:
        customer = row["customer"]
        recomputed = recomputed_bill(month, customer, row["meter_id"], trades)
        found = describe_differences(month.documents[customer], recomputed)
        if found:
            differences[row["meter_id"]] = found[:20]
    assert not differences, json.dumps(differences, indent=1)


def test_verify_bill_passes_on_every_bills_package(month: Month) -> None:
    failed = {}
    for customer, stored in month.bills.items():
        package = bill_evidence(month.node.store, month.node.deployment, stored.bill_hash)
        report = verify_bill_package(package, month.node.chain.w3)
        if not report.ok:
            failed[customer] = [str(f) for f in report.failures][:5]
    assert not failed, failed


def test_buyers_get_purchase_lines_and_sellers_sale_lines_one_per_settled_trade(
    month: Month,
) -> None:
    kinds: dict[str, list[int]] = defaultdict(list)
    for document in month.documents.values():
        for line in document["lines"]:
            if line["kind"] in {"p2p_purchase", "p2p_sale"}:
                kinds[line["kind"]].extend(line["evidence"]["trades"])
    settled = sorted(row["trade_id"] for row in month.summary["trade_rows"])
    assert settled and month.summary["settled"] == len(settled)
    assert sorted(kinds["p2p_purchase"]) == settled
    assert sorted(kinds["p2p_sale"]) == settled


def test_netting_removes_each_delivered_wh_once_and_bills_the_rest_of_every_band(
    month: Month,
) -> None:
    trades = chain_trades(month.node)
    for row in month.summary["bills"]:
        before: dict[tuple[bytes, str, str, str | None], tuple[int, int]] = {}
        recomputed_bill(month, row["customer"], row["meter_id"], trades, before)
        document = month.documents[row["customer"]]
        netted = {"grid_import": 0, "feed_in": 0}
        for line in document["lines"]:
            if line["kind"] not in netted:
                continue
            meter = bytes.fromhex(line["evidence"]["readings"][0][0][2:])
            measured_import, measured_export = before[
                (meter, line["tariff"], line["band"], line["estimate_rule"])
            ]
            measured = measured_import if line["kind"] == "grid_import" else measured_export
            band_netted = measured - line["quantity"]  # grid-billed + netted == measured
            assert 0 <= band_netted <= measured
            netted[line["kind"]] += band_netted
        bought = sum(
            line["quantity"] for line in document["lines"] if line["kind"] == "p2p_purchase"
        )
        sold = sum(line["quantity"] for line in document["lines"] if line["kind"] == "p2p_sale")
        assert netted == {"grid_import": bought, "feed_in": sold}, row["meter_id"]


def test_the_audit_of_the_months_bundle_and_bills_finds_no_discrepancy(
    month: Month, tmp_path: Path
) -> None:
    period = (int(month.summary["period_start"]), int(month.summary["period_end"]))
    bundle = tmp_path / "month.jsonl"
    export_bundle(month.node.store, BundleSelection.time_range(*period), bundle)
    bills = tmp_path / "bills.jsonl"
    with bills.open("w") as out:
        for stored in month.bills.values():
            package = bill_evidence(month.node.store, month.node.deployment, stored.bill_hash)
            out.write(json.dumps(package) + "\n")

    report = run_audit(
        AuditOptions(
            rpc_url=month.node.chain.rpc_url,
            deployment=month.deployment,
            bundle=bundle,
            bills=bills,
            from_ts=period[0],
            to_ts=period[1],
            jobs=2,
        )
    )

    assert report.discrepancies == [], report.summary()
    assert report.counts["bills"] == len(month.bills) == 20
    assert report.counts["meters"] == 20
    assert report.counts["readings"] >= 20 * 31 * 96  # every quarter-hour of every household
