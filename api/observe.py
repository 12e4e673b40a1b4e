"""What an operator sees of each request: its id, one log line, and its latency histogram.

A pure ASGI middleware, the outermost of the app's own (inside Starlette's error middleware
only), so it sees every answer: a 413 of the body limit, a 429 of admission, a route's 4xx, and
an unexpected exception (logged as 500, with its traceback, and raised on).

The request id is the client's `X-Request-ID` when it is a short token of safe characters (a
proxy or a meter's concentrator may set one to follow a request through), else a new random
one; the answer carries it back in `X-Request-ID`, and every log line written while the request
is served carries it (ledger/logs.py). The log line names the route template
(`/v1/meters/{meter_id}`), the raw path and the method, status and duration; never a header or
the query string, where credentials travel. The histogram is labelled by route template, never
by path: a label per meter id would grow without bound.
"""

from __future__ import annotations

import logging
import re
import secrets
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.logs import ACCESS_LOGGER, bind_request_id
from ledger.metrics import REQUEST_SECONDS

REQUEST_ID_HEADER = "x-request-id"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
UNMATCHED_ROUTE = "unmatched"
"""The route label of a request no route matched (a 404 for an unknown path)."""

access_log = logging.getLogger(ACCESS_LOGGER)


def request_id_of(scope: Scope) -> str:
    """The client's X-Request-ID if it is 1-128 safe characters, else a new random id."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            given = bytes(value).decode("latin-1")
            if _SAFE_REQUEST_ID.fullmatch(given):
                return given
            break
    return secrets.token_hex(16)


def route_template(scope: Scope) -> str:
    """The template of the route that served the request (`/v1/meters/{meter_id}`)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


class RequestObservation:
    """Gives each request an id, logs one line for it and observes its latency."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        status = 500  # what the client gets if the app raises before it answers
        observed = False

        async def send_observed(message: Message) -> None:
            nonlocal status, observed
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Before the last byte goes out: a client that has its answer finds the line
                # written and the latency counted.
                observed = True
                _observe(scope, status, started, None)
            await send(message)

        with bind_request_id(request_id):
            try:
                await self.app(scope, receive, send_observed)
            except Exception as error:
                if not observed:
                    _observe(scope, status, started, error)
                raise
            if not observed:  # the client went away before its answer
                _observe(scope, status, started, None)


def _observe(scope: Scope, status: int, started: float, error: Exception | None) -> None:
    seconds = time.perf_counter() - started
    route = route_template(scope)
    REQUEST_SECONDS.labels(method=scope["method"], route=route, status=str(status)).observe(seconds)
    access_log.log(
        logging.INFO if error is None else logging.ERROR,
        "request",
        exc_info=error,
        extra={
            "method": scope["method"],
            "route": route,
            "path": scope["path"],
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        },
    )
