"""A simulated market day on Anvil, audited from the signed readings alone.

20 households (5 with PV) trade a past day through a real `ledger serve` on an Anvil whose clock
starts before that day (`ledger.sim.market_day.run_market_day`). The audit then recomputes every
settlement the way an outside auditor would, from the gateway's public reading endpoint and the
chain, with its own code: each reading's P-256 signature under the key the MeterRegistry holds,
its leaf and Merkle proof against the root the ReadingLedger holds, the boundary readings by the
documented rule, each meter's energy per slot, delivery allocated in settlement order with
per-(meter, slot) accounting, and the money by the documented rounding. Nothing of
`ledger.market.service` is used for it.

A second, smaller day runs through the console command `ledger market-day`, which brings its own
chain (Ganache, the command's default) and gateway. The big day runs on Anvil as the simulated
month does: its 86 orders, 38 settlements and hundreds of anchoring and clock transactions are
mined and answered faster there (the fixture's setup took 71 s and 90 s on Ganache, 40 s and
47 s on Anvil, runs alternated on this machine), and the day's flow on Ganache is the small day's.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from eth_abi.abi import decode as abi_decode
from eth_utils.crypto import keccak

from ledger.anchoring.merkle import verify
from ledger.chain.client import Chain, LocalChain, connect, free_port
from ledger.chain.deployment import Deployment, ensure_deployed
from ledger.settings import DEV_OPERATOR_KEY
from ledger.sim.day_plan import day_start_of
from ledger.sim.market_day import CHAIN_LEAD_S, run_market_day
from tests.fixtures.gateway import (
    LEDGER_BIN,
    OPERATOR_HEADERS,
    OPERATOR_TOKEN,
    ledger_env,
    start_gateway,
)

pytestmark = [pytest.mark.chain, pytest.mark.slow]

DAY = "2026-06-21"
SEED = 7
HOUSEHOLDS = 20
PV = 5
READINGS_PER_METER = 98  # day start - 900 s to day end, every 900 s
READING_TYPES = ["bytes32", "uint256", "bytes32", "uint64", "uint64", "uint64", "uint64", "uint32"]
READING_TAG = keccak(text="EnergyLedger.Reading.v1")
LEAF_TAG_V2 = keccak(text="EnergyLedger.AnchoredReading.v2")
P256 = 0
SETTLED = 2
ZERO_ADDRESS = "0x" + "00" * 20


@dataclass
class Day:
    summary: dict[str, Any]
    chain: Chain
    deployment: Deployment
    base_url: str


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Day]:
    """The 20-household day, traded through a `ledger serve` on a chain with a past clock."""
    tmp = tmp_path_factory.mktemp("market-day")
    day_start = day_start_of(DAY)
    node = LocalChain(
        kind="anvil",
        port=free_port(),
        start_time=day_start - CHAIN_LEAD_S,
        log_path=tmp / "anvil.log",
    )
    node.start()
    try:
        env = ledger_env(
            tmp / "data",
            "anvil",
            free_port(),
            LEDGER_RPC_URL=node.rpc_url,
            LEDGER_OPERATOR_KEY=DEV_OPERATOR_KEY,
            LEDGER_ANCHOR_INTERVAL_S="0.5",
        )
        gateway = start_gateway(env, tmp / "gateway.log")
        try:
            chain = connect(node.rpc_url, DEV_OPERATOR_KEY)
            deployment = ensure_deployed(chain, tmp / "data")  # what the gateway deployed
            assert not deployment.deployed_now
            summary = run_market_day(
                gateway.base_url,
                chain,
                deployment,
                day_start=day_start,
                households=HOUSEHOLDS,
                pv=PV,
                seed=SEED,
                operator_token=OPERATOR_TOKEN,
            )
            yield Day(summary, chain, deployment, gateway.base_url)
        finally:
            gateway.stop()
    finally:
        node.stop()


# --- the auditor's own code -------------------------------------------------------------------


class TradeView(NamedTuple):
    """`IEnergyMarket.Trade`, field by field."""

    offer_id: int
    seller: str
    delivery_start: int
    buyer: str
    quantity_wh: int
    seller_meter: bytes
    buyer_meter: bytes
    price_per_kwh: int
    delivered_wh: int
    state: int
    escrow: int
    paid: int


@dataclass(frozen=True)
class Checked:
    """A reading as served by the gateway, decoded from its signed bytes, with the checks."""

    seq: int
    timestamp: int
    import_wh: int
    export_wh: int
    signature_ok: bool
    anchored_ok: bool


@dataclass(frozen=True)
class Recomputed:
    delivered_wh: int
    escrow: int
    paid: int
    refunded: int
    limited_by_earlier_export: bool


@dataclass
class Audit:
    slot_s: int
    trades: dict[int, TradeView]
    settled: list[dict[str, Any]]  # TradeSettled args, in settlement order
    readings: dict[bytes, list[Checked]]
    boundaries: dict[tuple[bytes, int], Checked]
    recomputed: dict[int, Recomputed]


def fetch_readings(http: httpx.Client, meter: bytes) -> list[dict[str, Any]]:
    """Every stored reading of the meter, seq 0 up to the first seq not stored."""
    served = []
    while True:
        answer = http.get(
            f"/v1/meters/0x{meter.hex()}/readings/{len(served)}", headers=OPERATOR_HEADERS
        )
        if answer.status_code == 404:
            return served
        answer.raise_for_status()
        served.append(answer.json())


def p256_signature_ok(public_key: bytes, canonical: bytes, signature: bytes) -> bool:
    """Raw r || s over SHA-256(canonical), as docs/reading-format.md specifies."""
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
    der = utils.encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        key.verify(der, canonical, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def check_reading(
    served: dict[str, Any], meter: bytes, chain_id: int, key: tuple[Any, ...], root_of: Any
) -> Checked:
    canonical = bytes.fromhex(served["canonical"][2:])
    tag, chain, meter_id, seq, timestamp, import_wh, export_wh, status = abi_decode(
        READING_TYPES, canonical
    )
    # The served fields are only a convenience: everything used below comes from signed bytes.
    assert (tag, chain, meter_id) == (READING_TAG, chain_id, meter)
    assert (seq, timestamp, import_wh, export_wh, status) == (
        served["seq"],
        served["timestamp"],
        served["import_wh"],
        served["export_wh"],
        served["status"],
    )
    algorithm, valid_from, revoked_at, public_key = key
    assert algorithm == P256 and valid_from <= timestamp and revoked_at == 0
    signature_ok = p256_signature_ok(public_key, canonical, bytes.fromhex(served["signature"][2:]))
    # The version-2 leaf (docs/reading-format.md): the fields, then the hashes of the signed bytes
    # and of the signature (raw r || s as the simulated meters send it).
    signature = bytes.fromhex(served["signature"][2:])
    leaf = keccak(keccak(LEAF_TAG_V2 + canonical[32:] + keccak(canonical) + keccak(signature)))
    anchor = served["anchor"]
    anchored_ok = anchor is not None and verify(
        [bytes.fromhex(p[2:]) for p in anchor["proof"]], root_of(anchor["batch_id"]), leaf
    )
    return Checked(seq, timestamp, import_wh, export_wh, signature_ok, anchored_ok)


def boundary_reading(readings: list[Checked], time: int, window: int) -> Checked:
    """The FIRST reading at or after `time`, taken before `time + window`, whose predecessor
    (seq - 1) was taken before `time`."""
    by_seq = {r.seq: r for r in readings}
    first = min((r for r in readings if r.timestamp >= time), key=lambda r: r.seq)
    assert first.timestamp < time + window
    if first.seq > 0:
        assert by_seq[first.seq - 1].timestamp < time
    return first


@pytest.fixture(scope="module")
def audit(day: Day) -> Audit:
    market = day.deployment.energy_market
    registry = day.deployment.meter_registry
    ledger = day.deployment.reading_ledger
    slot_s = int(market.functions.slotSeconds().call())
    window = int(market.functions.boundaryWindow().call())
    count = int(market.functions.tradeCount().call())
    trades = {i: TradeView(*market.functions.trade(i).call()) for i in range(1, count + 1)}
    logs = sorted(
        market.events.TradeSettled().get_logs(from_block=0),
        key=lambda log: (log["blockNumber"], log["logIndex"]),
    )
    settled = [dict(log["args"]) for log in logs]

    roots: dict[int, bytes] = {}

    def root_of(batch_id: int) -> bytes:
        if batch_id not in roots:
            roots[batch_id] = bytes(ledger.functions.batchRoot(batch_id).call())
        return roots[batch_id]

    meters = {t.seller_meter for t in trades.values()} | {t.buyer_meter for t in trades.values()}
    readings: dict[bytes, list[Checked]] = {}
    with httpx.Client(base_url=day.base_url, timeout=30) as http:
        for meter in sorted(meters):
            assert int(registry.functions.keyEpochCount(meter).call()) == 1
            key = tuple(registry.functions.keyEpoch(meter, 0).call())
            readings[meter] = [
                check_reading(served, meter, day.chain.chain_id, key, root_of)
                for served in fetch_readings(http, meter)
            ]

    boundaries = {}
    for t in trades.values():
        for meter in (t.seller_meter, t.buyer_meter):
            for time in (t.delivery_start, t.delivery_start + slot_s):
                boundaries[(meter, time)] = boundary_reading(readings[meter], time, window)
    return Audit(
        slot_s,
        trades,
        settled,
        readings,
        boundaries,
        allocate(trades, [e["tradeId"] for e in settled], boundaries, slot_s),
    )


def allocate(
    trades: dict[int, TradeView],
    order: list[int],
    boundaries: dict[tuple[bytes, int], Checked],
    slot_s: int,
    *,
    book: bool = True,
) -> dict[int, Recomputed]:
    """Delivery and money of each trade, settled in `order`: delivered = min(contracted, the
    seller's export in the slot not yet booked, the buyer's import in the slot not yet booked).
    `book=False` forgets what earlier trades took (the double counting the market must avoid)."""
    export_booked: dict[tuple[bytes, int], int] = defaultdict(int)
    import_booked: dict[tuple[bytes, int], int] = defaultdict(int)
    result = {}
    for trade_id in order:
        t = trades[trade_id]
        start, end = t.delivery_start, t.delivery_start + slot_s
        seller_slot, buyer_slot = (t.seller_meter, start), (t.buyer_meter, start)
        exported = (
            boundaries[(t.seller_meter, end)].export_wh
            - boundaries[(t.seller_meter, start)].export_wh
        )
        imported = (
            boundaries[(t.buyer_meter, end)].import_wh
            - boundaries[(t.buyer_meter, start)].import_wh
        )
        export_left = exported - export_booked[seller_slot]
        import_left = imported - import_booked[buyer_slot]
        delivered = min(t.quantity_wh, export_left, import_left)
        if book:
            export_booked[seller_slot] += delivered
            import_booked[buyer_slot] += delivered
        escrow = (t.quantity_wh * t.price_per_kwh + 999) // 1000  # rounded up
        paid = delivered * t.price_per_kwh // 1000  # rounded down
        result[trade_id] = Recomputed(
            delivered_wh=delivered,
            escrow=escrow,
            paid=paid,
            refunded=escrow - paid,
            limited_by_earlier_export=(
                delivered == export_left < min(t.quantity_wh, import_left)
                and export_left < exported
            ),
        )
    return result


# --- the tests --------------------------------------------------------------------------------


def test_every_reading_of_a_trading_meter_is_signed_by_its_meter_and_anchored(
    audit: Audit,
) -> None:
    assert audit.readings
    for meter, readings in audit.readings.items():
        assert [r.seq for r in readings] == list(range(READINGS_PER_METER)), meter
        assert all(r.signature_ok for r in readings), meter
        assert all(r.anchored_ok for r in readings), meter


def test_every_trade_is_settled(day: Day, audit: Audit) -> None:
    assert len(audit.trades) == day.summary["trades"] > 0
    assert sorted(e["tradeId"] for e in audit.settled) == sorted(audit.trades)
    assert all(t.state == SETTLED for t in audit.trades.values())


def test_every_settlement_equals_the_recomputation_from_the_readings(audit: Audit) -> None:
    for event in audit.settled:
        trade_id = event["tradeId"]
        expected = audit.recomputed[trade_id]
        view = audit.trades[trade_id]
        assert (event["deliveredWh"], event["paid"], event["refunded"]) == (
            expected.delivered_wh,
            expected.paid,
            expected.refunded,
        ), trade_id
        assert (view.delivered_wh, view.paid, view.escrow) == (
            expected.delivered_wh,
            expected.paid,
            expected.escrow,
        ), trade_id


def test_the_recomputation_catches_double_counting_and_another_settlement_order(
    audit: Audit,
) -> None:
    def delivered(recomputed: dict[int, Recomputed]) -> dict[int, int]:
        return {i: r.delivered_wh for i, r in recomputed.items()}

    order = [e["tradeId"] for e in audit.settled]
    chain = {e["tradeId"]: e["deliveredWh"] for e in audit.settled}
    assert delivered(audit.recomputed) == chain
    unbooked = allocate(audit.trades, order, audit.boundaries, audit.slot_s, book=False)
    assert delivered(unbooked) != chain
    reversed_order = allocate(audit.trades, order[::-1], audit.boundaries, audit.slot_s)
    assert delivered(reversed_order) != chain


def test_pinned_boundaries_are_the_first_readings_at_or_after_each_boundary(
    day: Day, audit: Audit
) -> None:
    pinned = {
        (bytes(log["args"]["meterId"]), log["args"]["time"]): log["args"]
        for log in day.deployment.energy_market.events.BoundaryPinned().get_logs(from_block=0)
    }
    assert set(pinned) == set(audit.boundaries)
    for key, reading in audit.boundaries.items():
        args = pinned[key]
        assert (args["seq"], args["importWh"], args["exportWh"]) == (
            reading.seq,
            reading.import_wh,
            reading.export_wh,
        ), key
        assert reading.timestamp == key[1]  # readings every 900 s: the one taken at the boundary


def test_balances_are_mints_less_escrows_plus_refunds_and_payments(day: Day, audit: Audit) -> None:
    token = day.deployment.settlement_token
    minted: dict[str, int] = defaultdict(int)
    for log in token.events.Transfer().get_logs(from_block=0):
        if log["args"]["from"] == ZERO_ADDRESS:
            minted[log["args"]["to"]] += log["args"]["value"]
    customers = [c["address"] for c in day.summary["customers"]]
    assert set(minted) <= set(customers)
    expected = {address: minted[address] for address in customers}
    for trade_id, trade in audit.trades.items():
        again = audit.recomputed[trade_id]
        expected[trade.buyer] += again.refunded - again.escrow
        expected[trade.seller] += again.paid
    for customer in day.summary["customers"]:
        assert customer["minted"] == minted[customer["address"]]
    for address, balance in expected.items():
        assert token.functions.balanceOf(address).call() == balance, address
    assert token.functions.balanceOf(day.deployment.energy_market.address).call() == 0


def test_customers_trade_without_ether(day: Day) -> None:
    for customer in day.summary["customers"]:
        assert day.chain.w3.eth.get_balance(customer["address"]) == 0
    assert day.summary["customer_ether_wei"] == 0


def test_the_day_has_shortfalls_shared_offers_and_export_limited_by_earlier_trades(
    audit: Audit,
) -> None:
    short = [
        i for i, t in audit.trades.items() if t.delivered_wh < t.quantity_wh and t.escrow > t.paid
    ]
    trades_per_seller_slot: dict[tuple[bytes, int], int] = defaultdict(int)
    for t in audit.trades.values():
        trades_per_seller_slot[(t.seller_meter, t.delivery_start)] += 1
    assert short
    assert max(trades_per_seller_slot.values()) >= 2
    # No double counting at work: a seller's export ran out for a later trade of its slot.
    assert any(r.limited_by_earlier_export for r in audit.recomputed.values())


def test_the_summary_reports_what_the_chain_settled(day: Day, audit: Audit) -> None:
    summary = day.summary
    assert (summary["households"], summary["pv"]) == (HOUSEHOLDS, PV)
    assert summary["readings_posted"] == HOUSEHOLDS * READINGS_PER_METER
    assert summary["settled"] == summary["trades"] == len(summary["trade_rows"])
    for row in summary["trade_rows"]:
        trade = audit.trades[row["trade_id"]]
        again = audit.recomputed[row["trade_id"]]
        assert (row["quantity_wh"], row["price_per_kwh"], row["slot_start"]) == (
            trade.quantity_wh,
            trade.price_per_kwh,
            trade.delivery_start,
        )
        assert (row["escrow"], row["delivered_wh"], row["paid"], row["refunded"]) == (
            again.escrow,
            again.delivered_wh,
            again.paid,
            again.refunded,
        )
    rows = summary["trade_rows"]
    assert summary["delivered_wh"] == sum(r["delivered_wh"] for r in rows)
    assert summary["paid_total"] + summary["refunded_total"] == summary["escrow_total"]
    assert summary["paid_total"] == sum(again.paid for again in audit.recomputed.values())


# --- the console command ----------------------------------------------------------------------


def test_ledger_market_day_runs_a_small_day_on_its_own_chain_and_gateway() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    done = subprocess.run(
        [str(LEDGER_BIN), "market-day", "--households", "4", "--pv", "1", "--day", DAY,
         "--seed", "3"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["households"], summary["pv"], summary["day"]) == (4, 1, DAY)
    assert summary["readings_posted"] == 4 * READINGS_PER_METER
    assert summary["settled"] == summary["trades"] > 0
    assert summary["delivered_wh"] <= summary["contracted_wh"]
    assert summary["paid_total"] + summary["refunded_total"] == summary["escrow_total"]
    for row in summary["trade_rows"]:
        assert row["paid"] == row["delivered_wh"] * row["price_per_kwh"] // 1000
        assert row["escrow"] == -(-row["quantity_wh"] * row["price_per_kwh"] // 1000)
    assert "settled" in done.stderr  # progress lines
