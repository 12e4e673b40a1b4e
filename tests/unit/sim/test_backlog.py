"""A backlog after an outage: meters keep their readings while offline and send them at once when
back (`run(..., outage=...)`), and the HTTP sender waits `Retry-After` when the gateway refuses
part of the burst (429/503) and sends the same batch again."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest

from ledger.sim.fleet import FaultRates, Planned, SimulationError, generate
from ledger.sim.harness import HttpSender, Refusal
from ledger.sim.runner import Outage, replay_backlog, run
from tests.fixtures.local_http import local_http_server
from tests.unit.sim.test_simulate import CHAIN_ID, START, FakeGateway, fleet, plan


def ticks(count: int, meters: int = 3) -> Iterator[list[Planned]]:
    return generate(
        fleet(meters),
        chain_id=CHAIN_ID,
        start=START,
        interval_s=900,
        ticks=count,
        faults=FaultRates(),
        seed=1,
    )


class Recorder:
    """Accepts everything; records which ticks' readings each call carried, in order."""

    def __init__(self, calls: list[list[int]], lock: threading.Lock) -> None:
        self.calls = calls
        self.lock = lock

    def __call__(self, batch: Sequence[Planned]) -> list[dict[str, Any]]:
        with self.lock:
            self.calls.append([(p.reading.timestamp - START) // 900 - 1 for p in batch])
        return [{"status": "accepted", "code": None} for _ in batch]


def test_an_outage_keeps_its_ticks_and_sends_them_before_the_next_tick() -> None:
    calls: list[list[int]] = []
    lock = threading.Lock()
    live = Recorder(calls, lock)
    backlog = [Recorder(calls, lock) for _ in range(2)]

    summary = run(
        ticks(6), live, batch_size=100, speed=0,
        outage=Outage(first_tick=1, ticks=3, senders=backlog),
    )  # fmt: skip

    sent_ticks = [sorted(set(call)) for call in calls]
    # Tick 0 goes out before the outage; ticks 1-3 only after it, before tick 4.
    assert sent_ticks[0] == [0]
    before_tick_4 = next(i for i, t in enumerate(sent_ticks) if 4 in t)
    assert sorted({t for call in sent_ticks[1:before_tick_4] for t in call}) == [1, 2, 3]
    assert summary["sent"] == 18 and summary["mismatches"] == 0
    assert summary["backlog"]["readings"] == 9


def test_an_outage_until_the_end_is_sent_when_the_run_ends() -> None:
    calls: list[list[int]] = []
    lock = threading.Lock()

    summary = run(
        ticks(4), Recorder(calls, lock), batch_size=100, speed=0,
        outage=Outage(first_tick=2, ticks=2, senders=[Recorder(calls, lock)]),
    )  # fmt: skip

    assert summary["sent"] == 12
    assert summary["backlog"]["readings"] == 6


def test_a_backlog_keeps_each_meters_readings_in_order_on_one_sender() -> None:
    meters = fleet(5)
    backlog = plan(meters, ticks=8)
    gateways = [FakeGateway(meters) for _ in range(3)]

    answered = replay_backlog(backlog, gateways, batch_size=4)

    assert sum(len(batch) for batch, _ in answered) == len(backlog)
    for gateway in gateways:
        meters_here = {meter for meter, _ in gateway.stored}
        for meter in meters_here:
            seqs = [seq for m, seq in gateway.stored if m == meter]
            assert seqs == sorted(seqs) == list(range(1, 9))  # all of it, in order, here only
        others = [g for g in gateways if g is not gateway]
        assert not meters_here & {m for g in others for m, _ in g.stored}


class _Scripted(BaseHTTPRequestHandler):
    """Answers each POST with the next (status, Retry-After, error code) of `script`, then 202."""

    protocol_version = "HTTP/1.1"
    script: ClassVar[list[tuple[int, str | None, str]]] = []
    posts: ClassVar[int] = 0

    def do_POST(self) -> None:  # noqa: N802 - the http.server interface
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        _Scripted.posts += 1
        headers: dict[str, str] = {}
        if _Scripted.script:
            status, retry_after, code = _Scripted.script.pop(0)
            answer: dict[str, Any] = {"error": {"code": code, "message": "not now"}}
            if retry_after is not None:
                headers["retry-after"] = retry_after
        else:
            status = 202
            answer = {"results": [{"status": "accepted", "code": None} for _ in body["readings"]]}
        data = json.dumps(answer).encode()
        self.send_response(status)
        for name, value in {**headers, "content-type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def scripted_gateway() -> Iterator[str]:
    _Scripted.script = []
    _Scripted.posts = 0
    with local_http_server(_Scripted) as url:
        yield url


def test_the_sender_waits_retry_after_and_sends_a_refused_batch_again(
    scripted_gateway: str,
) -> None:
    _Scripted.script = [(429, "1", "gateway_saturated"), (503, "3", "anchoring_backlog")]
    slept: list[float] = []
    sender = HttpSender(scripted_gateway, sleep=slept.append)
    try:
        results = sender(plan(fleet(1), ticks=2))
    finally:
        sender.close()

    assert [r["status"] for r in results] == ["accepted", "accepted"]
    assert slept == [1, 3]
    assert _Scripted.posts == 3
    assert sender.refusals == [
        Refusal(429, "gateway_saturated", 1),
        Refusal(503, "anchoring_backlog", 3),
    ]


def test_a_503_without_retry_after_is_not_retried(scripted_gateway: str) -> None:
    _Scripted.script = [(503, None, "chain_unavailable")]
    sender = HttpSender(scripted_gateway, sleep=lambda s: None)
    with pytest.raises(SimulationError, match="503.*chain_unavailable"):
        sender(plan(fleet(1), ticks=1))
    sender.close()
    assert _Scripted.posts == 1


def test_the_sender_gives_up_when_retry_after_would_pass_its_deadline(
    scripted_gateway: str,
) -> None:
    _Scripted.script = [(429, "1", "gateway_saturated")] * 5
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    sender = HttpSender(scripted_gateway, give_up_s=2.5, sleep=sleep, clock=lambda: now[0])
    with pytest.raises(SimulationError, match="429.*gateway_saturated"):
        sender(plan(fleet(1), ticks=1))
    sender.close()
    assert _Scripted.posts == 3  # sent at 0, 1 and 2 s; a fourth would be after 2.5 s
