"""Admission of `POST /v1/readings` under saturation, before the body is read.

A pure ASGI middleware outside the body size limit (which reads a body whole): a batch refused
here (`429 gateway_saturated`, `503 anchoring_backlog`, both with `Retry-After`; see
`ledger/readings/admission.py`) is never held in memory, parsed, stored or acknowledged. Its body
is read and dropped chunk by chunk, so the connection stays usable for the retry (closing it
with the body unread could reset the connection before the client reads the answer); a body over
the size limit is not read at all, and the connection is closed, as `api/limits.py` does.
"""

from __future__ import annotations

from anyio import to_thread
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_body
from ledger.errors import LedgerError
from ledger.readings.admission import Admission

READINGS_PATH = "/v1/readings"


class ReadingAdmission:
    """Counts `POST /v1/readings` requests in flight and refuses those over the bounds."""

    def __init__(self, app: ASGIApp, *, admission: Admission, max_body_bytes: int) -> None:
        self.app = app
        self.admission = admission
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"].rstrip("/") != READINGS_PATH
        ):
            await self.app(scope, receive, send)
            return
        if self.admission.pending_is_stale():
            # A database query: off the event loop, which other requests share; waited for only
            # the first time, later a stale count is refreshed beside the request.
            if self.admission.has_count:
                self.admission.refresh_pending_in_background()
            else:
                await to_thread.run_sync(self.admission.refresh_pending)
        try:
            self.admission.enter()
        except LedgerError as refusal:
            headers = {}
            if refusal.retry_after_s is not None:
                headers["Retry-After"] = str(refusal.retry_after_s)
            if not await _drain(scope, receive, self.max_body_bytes):
                # The unread rest would be taken for the next request: close instead.
                headers["connection"] = "close"
            response = JSONResponse(
                error_body(refusal.code, str(refusal)),
                status_code=refusal.http_status,
                headers=headers,
            )
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.leave()


async def _drain(scope: Scope, receive: Receive, max_bytes: int) -> bool:
    """Reads the request body to its end, keeping none of it; False (and stops reading) when it
    is, or says it is, over `max_bytes`."""
    declared = Headers(scope=scope).get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        return False
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return True  # the client went away
        size += len(message.get("body", b""))
        if size > max_bytes:
            return False
        if not message.get("more_body", False):
            return True
