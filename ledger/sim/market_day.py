"""A simulated market day: households with and without PV trade a past day on a real chain.

`ledger market-day` (and `run_market_day`, for tests and demos against a running gateway) runs
one UTC day of the P2P market end to end, through the gateway's HTTP API only:

    1. setup        every household gets a customer account (keys derived from the seed) and a
                    smart meter registered to it; buyers get settlement units minted. Customers
                    hold no ether: their orders and token permits are signed here and relayed.
    2. day-ahead    PV households offer a share of their forecast surplus for each daylight slot
                    (one offer per slot, expiring when the slot starts); a quarter of the other
                    households, drawn per slot, take what they forecast to import, cheapest offer
                    first, so one offer is often split between buyers.
    3. the day      slot by slot: the chain's clock moves past the slot's end, the meters' signed
                    readings of the slot are posted, and once the gateway has anchored them
                    every trade of the slot is settled from them.

Forecasts assume average sunshine and load (`FORECAST_SUN_PCT`, 100 % load); the meters then
measure the weather the simulator draws, so some slots deliver less than was contracted (the
buyer is refunded the difference) and a seller whose export falls short serves the trades of a
slot in settlement order. Energy and money are integers throughout (Wh, minor units: millionths
of the currency, the settlement token's 6 decimals). A take worth less than the market's minimum
trade value is not made (the contract would refuse it).

Time: the gateway refuses readings from the future of its wall clock, so the day must be over
(yesterday by default) and the chain's clock must start before it. `ledger market-day` starts its
own Ganache with its clock before the day, its own gateway in this process, and stops both
(`ledger.sim.harness.local_gateway`). Households, forecasts and the day-ahead orders are planned
in `ledger.sim.day_plan`; this module runs the plan and reports the day.

The meters are the fleet simulator's (`ledger.sim.fleet`): its household and PV profiles, integer
registers with a joule carry, and its signing; readings every 900 s, timestamped at interval
ends, so the boundary reading of a slot boundary is the one taken exactly at it.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from web3.types import RPCEndpoint

from ledger.chain.client import Chain
from ledger.chain.deployment import Deployment
from ledger.market.client import MarketClient
from ledger.market.views import escrow_for
from ledger.meters.registry import MeterAdmin
from ledger.sim.day_plan import (
    READING_INTERVAL_S,
    DayPlan,
    Household,
    MarketDayError,
    PlannedOffer,
    check_counts,
    check_day_over,
    day_start_of,
    make_households,
    plan_day,
)
from ledger.sim.fleet import FaultRates, Planned, generate
from ledger.sim.harness import HttpSender, local_gateway

MINT_PER_BUYER = 50_000_000
"""Settlement units minted to each buyer (50.00), more if its takes would escrow more."""
READINGS_BEGIN_S = -2 * READING_INTERVAL_S
"""The meters' first interval begins this long before the day: the first reading (seq 0) is
taken at day start - 900 s, so the boundary reading at day start has a predecessor."""
TRADING_MARGIN_S = 600
"""The chain's clock must be this far before the first offered slot when trading begins."""
CHAIN_LEAD_S = 2 * 3600
"""`ledger market-day` starts the chain's clock this long before the day."""
UPLOAD_DELAY_S = 60
"""The chain's clock is moved this far past a slot's end before its readings are uploaded."""
POST_CHUNK = 1000
"""Readings per POST /v1/readings (the gateway's default limit is 5000)."""
ANCHOR_POLL_S = 0.25
ANCHOR_TIMEOUT_S = 120.0


Progress = Callable[[str], None]


def advance_chain_to(chain: Chain, target: int) -> int:
    """Moves the chain's clock to at least `target` (evm_increaseTime + evm_mine, which Ganache
    and Anvil both know); returns the latest block's time."""
    provider = chain.w3.provider
    while True:
        latest = int(chain.w3.eth.get_block("latest")["timestamp"])
        if latest >= target:
            return latest
        provider.make_request(RPCEndpoint("evm_increaseTime"), [target - latest])
        provider.make_request(RPCEndpoint("evm_mine"), [])


