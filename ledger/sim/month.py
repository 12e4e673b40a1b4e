"""A simulated month: households metered for a calendar month, trading on some days, then billed.

`ledger sim month` (and `simulated_month`, for tests) runs one calendar month of the billing time
zone (`LEDGER_BILLING_TIME_ZONE`) end to end on its own chain and gateway
(`ledger.sim.harness.local_gateway`: a Ganache whose clock starts before the month, the gateway
served from this process):

    1. setup        the households of the market day (`ledger.sim.day_plan.make_households`:
                    accounts and meters derived from the seed, the fleet simulator's profiles),
                    their meters registered with keys valid from the first reading, settlement
                    units minted to the buyers for every trading day; the tariff (default: the
                    example `tariffs/household-tou.toml`) published and assigned to every
                    household from the month's first second, all before the month starts on
                    the chain's clock.
    2. the month    day by day, in order. A day without trading: its signed 15-minute readings
                    are posted in large batches (the gateway's `max_batch`), nothing else. A
                    trading day (`--trading-days`, spread evenly over the month's whole UTC
                    days): the chain's clock is moved to two hours before it, the day-ahead
                    offers and takes are made and the day is delivered and settled slot by slot
                    exactly as `ledger market-day` does it (`ledger.sim.market_day`).
    3. billing      once every reading up to the month's end is in a final anchored batch, the
                    chain's clock is moved past the month's end and one issuing run bills every
                    household (`BillingService.issue`): one root on chain over all the bills.

Readings run without a break from 30 min before the month (seq 0) to its last second: each
meter's registers, seq numbers and joule carries continue from one day to the next, so every bill
is measured, none estimated. The market's orders of each trading day are drawn with the seed
`seed * 1000 + day of month`, so two trading days do not repeat each other.

The summary (JSON) names the trades, the issuing run (id, root, transaction) and every
household's bill: hash, total, amount due, the total without P2P.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ledger.billing.service import IssueResult
from ledger.billing.timeline import month_period
from ledger.market.client import MarketClient
from ledger.node import LedgerNode
from ledger.progress import progress_bar, track
from ledger.sim.day_plan import (
    READING_INTERVAL_S,
    DayPlan,
    Household,
    check_counts,
    make_households,
    plan_day,
)
from ledger.sim.fleet import FaultRates, SimulationError, generate
from ledger.sim.harness import HttpSender, local_gateway
from ledger.sim.market_day import (
    CHAIN_LEAD_S,
    READINGS_BEGIN_S,
    TRADING_MARGIN_S,
    UPLOAD_DELAY_S,
    Progress,
    advance_chain_to,
    check_market,
    deliver_and_settle,
    post_readings,
    register_and_mint,
    trade_day_ahead,
    trade_row,
)

DAY_S = 86_400
EXAMPLE_TARIFF = Path(__file__).resolve().parents[2] / "tariffs" / "household-tou.toml"
"""The tariff every household is billed with unless another file is given."""
METER_PREFIX = "HOME-"
"""Meter ids are HOME-000001, ..."""
CHAIN_KIND = "anvil"
"""The month's chain: Anvil mines and answers several times faster than Ganache, and a month
walks the chain's clock through two trading days slot by slot."""
ANCHOR_INTERVAL_S = 0.2
"""The gateway's anchoring interval: short, as each traded slot waits for its readings' batch."""
ANCHORED_POLL_S = 0.25
ANCHORED_TIMEOUT_S = 600.0
"""How long the month waits for its last readings to be anchored and final before billing."""


@dataclass(frozen=True)
class MonthPlan:
    """What a month runs: its period in the billing time zone and its trading days."""

    label: str
    time_zone: str
    period_start: int
    period_end: int
    trading_days: tuple[int, ...]  # 00:00 UTC of each trading day, in order


def last_full_month(time_zone: str, now: float | None = None) -> str:
    """`YYYY-MM` of the last calendar month (in `time_zone`) that is over."""
    today = datetime.fromtimestamp(time.time() if now is None else now, ZoneInfo(time_zone))
    year, month = (today.year - 1, 12) if today.month == 1 else (today.year, today.month - 1)
    return f"{year:04d}-{month:02d}"


