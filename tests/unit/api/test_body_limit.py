"""The request-body size limit (api/limits.py) around a small ASGI app that records what it got."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from api.limits import BodySizeLimit

LIMIT = 1_000


class RecordingApp:
    """Answers 200 with the length of the body it read; remembers whether it was called."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        more_body = True
        while more_body:
            message = await receive()
            body += message.get("body", b"")
            more_body = message.get("more_body", False)
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})


@pytest.fixture
def app() -> RecordingApp:
    return RecordingApp()


def post(app: RecordingApp, content: bytes | AsyncIterator[bytes]) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=BodySizeLimit(app, max_bytes=LIMIT))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
            return await c.post("/v1/readings", content=content)

    return asyncio.run(run())


async def chunks(size: int, count: int) -> AsyncIterator[bytes]:
    """A body sent chunked (no Content-Length), `count` chunks of `size` bytes."""
    for _ in range(count):
        yield b"x" * size


def test_a_body_at_the_limit_reaches_the_app_whole(app: RecordingApp) -> None:
    response = post(app, b"x" * LIMIT)
    assert (response.status_code, response.text) == (200, str(LIMIT))
    assert app.bodies == [b"x" * LIMIT]


def test_a_chunked_body_within_the_limit_reaches_the_app_whole(app: RecordingApp) -> None:
    response = post(app, chunks(100, 10))
    assert (response.status_code, response.text) == (200, str(LIMIT))
    assert app.bodies == [b"x" * LIMIT]


def test_a_body_declared_over_the_limit_is_refused_and_never_reaches_the_app(
    app: RecordingApp,
) -> None:
    response = post(app, b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert response.headers["connection"] == "close"
    assert app.bodies == []


def test_a_chunked_body_over_the_limit_is_refused_and_never_reaches_the_app(
    app: RecordingApp,
) -> None:
    response = post(app, chunks(100, 11))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert app.bodies == []