def run_market_day(
    gateway_url: str,
    chain: Chain,
    deployment: Deployment,
    *,
    day_start: int,
    households: int = 20,
    pv: int = 5,
    seed: int = 1,
    prefix: str = "DAY-",
    progress: Progress | None = None,
    operator_token: str | None = None,
) -> dict[str, Any]:
    """Runs one market day against a running gateway and returns a JSON-able summary.

    Args:
        gateway_url: The gateway's base URL.
        operator_token: The gateway's `LEDGER_OPERATOR_TOKEN`: the day waits for its readings'
            anchoring by reading them back, which only their owner, an auditor or the operator
            may do.
        chain: The gateway's chain, connected with the operator key (it registers the meters
            and mints settlement units; it needs the registrar and minter roles).
        deployment: The gateway's contracts on `chain`.
        day_start: 00:00 UTC of the day (a multiple of the market's slot); the day must be over
            by the wall clock, and the chain's clock must be before the day's first offered slot.
        households: Customers in all; `pv` of them have PV and sell, the others buy.
        seed: Decides the households, their keys, the weather and the market's orders.
        prefix: Meter ids are PREFIX000001, ...; they must not be registered yet.
        progress: Called with a line of text at each step.

    The operator sends transactions (registrations, mints) only before the first reading is
    posted, so they never race the gateway's anchorer, which signs with the same account.

    Raises:
        MarketDayError: bad arguments, a chain clock too late, a refused reading, or anchoring
            that does not happen in time.
        GatewayError: the gateway refused an order or a settlement.
    """
    say = progress or (lambda _: None)
    began = time.monotonic()
    client = MarketClient(gateway_url, token=operator_token)
    slot_s = check_market(client, chain, deployment, day_start)
    homes = make_households(households, pv, seed=seed, prefix=prefix)
    plan = plan_day(
        homes,
        day_start=day_start,
        slot_s=slot_s,
        seed=seed,
        min_trade_value=int(client.info()["min_trade_value"]),
    )
    if not plan.takes:
        raise MarketDayError("nobody trades on this day (no PV surplus forecast)")
    first_slot = min(o.slot_start for o in plan.offers)
    now = client.chain_time()
    if now >= first_slot - TRADING_MARGIN_S:
        raise MarketDayError(
            f"the chain's clock ({now}) is too late to trade the slot starting {first_slot}: "
            "start the chain with a clock before the day"
        )

    minted = register_and_mint(
        chain, deployment, homes, plan, valid_from=day_start + READINGS_BEGIN_S
    )
    say(f"registered {len(homes)} meters ({pv} with PV), minted units to {len(minted)} buyers")
    trades = trade_day_ahead(client, plan, minted)
    say(f"day-ahead: {len(plan.offers)} offers, {len(trades)} trades")
    posted, settlements = deliver_and_settle(
        client,
        chain,
        gateway_url,
        homes,
        trades,
        challenge_s=int(chain.call(deployment.reading_ledger.functions.challengePeriod())),
        day_start=day_start,
        slot_s=slot_s,
        seed=seed,
        say=say,
    )

    rows = [trade_row(trade, settlements[int(trade["trade_id"])]) for trade in trades]
    trades_per_seller_slot: dict[tuple[str, int], int] = defaultdict(int)
    for row in rows:
        trades_per_seller_slot[(row["seller_meter"], row["slot_start"])] += 1
    return {
        "day": datetime.fromtimestamp(day_start, UTC).date().isoformat(),
        "day_start": day_start,
        "seed": seed,
        "households": len(homes),
        "pv": sum(h.has_pv for h in homes),
        "slot_s": slot_s,
        "readings_posted": posted,
        "offers": len(plan.offers),
        "offered_wh": sum(o.quantity_wh for o in plan.offers),
        "trades": len(rows),
        "settled": len(settlements),
        "contracted_wh": sum(r["quantity_wh"] for r in rows),
        "delivered_wh": sum(r["delivered_wh"] for r in rows),
        "escrow_total": sum(r["escrow"] for r in rows),
        "paid_total": sum(r["paid"] for r in rows),
        "refunded_total": sum(r["refunded"] for r in rows),
        "short_trades": sum(r["delivered_wh"] < r["quantity_wh"] for r in rows),
        "shared_seller_slots": sum(n > 1 for n in trades_per_seller_slot.values()),
        "customer_ether_wei": sum(chain.w3.eth.get_balance(h.account.address) for h in homes),
        "customers": [
            {
                "meter_id": h.meter_id,
                "address": h.account.address,
                "pv": h.has_pv,
                "minted": minted.get(h, 0),
            }
            for h in homes
        ],
        "trade_rows": rows,
        "elapsed_s": round(time.monotonic() - began, 1),
    }