def plan_month(
    label: str, time_zone: str, trading_days: int, *, now: float | None = None
) -> MonthPlan:
    """The month `label` of `time_zone` with `trading_days` whole UTC days of it spread evenly
    (the k-th of n is the day at (2k + 1) / 2n of the month's whole UTC days).

    Raises:
        PeriodError: `label` is not a month or `time_zone` is unknown.
        SimulationError: the month is not over, or has fewer whole UTC days than asked.
    """
    period_start, period_end = month_period(label, time_zone)
    if period_end > (time.time() if now is None else now):
        raise SimulationError(
            f"the month {label} is not over yet in {time_zone}: the gateway refuses readings "
            "from the future, simulate a past month"
        )
    first_day = -(-period_start // DAY_S) * DAY_S
    whole_days = list(range(first_day, period_end - DAY_S + 1, DAY_S))
    if not 0 <= trading_days <= len(whole_days):
        raise SimulationError(
            f"--trading-days must be between 0 and {len(whole_days)} (the whole UTC days of "
            f"{label}), not {trading_days}"
        )
    chosen = tuple(
        whole_days[(2 * k + 1) * len(whole_days) // (2 * trading_days)] for k in range(trading_days)
    )
    return MonthPlan(label, time_zone, period_start, period_end, chosen)


def _day_label(day_start: int) -> str:
    return datetime.fromtimestamp(day_start, UTC).date().isoformat()


def run_month(
    gateway_url: str,
    node: LedgerNode,
    month: MonthPlan,
    *,
    households: int = 20,
    pv: int = 5,
    seed: int = 1,
    tariff: bytes | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Runs the month against the gateway at `gateway_url` served from `node` (the chain's clock
    before the month, no meter registered yet) and returns the JSON-able summary.

    Raises:
        SimulationError: a refused reading, a chain clock too late, anchoring that does not
            happen in time, or a household the issuing run skipped.
        GatewayError: the gateway refused an order or a settlement.
    """
    say = progress or (lambda _: None)
    began = time.monotonic()
    chain, deployment = node.chain, node.deployment
    # The operator's token: the month waits for its readings' anchoring by reading them back.
    client = MarketClient(gateway_url, token=node.settings.operator_token)
    check_counts(households, pv)
    readings_begin = month.period_start + READINGS_BEGIN_S
    if client.chain_time() >= month.period_start - TRADING_MARGIN_S:
        raise SimulationError("the chain's clock must start before the month")
    homes = make_households(households, pv, seed=seed, prefix=METER_PREFIX)
    plans: list[DayPlan] = []
    slot_s = 0
    # Settlement waits this long after the readings are anchored (the batch's challenge period).
    challenge_s = int(chain.call(deployment.reading_ledger.functions.challengePeriod()))
    for day_start in month.trading_days:
        slot_s = check_market(client, chain, deployment, day_start)
        plan = plan_day(
            homes,
            day_start=day_start,
            slot_s=slot_s,
            seed=seed * 1000 + datetime.fromtimestamp(day_start, UTC).day,
            min_trade_value=int(client.info()["min_trade_value"]),
        )
        if not plan.takes:
            raise SimulationError(f"nobody trades on {_day_label(day_start)} (no PV surplus)")
        plans.append(plan)

    everything = DayPlan([o for p in plans for o in p.offers], [t for p in plans for t in p.takes])
    minted = register_and_mint(chain, deployment, homes, everything, valid_from=readings_begin)
    tariff_text = EXAMPLE_TARIFF.read_bytes() if tariff is None else tariff
    published = node.billing.publish_tariff(tariff_text, valid_from=month.period_start)
    tariff_hash = bytes.fromhex(published["tariff_hash"][2:])
    for home in homes:
        node.billing.assign_tariff(home.account.address, tariff_hash, month.period_start)
    say(
        f"registered {len(homes)} meters ({pv} with PV), minted units to {len(minted)} buyers, "
        f"tariff {published['tariff_hash']} assigned to all from {month.label}"
    )

    posted = 0
    trades: list[dict[str, Any]] = []
    settlements: dict[int, dict[str, Any]] = {}
    cursor = readings_begin  # where the meters' next interval begins
    sender = HttpSender(gateway_url)
    # On a terminal only (ledger/progress.py): the lines `say` writes show above it.
    days = progress_bar("month", total=len(month.trading_days), unit="trading days")
    try:
        for day_start, plan in zip(month.trading_days, plans, strict=True):
            posted += _post_span(node, sender, homes, cursor, day_start + READINGS_BEGIN_S, seed)
            advance_chain_to(chain, day_start - CHAIN_LEAD_S)
            first_slot = min(o.slot_start for o in plan.offers)
            if client.chain_time() >= first_slot - TRADING_MARGIN_S:
                raise SimulationError(f"the chain's clock is past {_day_label(day_start)}")
            day_trades = trade_day_ahead(client, plan, minted)
            say(f"{_day_label(day_start)}: {len(plan.offers)} offers, {len(day_trades)} trades")
            day_posted, day_settled = deliver_and_settle(
                client,
                chain,
                gateway_url,
                homes,
                day_trades,
                challenge_s=challenge_s,
                day_start=day_start,
                slot_s=slot_s,
                seed=seed,
                say=lambda _: None,
            )
            say(f"{_day_label(day_start)}: settled {len(day_settled)} trades")
            posted += day_posted
            trades.extend(day_trades)
            settlements.update(day_settled)
            cursor = day_start + DAY_S
            days.advance()
        posted += _post_span(node, sender, homes, cursor, month.period_end, seed)
    finally:
        days.close()
        sender.close()
    say(f"posted {posted} readings; waiting for the last ones to be anchored")
    _wait_all_anchored(node)
    advance_chain_to(chain, month.period_end + UPLOAD_DELAY_S)
    issued = node.billing.issue(
        month.period_start,
        month.period_end,
        label=month.label,
        progress=lambda customers: track(list(customers), "bills", unit="customers"),
    )
    if issued.skipped:
        raise SimulationError(f"the issuing run skipped households: {issued.skipped}")
    say(f"issued {len(issued.issued)} bills in run {issued.run_id}")
    return _summary(node, month, homes, seed, posted, trades, settlements, issued, began)


def _post_span(
    node: LedgerNode, sender: HttpSender, homes: list[Household], begin: int, end: int, seed: int
) -> int:
    """Signs and posts every meter's readings of the intervals in `[begin, end)`, in batches
    of the gateway's largest size."""
    if end <= begin:
        return 0
    ticks = generate(
        [h.meter for h in homes],
        chain_id=node.chain.chain_id,
        start=begin,
        interval_s=READING_INTERVAL_S,
        ticks=(end - begin) // READING_INTERVAL_S,
        faults=FaultRates(),
        seed=seed,
    )
    batch_size = node.settings.max_batch
    posted = 0
    pending = []
    for tick in ticks:
        pending.extend(tick)
        if len(pending) >= batch_size:
            posted += post_readings(sender, pending[:batch_size], batch_size)
            pending = pending[batch_size:]
    return posted + post_readings(sender, pending, batch_size)


def _wait_all_anchored(node: LedgerNode) -> None:
    """Waits until every stored reading is in an anchored batch that is final (the anchorer
    runs on its own): a bill relies only on those."""
    store = node.store
    deadline = time.monotonic() + ANCHORED_TIMEOUT_S
    while store.count_pending() or store.count_unfinal_batches() or store.batches(status="intent"):
        if time.monotonic() > deadline:
            raise SimulationError(
                f"the readings were not all anchored within {ANCHORED_TIMEOUT_S:.0f} s"
            )
        time.sleep(ANCHORED_POLL_S)


def _summary(
    node: LedgerNode,
    month: MonthPlan,
    homes: list[Household],
    seed: int,
    posted: int,
    trades: list[dict[str, Any]],
    settlements: dict[int, dict[str, Any]],
    issued: IssueResult,
    began: float,
) -> dict[str, Any]:
    rows = [trade_row(t, settlements[int(t["trade_id"])]) for t in trades]
    by_customer = {}
    for digest in issued.issued:
        stored = node.billing.bills.bill(bytes.fromhex(digest[2:]))
        if stored is None:
            raise SimulationError(f"bill {digest} was issued but is not stored")
        by_customer[stored.customer] = (digest, stored)
    run = node.billing.bills.run(issued.run_id) if issued.run_id is not None else None
    rows_out = []
    for home in homes:
        digest, stored = by_customer[home.account.address]
        document = json.loads(stored.document)
        rows_out.append(
            {
                "customer": home.account.address,
                "meter_id": home.meter_id,
                "pv": home.has_pv,
                "bill_hash": digest,
                "total_minor": document["total_minor"],
                "amount_due_minor": document["amount_due_minor"],
                "without_p2p_total_minor": document["without_p2p_total_minor"],
                "estimated": stored.estimated,
            }
        )
    return {
        "month": month.label,
        "time_zone": month.time_zone,
        "period_start": month.period_start,
        "period_end": month.period_end,
        "seed": seed,
        "households": len(homes),
        "pv": sum(h.has_pv for h in homes),
        "trading_days": [_day_label(d) for d in month.trading_days],
        "readings_posted": posted,
        "trades": len(rows),
        "settled": len(settlements),
        "delivered_wh": sum(r["delivered_wh"] for r in rows),
        "paid_total": sum(r["paid"] for r in rows),
        "run_id": issued.run_id,
        "root": None if run is None else "0x" + run.root.hex(),
        "transaction_hash": issued.transaction_hash,
        "block_number": issued.block_number,
        "bills": rows_out,
        "trade_rows": rows,
        "elapsed_s": round(time.monotonic() - began, 1),
    }


@contextmanager
def simulated_month(
    data_dir: Path,
    *,
    month: str | None = None,
    time_zone: str = "UTC",
    households: int = 20,
    pv: int = 5,
    trading_days: int = 2,
    seed: int = 1,
    tariff: bytes | None = None,
    keep_chain: bool = False,
    progress: Progress | None = None,
) -> Iterator[tuple[dict[str, Any], str, LedgerNode]]:
    """Runs the month (default: the last one over in `time_zone`) on a new chain and gateway in
    `data_dir` and yields (summary, gateway URL, node) while both still run."""
    check_counts(households, pv)
    plan = plan_month(month or last_full_month(time_zone), time_zone, trading_days)
    with local_gateway(
        data_dir,
        chain_start=plan.period_start - CHAIN_LEAD_S,
        keep_chain=keep_chain,
        anchor_interval_s=ANCHOR_INTERVAL_S,
        billing_time_zone=time_zone,
        chain_kind=CHAIN_KIND,
    ) as (url, node):
        if progress is not None:
            progress(
                f"chain {node.chain.rpc_url} (clock from {plan.label} minus 2 h), gateway {url}"
            )
        summary = run_month(
            url,
            node,
            plan,
            households=households,
            pv=pv,
            seed=seed,
            tariff=tariff,
            progress=progress,
        )
        yield summary, url, node


def run_local_month(
    *,
    data_dir: Path | None = None,
    **options: Any,
) -> dict[str, Any]:
    """`ledger sim month`: the month on a new chain and gateway (in `data_dir`, else a temporary
    directory removed afterwards); returns the summary."""
    if data_dir is not None and data_dir.exists() and any(data_dir.iterdir()):
        raise SimulationError(f"{data_dir} is not empty: a simulated month needs a new directory")
    with tempfile.TemporaryDirectory(prefix="ledger-sim-month-") as temporary:
        directory = data_dir if data_dir is not None else Path(temporary)
        with simulated_month(directory, keep_chain=data_dir is not None, **options) as (
            summary,
            _,
            _,
        ):
            return summary
