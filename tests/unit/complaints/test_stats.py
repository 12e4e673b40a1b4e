"""ledger.complaints.stats: the monthly statistics as a pure function of chain events."""

from __future__ import annotations

import pytest

from ledger.complaints.model import ComplaintEvent
from ledger.complaints.sla import ServiceLevels, Targets
from ledger.complaints.stats import InvalidMonth, month_bounds, monthly_statistics, nearest_rank

NOV_2026 = 1_793_491_200  # 2026-11-01T00:00:00Z
DEC_2026 = 1_796_083_200
LEVELS = ServiceLevels()  # 30 min / 2 h / 8 h
CUSTOMER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


class Events:
    """Builds a chain's events in order (block numbers rise with each)."""

    def __init__(self) -> None:
        self.events: list[ComplaintEvent] = []

    def add(self, complaint_id: int, step: str, at: int, round_: int = 1, **extra: object) -> None:
        self.events.append(
            ComplaintEvent(
                complaint_id=complaint_id,
                step=step,
                round=round_,
                at=at,
                block_number=len(self.events) + 1,
                log_index=0,
                **extra,  # type: ignore[arg-type]
            )
        )

    def opened(self, complaint_id: int, at: int, kind: int = 0) -> None:
        self.add(complaint_id, "opened", at, customer=CUSTOMER, subject_kind=kind,
                 subject_ref=bytes(32), text_hash=bytes(32))  # fmt: skip

    def answered(self, complaint_id: int, start: int, after: tuple[int, ...]) -> None:
        """The operator's steps `after[i]` seconds after `start`, as many as given."""
        for step, delay in zip(
            ("responded", "assigned", "planned", "resolved"), after, strict=False
        ):
            self.add(complaint_id, step, start + delay)


def test_month_bounds_are_the_utc_calendar_month() -> None:
    assert month_bounds("2026-11") == (NOV_2026, DEC_2026)


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "26-11", "november", "1969-12"])
def test_a_month_that_is_not_yyyy_mm_is_refused(month: str) -> None:
    with pytest.raises(InvalidMonth):
        month_bounds(month)


def test_nearest_rank_takes_one_of_the_values_never_an_interpolation() -> None:
    values = [10, 20, 30, 40]

    assert (nearest_rank(values, 50), nearest_rank(values, 90)) == (20, 40)


def test_nearest_rank_of_no_values_is_none() -> None:
    assert nearest_rank([], 50) is None


def test_a_complaint_answered_on_time_meets_every_target() -> None:
    chain = Events()
    chain.opened(1, NOV_2026 + 100)
    chain.answered(1, NOV_2026 + 100, (600, 3600, 7200, 9000))

    stats = monthly_statistics(chain.events, month="2026-11", as_of=DEC_2026, levels=LEVELS)

    assert stats.count == 1 and stats.breaches == ()
    assert [(s.step, s.taken, s.median_s, s.share_met_bp) for s in stats.steps] == [
        ("responded", 1, 600, 10_000),
        ("assigned", 1, 3600, 10_000),
        ("planned", 1, 7200, 10_000),
        ("resolved", 1, 9000, None),
    ]


def test_a_late_response_is_on_the_negative_list_with_its_delay() -> None:
    chain = Events()
    chain.opened(1, NOV_2026)
    chain.answered(1, NOV_2026, (1800 + 45,))

    stats = monthly_statistics(chain.events, month="2026-11", as_of=NOV_2026 + 1900, levels=LEVELS)

    (breach,) = stats.breaches
    assert (breach.complaint_id, breach.step, breach.answered, breach.delay_s) == (
        1,
        "responded",
        True,
        45,
    )


def test_a_complaint_never_answered_breaches_each_step_once_overdue() -> None:
    chain = Events()
    chain.opened(1, NOV_2026)
    as_of = NOV_2026 + 3 * 3600  # response and assignment overdue, the plan not yet

    stats = monthly_statistics(chain.events, month="2026-11", as_of=as_of, levels=LEVELS)

    assert [(b.step, b.answered, b.delay_s) for b in stats.breaches] == [
        ("responded", False, 3 * 3600 - 1800),
        ("assigned", False, 3600),
    ]
    planned = next(s for s in stats.steps if s.step == "planned")
    assert (planned.due, planned.met, planned.share_met_bp) == (0, 0, None)


def test_share_met_counts_overdue_steps_as_due_and_rounds_down() -> None:
    chain = Events()
    for complaint_id, delay in ((1, 60), (2, 120), (3, 4000)):
        chain.opened(complaint_id, NOV_2026 + complaint_id)
        chain.answered(complaint_id, NOV_2026 + complaint_id, (delay,))

    stats = monthly_statistics(chain.events, month="2026-11", as_of=DEC_2026, levels=LEVELS)

    responded = stats.steps[0]
    assert (responded.due, responded.met, responded.share_met_bp) == (3, 2, 6666)
    assert (responded.median_s, responded.p90_s) == (120, 4000)


def test_rounds_started_in_another_month_are_left_out() -> None:
    chain = Events()
    chain.opened(1, NOV_2026 - 10)
    chain.opened(2, DEC_2026)

    stats = monthly_statistics(chain.events, month="2026-11", as_of=DEC_2026 + 10, levels=LEVELS)

    assert (stats.count, stats.breaches) == (0, ())


def test_a_reopening_starts_a_round_counted_in_its_month() -> None:
    chain = Events()
    chain.opened(1, NOV_2026 - 86_400)
    chain.answered(1, NOV_2026 - 86_400, (60, 60, 60, 60))
    chain.add(1, "reopened", NOV_2026 + 10, round_=2, text_hash=bytes(32))
    chain.add(1, "responded", NOV_2026 + 10 + 2000, round_=2)

    stats = monthly_statistics(chain.events, month="2026-11", as_of=NOV_2026 + 2100, levels=LEVELS)

    assert (stats.count, stats.reopened) == (0, 1)
    assert [(b.round, b.step, b.delay_s) for b in stats.breaches] == [(2, "responded", 200)]


def test_events_after_as_of_are_ignored() -> None:
    chain = Events()
    chain.opened(1, NOV_2026)
    chain.answered(1, NOV_2026, (600,))

    stats = monthly_statistics(chain.events, month="2026-11", as_of=NOV_2026 + 300, levels=LEVELS)

    assert stats.steps[0].taken == 0


def test_a_kind_with_its_own_targets_is_measured_against_them() -> None:
    levels = ServiceLevels.from_overrides(Targets(), {"outage": {"response_s": 300}})
    chain = Events()
    chain.opened(1, NOV_2026, kind=3)  # outage
    chain.answered(1, NOV_2026, (600,))

    stats = monthly_statistics(chain.events, month="2026-11", as_of=NOV_2026 + 700, levels=levels)

    assert [(b.step, b.target_s, b.delay_s) for b in stats.breaches] == [("responded", 300, 300)]