def check_market(client: MarketClient, chain: Chain, deployment: Deployment, day_start: int) -> int:
    """The market's slot length, after checking that the day can be run against it."""
    info = client.info()
    if (
        int(info["chain_id"]) != chain.chain_id
        or info["market"] != deployment.energy_market.address
    ):
        raise MarketDayError("the gateway runs another chain or market than the one given")
    slot_s = int(info["slot_s"])
    if slot_s % READING_INTERVAL_S or day_start % slot_s:
        raise MarketDayError(
            f"the market's slot ({slot_s} s) must be a multiple of the meters' {READING_INTERVAL_S}"
            " s interval, and the day must start on a slot boundary"
        )
    check_day_over(day_start)
    return slot_s


def register_and_mint(
    chain: Chain,
    deployment: Deployment,
    homes: list[Household],
    plan: DayPlan,
    *,
    valid_from: int,
) -> dict[Household, int]:
    """Registers every meter to its household (its key valid from `valid_from`) and mints each
    buyer's units; returns the mints."""
    admin = MeterAdmin(chain, deployment)
    for home in homes:
        admin.register(home.meter_id, home.account.address, home.meter.key.public_key(), valid_from)
    needed: dict[Household, int] = defaultdict(int)
    for take in plan.takes:
        needed[take.buyer] += escrow_for(take.quantity_wh, take.offer.price_per_kwh)
    token = deployment.settlement_token.functions
    minted: dict[Household, int] = {}
    for home in homes:
        if not home.has_pv:
            minted[home] = max(MINT_PER_BUYER, needed[home])
            chain.transact(token.mint(home.account.address, minted[home]))
    return minted


def trade_day_ahead(
    client: MarketClient, plan: DayPlan, minted: dict[Household, int]
) -> list[dict[str, Any]]:
    """Posts the offers, then the takes (a buyer's first take carries its token permit for
    all it was minted); returns the trades as the gateway answered them."""
    deadline = client.chain_time() + 3600  # chain time: signatures stay valid for this phase
    offer_ids: dict[PlannedOffer, int] = {}
    for offer in plan.offers:
        created = client.offer(
            offer.seller.account,
            offer.seller.meter_id,
            offer.quantity_wh,
            offer.price_per_kwh,
            offer.slot_start,
            offer.slot_start,  # takeable until delivery starts
            deadline=deadline,
        )
        offer_ids[offer] = int(created["offer_id"])
    trades = []
    permitted: set[Household] = set()
    for take in plan.takes:
        buyer = take.buyer
        trades.append(
            client.take(
                buyer.account,
                offer_ids[take.offer],
                buyer.meter_id,
                take.quantity_wh,
                permit_value=None if buyer in permitted else minted[buyer],
                deadline=deadline,
            )
        )
        permitted.add(buyer)
    return trades


def deliver_and_settle(
    client: MarketClient,
    chain: Chain,
    gateway_url: str,
    homes: list[Household],
    trades: list[dict[str, Any]],
    *,
    day_start: int,
    slot_s: int,
    seed: int,
    say: Progress,
    challenge_s: int,
) -> tuple[int, dict[int, dict[str, Any]]]:
    """Walks through the day: per slot, the chain's clock past its end, then (for a slot with
    trades, and at the end of the day) the readings collected since the last upload, and once
    they are anchored and past the ReadingLedger's challenge period (`challenge_s`, the clock
    moved on by it) the slot's settlements. Returns (readings posted, settlements by trade)."""
    day_end = day_start + 86_400
    readings_begin = day_start + READINGS_BEGIN_S
    ticks = generate(
        [h.meter for h in homes],
        chain_id=chain.chain_id,
        start=readings_begin,
        interval_s=READING_INTERVAL_S,
        ticks=(day_end - readings_begin) // READING_INTERVAL_S,
        faults=FaultRates(),
        seed=seed,
    )
    by_slot: dict[int, list[int]] = defaultdict(list)
    for trade in trades:
        by_slot[int(trade["delivery_start"])].append(int(trade["trade_id"]))
    meters_of = {
        int(t["trade_id"]): (str(t["seller_meter"]), str(t["buyer_meter"])) for t in trades
    }
    seq_at: dict[tuple[str, int], int] = {}
    unsent: list[Planned] = []
    posted = 0
    settlements: dict[int, dict[str, Any]] = {}
    sender = HttpSender(gateway_url)
    try:
        for slot_start in range(day_start, day_end, slot_s):
            slot_end = slot_start + slot_s
            advance_chain_to(chain, slot_end + UPLOAD_DELAY_S)
            while not unsent or unsent[-1].reading.timestamp < slot_end:
                for planned in next(ticks):
                    seq_at[(planned.meter_id, planned.reading.timestamp)] = planned.reading.seq
                    unsent.append(planned)
            slot_trades = sorted(by_slot.get(slot_start, []))
            if not slot_trades and slot_end < day_end:
                continue  # nothing to settle: the meters upload with a later slot
            posted += post_readings(sender, unsent)
            unsent = []
            # Each slot boundary's reading and the one before it, for every meter trading.
            meters = sorted({m for trade_id in slot_trades for m in meters_of[trade_id]})
            boundaries = (slot_start, slot_end)
            _wait_anchored(
                client,
                [
                    (meter, seq_at[(meter, moment)])
                    for meter in meters
                    for boundary in boundaries
                    for moment in (boundary - READING_INTERVAL_S, boundary)
                ],
            )
            if slot_trades:
                latest = int(chain.w3.eth.get_block("latest")["timestamp"])
                advance_chain_to(chain, latest + challenge_s)
            for trade_id in slot_trades:
                settlements[trade_id] = client.settle(trade_id)
            if slot_trades:
                say(f"slot {_hhmm(slot_start)}: settled {len(slot_trades)} trade(s)")
    finally:
        sender.close()
    return posted, settlements


