"""The request-body size limit, enforced while the body arrives, before anything parses it.

A pure ASGI middleware, so it covers every route and runs before FastAPI reads the body: a
`Content-Length` above the limit is refused without reading a byte of the body, and a body
without one (chunked) is cut off as soon as it passes the limit. Either way the answer is
`413 request_too_large`, and the connection is closed (the rest of the body is not read).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body

REQUEST_TOO_LARGE = "request_too_large"


class BodySizeLimit:
    """Refuses request bodies larger than `max_bytes` with 413 `request_too_large`.

    An accepted body is read whole here (at most `max_bytes`) and handed to the app as one
    message; the app's later `receive` calls go to the server (to hear of a disconnect).
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send, f"{declared} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        more_body = True
        while more_body:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nobody to answer
                return
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, f"more than {self.max_bytes} bytes")
                return
            chunks.append(chunk)
            more_body = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: str) -> None:
        message = (
            f"the request body is {size}; at most {self.max_bytes} are accepted "
            "(LEDGER_MAX_BODY_BYTES)"
        )
        response = JSONResponse(
            error_body(REQUEST_TOO_LARGE, message),
            status_code=413,
            # The unread rest of the body would be taken for the next request: close instead.
            headers={"connection": "close"},
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    if value is None or not value.isdigit():
        return None  # the server refuses a malformed one before it gets here
    return int(value)
