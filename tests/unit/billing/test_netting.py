"""P2P lines and netting: no Wh billed twice, the shortfall order, the total without P2P."""

from __future__ import annotations

import dataclasses

import pytest

from ledger.billing.compute import BillInputError, SettledTrade, compute_bill
from tests.unit.billing.billing_support import (
    DAY,
    HOUR,
    METER,
    MONDAY,
    NEIGHBOUR,
    inputs,
    lines_of,
    quantities,
    readings,
)

START, END = MONDAY, MONDAY + DAY  # valley 0-6, flat 6-18, peak 18-22, valley 22-24


def at(hours: float) -> int:
    return MONDAY + int(hours * HOUR)


def purchase(trade_id: int, slot_hour: float, delivered: int, paid: int = 1000) -> SettledTrade:
    return SettledTrade(
        trade_id, NEIGHBOUR, METER, at(slot_hour), at(slot_hour) + 900, delivered, paid
    )


def sale(trade_id: int, slot_hour: float, delivered: int, paid: int = 1000) -> SettledTrade:
    return SettledTrade(
        trade_id, METER, NEIGHBOUR, at(slot_hour), at(slot_hour) + 900, delivered, paid
    )


# 600 Wh valley (00-06), 1200 flat (06-18), 400 peak (18-22), 200 valley (22-24)
POINTS = [
    (at(0), 0, 0),
    (at(6), 600, 0),
    (at(18), 1800, 1200),
    (at(22), 2200, 1200),
    (at(24), 2400, 1200),
]


def billed(*trades: SettledTrade, points: list = POINTS, pending: tuple[int, ...] = ()) -> dict:
    return compute_bill(
        inputs(START, END, {METER: readings(points)}, trades=trades, pending=pending)
    )


def test_a_purchase_is_a_line_of_what_the_chain_paid() -> None:
    (line,) = lines_of(billed(purchase(7, 12, 300, paid=91234)), "p2p_purchase")
    assert (line["quantity"], line["amount_minor"], line["tariff"], line["unit_price_minor"]) == (
        300,
        91234,
        None,
        None,
    )
    assert line["evidence"] == {"readings": [], "trades": [7]}


def test_a_sale_is_a_negative_line_of_what_the_chain_paid() -> None:
    (line,) = lines_of(billed(sale(8, 12, 300, paid=91234)), "p2p_sale")
    assert (line["quantity"], line["amount_minor"]) == (300, -91234)


def test_a_purchase_is_netted_out_of_the_grid_import_of_its_band() -> None:
    document = billed(purchase(7, 12, 300))
    assert quantities(document) == {"peak": 400, "flat": 900, "valley": 800}
    (flat,) = [line for line in lines_of(document, "grid_import") if line["band"] == "flat"]
    assert flat["evidence"]["trades"] == [7]


def test_a_sale_is_netted_out_of_the_feed_in_of_its_band() -> None:
    document = billed(sale(8, 12, 300))
    assert quantities(document, "feed_in") == {"flat": 900}


def test_a_band_short_of_energy_gives_what_it_has_and_the_rest_comes_peak_flat_valley() -> None:
    points = [(at(0), 0), (at(6), 1000), (at(18), 1100), (at(22), 1150), (at(24), 1150)]
    document = billed(purchase(7, 12, 300), points=points)
    # flat has 100: then peak's 50, then 150 of valley's 1000
    assert quantities(document) == {"peak": 0, "flat": 0, "valley": 850}


def test_delivered_wh_beyond_all_grid_import_are_not_netted_anywhere() -> None:
    points = [(at(0), 0), (at(24), 24)]
    document = billed(purchase(7, 12, 5000), points=points)
    assert quantities(document) == {"peak": 0, "flat": 0, "valley": 0}


def test_a_slot_across_a_band_boundary_is_split_pro_rata_by_seconds() -> None:
    trade = SettledTrade(7, NEIGHBOUR, METER, at(5.75), at(6.25), 9, 1)
    document = billed(trade)
    # floor(9 * 900 / 1800) = 4 from valley, 5 from flat
    assert quantities(document) == {"peak": 400, "flat": 1195, "valley": 796}


def test_trades_take_measured_energy_before_estimated_energy() -> None:
    points = [(at(0), 0), (at(8), 200), (at(16), 1000)]  # the tail 16-24 is estimated
    document = compute_bill(
        inputs(START, END, {METER: readings(points)}, trades=[purchase(7, 12, 300)])
    )
    flat = {
        line["estimated"]: line["quantity"]
        for line in lines_of(document, "grid_import")
        if line["band"] == "flat"
    }
    without = compute_bill(inputs(START, END, {METER: readings(points)}))
    flat_without = {
        line["estimated"]: line["quantity"]
        for line in lines_of(without, "grid_import")
        if line["band"] == "flat"
    }
    assert flat == {False: flat_without[False] - 300, True: flat_without[True]}


def test_the_total_without_p2p_is_the_total_of_the_same_bill_without_trades() -> None:
    trades = (purchase(7, 12, 300, paid=5), sale(8, 19, 100, paid=3))
    with_trades = billed(*trades)
    assert with_trades["without_p2p_total_minor"] == billed()["total_minor"]
    assert with_trades["total_minor"] != billed()["total_minor"]


def test_p2p_lines_count_as_settled_and_not_as_due() -> None:
    document = billed(purchase(7, 12, 300, paid=90000), sale(8, 19, 100, paid=30000))
    assert document["p2p_settled_minor"] == 60000
    assert document["amount_due_minor"] == document["total_minor"] - 60000


def test_open_trades_are_listed_as_pending_without_a_line() -> None:
    document = billed(pending=(12, 4))
    assert document["pending_trades"] == [4, 12]
    assert not lines_of(document, "p2p_purchase")


def test_a_trade_between_other_meters_is_refused() -> None:
    stranger = dataclasses.replace(purchase(7, 12, 300), buyer_meter=bytes(32))
    with pytest.raises(BillInputError) as caught:
        billed(stranger)
    assert caught.value.code == "invalid_bill_inputs"


def test_a_trade_whose_slot_starts_outside_the_period_is_refused() -> None:
    with pytest.raises(BillInputError, match="not in the period"):
        billed(purchase(7, 30, 300))


def test_a_trade_listed_twice_is_refused() -> None:
    with pytest.raises(BillInputError, match="listed twice"):
        billed(purchase(7, 12, 300), purchase(7, 13, 300))