def trade_row(trade: dict[str, Any], settled: dict[str, Any]) -> dict[str, Any]:
    return {
        "trade_id": int(trade["trade_id"]),
        "offer_id": int(trade["offer_id"]),
        "slot_start": int(trade["delivery_start"]),
        "seller_meter": trade["seller_meter"],
        "buyer_meter": trade["buyer_meter"],
        "quantity_wh": int(trade["quantity_wh"]),
        "price_per_kwh": int(trade["price_per_kwh"]),
        "escrow": int(trade["escrow"]),
        "delivered_wh": int(settled["delivered_wh"]),
        "paid": int(settled["paid"]),
        "refunded": int(settled["refunded"]),
    }


def post_readings(sender: HttpSender, readings: list[Planned], chunk_size: int = POST_CHUNK) -> int:
    """Posts the readings in chunks; every one must be accepted."""
    for begin in range(0, len(readings), chunk_size):
        chunk = readings[begin : begin + chunk_size]
        refused = [
            (p.meter_id, p.reading.seq, r.get("code"))
            for p, r in zip(chunk, sender(chunk), strict=True)
            if r.get("status") != "accepted"
        ]
        if refused:
            raise MarketDayError(f"the gateway refused {len(refused)} readings: {refused[:5]}")
    return len(readings)


def _wait_anchored(client: MarketClient, readings: list[tuple[str, int]]) -> None:
    """Waits until each (meter, seq) is in an anchored batch (the anchorer runs on its own)."""
    deadline = time.monotonic() + ANCHOR_TIMEOUT_S
    for meter, seq in readings:
        while client.request("GET", f"/v1/meters/{meter}/readings/{seq}")["anchor"] is None:
            if time.monotonic() > deadline:
                raise MarketDayError(
                    f"reading {seq} of meter {meter} was not anchored within "
                    f"{ANCHOR_TIMEOUT_S:.0f} s: is the gateway's anchorer running?"
                )
            time.sleep(ANCHOR_POLL_S)


def _hhmm(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%H:%M")


def run_local_day(
    *,
    day: str,
    households: int = 20,
    pv: int = 5,
    seed: int = 1,
    data_dir: Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """`ledger market-day`: the day on a new Ganache and gateway (in `data_dir`, else a
    temporary directory removed afterwards)."""
    day_start = day_start_of(day)
    check_day_over(day_start)
    check_counts(households, pv)
    if data_dir is not None and data_dir.exists() and any(data_dir.iterdir()):
        raise MarketDayError(f"{data_dir} is not empty: a market day needs a new data directory")
    with tempfile.TemporaryDirectory(prefix="ledger-market-day-") as temporary:
        directory = data_dir if data_dir is not None else Path(temporary)
        with local_gateway(
            directory, chain_start=day_start - CHAIN_LEAD_S, keep_chain=data_dir is not None
        ) as (url, node):
            if progress is not None:
                progress(f"chain {node.chain.rpc_url} (clock from {day} minus 2 h), gateway {url}")
            return run_market_day(
                url,
                node.chain,
                node.deployment,
                day_start=day_start,
                households=households,
                pv=pv,
                seed=seed,
                progress=progress,
                operator_token=node.settings.operator_token,
            )


def say_on_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
