"""The market day's plan: households (a customer account and a smart meter each, derived from
the seed), their day-ahead forecasts, and the offers and takes they make (`plan_day`); pure, no
chain or gateway. `ledger.sim.market_day` runs the plan.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ec
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from ledger.chain.deployment import MarketParameters
from ledger.market.views import payment_for
from ledger.sim.fleet import (
    J_PER_WH,
    FleetMeter,
    MeterKind,
    SimulationError,
    interval_energy_j,
    make_fleet,
)

READING_INTERVAL_S = 900
"""The meters' reading interval (the simulator's profile resolution)."""
FORECAST_SUN_PCT = 70
"""Sunshine the day-ahead forecast assumes: the mean of the simulator's 40..100 % draw."""
OFFER_SHARE_PCT = 90
"""Share of its forecast surplus a PV household offers."""
MIN_OFFER_WH = 100
"""Slots where a household's offer would be smaller than this are not offered."""
BUYERS_PER_SLOT_DIVISOR = 4
"""A quarter of the buyers (at least one) trade in each slot with offers."""
PRICE_RANGE = (180_000, 320_000)
"""A seller's base price, minor units per kWh (0.18 to 0.32); each offer varies it by up to
PRICE_STEP."""
PRICE_STEP = 30_000
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class MarketDayError(SimulationError):
    """The market day cannot run (bad arguments, a chain clock past the day) or went wrong."""

    code = "market_day_failed"


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: the meter's state changes
class Household:
    """A customer: an account (no ether) and its smart meter, with or without PV."""

    index: int
    account: LocalAccount
    meter: FleetMeter

    @property
    def meter_id(self) -> str:
        return self.meter.meter_id

    @property
    def has_pv(self) -> bool:
        return self.meter.kind is MeterKind.PV


@dataclass(frozen=True, eq=False)
class PlannedOffer:
    """One offer of the day-ahead plan (two equal offers are still two offers)."""

    seller: Household
    slot_start: int
    quantity_wh: int
    price_per_kwh: int


@dataclass(frozen=True)
class PlannedTake:
    buyer: Household
    offer: PlannedOffer
    quantity_wh: int


@dataclass(frozen=True)
class DayPlan:
    """The day-ahead market: offers and takes, before anything is sent."""

    offers: list[PlannedOffer]
    takes: list[PlannedTake]


def customer_account(seed: int, index: int) -> LocalAccount:
    """Household `index`'s account; the key follows from the seed alone (demo keys only)."""
    account: LocalAccount = Account.from_key(
        keccak(text=f"ledger-market-day:{seed}:customer:{index}")
    )
    return account


def meter_key(seed: int, index: int) -> ec.EllipticCurvePrivateKey:
    """Household `index`'s P-256 meter key, derived from the seed (so a day is reproducible)."""
    secret = int.from_bytes(keccak(text=f"ledger-market-day:{seed}:meter:{index}"), "big")
    return ec.derive_private_key(secret % (_P256_ORDER - 1) + 1, ec.SECP256R1())


def make_households(households: int, pv: int, *, seed: int, prefix: str) -> list[Household]:
    """`households` customers of which `pv` (chosen by the seed) have PV; meter seqs from 0."""
    check_counts(households, pv)
    fleet = make_fleet(
        households,
        seed=seed,
        pv_share=pv / households,
        keys=[meter_key(seed, i) for i in range(households)],
        prefix=prefix,
    )
    if sum(m.kind is MeterKind.PV for m in fleet) != pv:
        raise MarketDayError(f"the fleet did not get exactly {pv} PV meters")
    for meter in fleet:
        meter.state.next_seq = 0
    return [
        Household(index=i, account=customer_account(seed, i), meter=meter)
        for i, meter in enumerate(fleet)
    ]


def check_counts(households: int, pv: int) -> None:
    if households < 2:
        raise MarketDayError("a market needs at least two households")
    if not 1 <= pv < households:
        raise MarketDayError(f"pv must be between 1 and {households - 1} (some must buy)")


def check_day_over(day_start: int) -> None:
    if day_start + 86_400 > time.time():
        raise MarketDayError(
            "the day is not over yet: the gateway refuses readings from the future, "
            "simulate a past day"
        )


def forecast_wh(meter: FleetMeter, begin: int, end: int) -> tuple[int, int]:
    """(import, export) Wh the meter is expected to measure over [begin, end) in average
    weather (sunshine `FORECAST_SUN_PCT`, load 100 %), interval by interval as it measures."""
    imported = exported = 0
    for moment in range(begin, end, READING_INTERVAL_S):
        i, e = interval_energy_j(meter, moment, moment + READING_INTERVAL_S, 100, FORECAST_SUN_PCT)
        imported += i
        exported += e
    return imported // J_PER_WH, exported // J_PER_WH


def plan_day(
    households: list[Household],
    *,
    day_start: int,
    slot_s: int,
    seed: int,
    min_trade_value: int = MarketParameters.min_trade_value,
) -> DayPlan:
    """Offers of every PV household for each slot it forecasts a surplus in, and the takes of
    the buyers drawn for that slot, cheapest offer first (deterministic under the seed); a take
    worth less than `min_trade_value` is left out."""
    rng = random.Random(f"{seed}:market-day")
    sellers = [h for h in households if h.has_pv]
    buyers = [h for h in households if not h.has_pv]
    base_price = {h.index: rng.randint(*PRICE_RANGE) for h in sellers}
    per_slot = max(1, len(buyers) // BUYERS_PER_SLOT_DIVISOR)
    offers: list[PlannedOffer] = []
    takes: list[PlannedTake] = []
    for slot_start in range(day_start, day_start + 86_400, slot_s):
        slot_offers = []
        for seller in sellers:
            _, surplus = forecast_wh(seller.meter, slot_start, slot_start + slot_s)
            quantity = surplus * OFFER_SHARE_PCT // 100
            if quantity >= MIN_OFFER_WH:
                price = base_price[seller.index] + rng.randint(-PRICE_STEP, PRICE_STEP)
                if payment_for(quantity, price) >= min_trade_value:
                    slot_offers.append(PlannedOffer(seller, slot_start, quantity, price))
        if not slot_offers:
            continue
        offers.extend(slot_offers)
        remaining = {o: o.quantity_wh for o in slot_offers}
        cheapest_first = sorted(slot_offers, key=lambda o: (o.price_per_kwh, o.seller.index))
        for buyer in rng.sample(buyers, per_slot):
            want, _ = forecast_wh(buyer.meter, slot_start, slot_start + slot_s)
            for offer in cheapest_first:
                quantity = min(want, remaining[offer])
                if quantity > 0 and payment_for(quantity, offer.price_per_kwh) >= min_trade_value:
                    takes.append(PlannedTake(buyer, offer, quantity))
                    remaining[offer] -= quantity
                    want -= quantity
    return DayPlan(offers, takes)


def day_start_of(text: str) -> int:
    """Unix time of 00:00 UTC of a `YYYY-MM-DD` day."""
    try:
        day = date.fromisoformat(text)
    except ValueError as error:
        raise MarketDayError(f"day {text!r} is not YYYY-MM-DD") from error
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def yesterday() -> str:
    """Yesterday's date in UTC (the latest day that is wholly in the past)."""
    return (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
