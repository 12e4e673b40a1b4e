"""Admission of reading batches (ledger/readings/admission.py): the in-flight bound per process,
the anchoring-backlog bound, and the time each refusal asks the client to wait."""

from __future__ import annotations

import pytest

from ledger.readings.admission import Admission, AnchoringBacklog, GatewaySaturated


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def admission(
    *, max_in_flight: int = 2, max_pending: int = 1_000, pending: list[int] | None = None
) -> Admission:
    counts = pending if pending is not None else [0]
    return Admission(
        max_in_flight=max_in_flight,
        max_pending=max_pending,
        count_pending=lambda: counts[0],
        anchored_per_s=100.0,
        pending_refresh_s=0.5,
        monotonic=Clock(),
    )


def test_batches_up_to_the_in_flight_bound_are_admitted() -> None:
    gate = admission(max_in_flight=2)
    gate.enter()
    gate.enter()
    assert gate.in_flight == 2


def test_a_batch_over_the_in_flight_bound_is_refused_with_429_and_retry_after() -> None:
    gate = admission(max_in_flight=2)
    gate.enter()
    gate.enter()
    with pytest.raises(GatewaySaturated) as refused:
        gate.enter()
    assert (refused.value.code, refused.value.http_status) == ("gateway_saturated", 429)
    assert refused.value.retry_after_s == 1
    assert gate.in_flight == 2  # the refused batch is not counted


def test_a_batch_that_ends_frees_its_place() -> None:
    gate = admission(max_in_flight=1)
    with gate.admitted():
        pass
    with gate.admitted():
        assert gate.in_flight == 1
    assert gate.in_flight == 0


def test_a_batch_that_fails_frees_its_place() -> None:
    gate = admission(max_in_flight=1)
    with pytest.raises(RuntimeError), gate.admitted():
        raise RuntimeError("the store broke")
    assert gate.in_flight == 0


def test_a_backlog_over_the_bound_refuses_batches_with_503_anchoring_backlog() -> None:
    gate = admission(max_pending=1_000, pending=[1_250])
    gate.refresh_pending()
    with pytest.raises(AnchoringBacklog) as refused:
        gate.enter()
    assert (refused.value.code, refused.value.http_status) == ("anchoring_backlog", 503)
    assert gate.in_flight == 0


def test_a_backlog_refusal_asks_for_the_time_the_anchorer_needs_to_get_under_the_bound() -> None:
    gate = admission(max_pending=1_000, pending=[1_250])  # 250 over, at 100 anchored a second
    gate.refresh_pending()
    with pytest.raises(AnchoringBacklog) as refused:
        gate.enter()
    assert refused.value.retry_after_s == 3


def test_a_backlog_refusal_asks_for_at_most_a_minute() -> None:
    gate = admission(max_pending=1_000, pending=[1_000_000])
    gate.refresh_pending()
    with pytest.raises(AnchoringBacklog) as refused:
        gate.enter()
    assert refused.value.retry_after_s == 60


def test_a_backlog_at_the_bound_still_admits_batches() -> None:
    gate = admission(max_pending=1_000, pending=[1_000])
    gate.refresh_pending()
    gate.enter()
    assert gate.in_flight == 1


def test_the_backlog_is_read_again_only_after_the_refresh_interval() -> None:
    clock = Clock()
    gate = Admission(
        max_in_flight=1,
        max_pending=10,
        count_pending=lambda: 0,
        anchored_per_s=1.0,
        pending_refresh_s=0.5,
        monotonic=clock,
    )
    assert gate.pending_is_stale()  # never read
    gate.refresh_pending()
    clock.now += 0.4
    assert not gate.pending_is_stale()
    clock.now += 0.1
    assert gate.pending_is_stale()
