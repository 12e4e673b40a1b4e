"""Admission of POST /v1/readings (api/admission.py) around a small ASGI app that records the
bodies it read: a refused batch never reaches the app, and its answer says when to come back."""

from __future__ import annotations

import asyncio

import httpx
from starlette.types import Receive, Scope, Send

from api.admission import ReadingAdmission
from ledger.readings.admission import Admission

LIMIT = 1_000


class HoldingApp:
    """Answers 202 after reading the body; holds the answer while `hold` is not set."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.entered = asyncio.Event()
        self.hold = asyncio.Event()
        self.hold.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        more_body = True
        while more_body:
            message = await receive()
            body += message.get("body", b"")
            more_body = message.get("more_body", False)
        self.bodies.append(body)
        self.entered.set()
        await self.hold.wait()
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def gate(*, max_in_flight: int = 1, max_pending: int = 1_000, pending: int = 0) -> Admission:
    return Admission(
        max_in_flight=max_in_flight,
        max_pending=max_pending,
        count_pending=lambda: pending,
        anchored_per_s=100.0,
    )


def client(app: HoldingApp, admission: Admission) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(
        app=ReadingAdmission(app, admission=admission, max_body_bytes=LIMIT)
    )
    return httpx.AsyncClient(transport=transport, base_url="http://gateway.test")


def test_a_batch_over_the_in_flight_bound_gets_429_with_retry_after_and_is_never_read() -> None:
    app = HoldingApp()
    admission = gate(max_in_flight=1)

    async def run() -> tuple[httpx.Response, httpx.Response]:
        app.hold.clear()
        async with client(app, admission) as c:
            first = asyncio.create_task(c.post("/v1/readings", content=b"first"))
            await app.entered.wait()
            second = await c.post("/v1/readings", content=b"second")
            app.hold.set()
            return await first, second

    first, second = asyncio.run(run())

    assert first.status_code == 202
    assert second.status_code == 429
    assert second.headers["retry-after"] == "1"
    assert second.json()["error"]["code"] == "gateway_saturated"
    assert app.bodies == [b"first"]
    assert admission.in_flight == 0


def test_a_batch_over_the_backlog_bound_gets_503_anchoring_backlog_with_retry_after() -> None:
    app = HoldingApp()

    async def run() -> httpx.Response:
        async with client(app, gate(max_pending=1_000, pending=1_500)) as c:
            return await c.post("/v1/readings", content=b"batch")

    response = asyncio.run(run())

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"  # 500 over the bound at 100 a second
    assert response.json()["error"]["code"] == "anchoring_backlog"
    assert app.bodies == []


def test_other_routes_are_not_counted_or_refused() -> None:
    app = HoldingApp()
    admission = gate(max_in_flight=1, pending=5_000)

    async def run() -> httpx.Response:
        async with client(app, admission) as c:
            return await c.post("/v1/market/offers", content=b"offer")

    assert asyncio.run(run()).status_code == 202
    assert app.bodies == [b"offer"]


def test_a_refused_batch_within_the_size_limit_keeps_its_connection() -> None:
    app = HoldingApp()

    async def run() -> httpx.Response:
        async with client(app, gate(max_pending=1_000, pending=1_500)) as c:
            return await c.post("/v1/readings", content=b"x" * LIMIT)

    assert "connection" not in asyncio.run(run()).headers


def test_a_refused_batch_over_the_size_limit_is_not_read_and_its_connection_closed() -> None:
    app = HoldingApp()

    async def run() -> httpx.Response:
        async with client(app, gate(max_pending=1_000, pending=1_500)) as c:
            return await c.post("/v1/readings", content=b"x" * (LIMIT + 1))

    response = asyncio.run(run())
    assert response.status_code == 503
    assert response.headers["connection"] == "close"
    assert app.bodies == []
