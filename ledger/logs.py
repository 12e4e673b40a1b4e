"""The gateway's log lines: one JSON object a line (or a console line), rendered by structlog,
never carrying a secret.

Every line is emitted through the standard `logging` module, by the core (the anchorer's and the
indexer's warnings), by uvicorn, and by the gateway's request middleware (api/observe.py, one
line per request on the `ledger.access` logger). `configure_logging` puts structlog's
`ProcessorFormatter` on the root handler, so all of them come out the same way: with a UTC
timestamp, the level, the logger, the event and its fields (`extra=` of a logging call), and
the request id of the request being served (bound with `bind_request_id`, from contextvars, so a
core warning logged while serving a request carries that request's id too).

Redaction is the formatter's last step before rendering, on every string of the line, the
formatted traceback included: URLs lose their credentials (ledger/redaction.py), a field named
like a credential (`authorization`, `token`, `password`, `secret`, `cookie`, ...) is masked
whole, and the values of the settings that are secrets (the bearer tokens, the session key, the
operator key, the database and RPC URLs' credentials) are masked wherever they occur.

A process that never calls `configure_logging` (a library user, the tests' in-process gateways)
keeps its own logging configuration: nothing here is global until then.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

from ledger.redaction import MASK, redact_text, url_secrets
from ledger.settings import Settings

LogFormat = Literal["json", "console"]

ACCESS_LOGGER = "ledger.access"
"""One line per request (api/observe.py)."""
GATEWAY_LOGGER = "ledger.gateway"
"""The gateway's own events: a worker started or stopped."""
_ALWAYS_INFO = (ACCESS_LOGGER, GATEWAY_LOGGER)

VERBOSE_ENV = "EL_LOG_VERBOSE"
"""Set by `ledger serve -v` for its workers (not a LEDGER_* setting: it is the command's flag)."""

_CREDENTIAL_WORDS = ("authorization", "password", "passwd", "secret", "token", "cookie", "apikey")
_CREDENTIAL_NAMES = {"key", "api_key", "private_key", "operator_key", "signing_key"}
_SHORTEST_SECRET = 3  # as ledger/redaction.py: shorter ones would mangle ordinary words


@lru_cache(maxsize=1024)  # a line's field names repeat: the same few, request after request
def _is_credential_name(name: str) -> bool:
    lowered = name.lower().replace("-", "_")
    return lowered in _CREDENTIAL_NAMES or any(word in lowered for word in _CREDENTIAL_WORDS)


class Redactor:
    """A structlog processor that masks every secret it can recognise in an event (see the
    module docstring); `secrets` are literal values to mask, `urls` URLs whose credentials are
    masked wherever they are quoted, even without the URL around them."""

    def __init__(self, secrets: Iterable[str | None] = (), urls: Iterable[str | None] = ()):
        # A URL's secrets are found once here, not on every line (the access log writes one a
        # request). Longest first, so a secret containing another is masked whole.
        literal = [*secrets, *(part for url in urls if url for part in url_secrets(url))]
        self._secrets = sorted(
            {s for s in literal if s and len(s) >= _SHORTEST_SECRET}, key=len, reverse=True
        )

    def text(self, value: str) -> str:
        value = redact_text(value)  # any URL quoted whole loses its credentials
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                k: MASK if _is_credential_name(str(k)) else self._value(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._value(v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        # Anything else (an exception passed as a field, a path) would be rendered with its
        # repr, unredacted: rendered here as text, and redacted.
        return self.text(str(value))

    def __call__(self, _: WrappedLogger, __: str, event: EventDict) -> EventDict:
        return {
            key: MASK if _is_credential_name(key) else self._value(value)
            for key, value in event.items()
        }


def _add_process_id(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    # Which worker of `ledger serve --workers N` wrote the line.
    event["pid"] = os.getpid()
    return event


def _renderer(log_format: LogFormat) -> structlog.typing.Processor:
    if log_format == "json":
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=False)


def formatter(log_format: LogFormat, redactor: Redactor) -> logging.Formatter:
    """The formatter of every line (see the module docstring)."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _add_process_id,
            structlog.stdlib.ExtraAdder(),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redactor,
            _renderer(log_format),
        ],
    )


def configure_logging(
    log_format: LogFormat,
    *,
    verbose: bool = False,
    redactor: Redactor | None = None,
    stream: TextIO | None = None,
) -> None:
    """Sends every log line of this process to `stream` (stderr) in `log_format`: the core's
    at WARNING (INFO with `verbose`), requests and the gateway's own events at INFO, uvicorn's
    through the same handler instead of its own."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format, redactor or Redactor()))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for name in _ALWAYS_INFO:
        logging.getLogger(name).setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers = []
        uvicorn_logger.propagate = True


def redactor_for(settings: Settings) -> Redactor:
    """The redactor of a gateway with these settings: its secrets and the credentials of its
    database and RPC URLs."""
    key = settings.operator_key
    return Redactor(
        secrets=[
            settings.operator_token,
            settings.registrar_token,
            settings.metrics_token,
            settings.session_secret,
            key,
            None if key is None else key.removeprefix("0x"),
        ],
        urls=[settings.database_url, settings.rpc_url],
    )


@contextmanager
def bind_request_id(request_id: str) -> Iterator[None]:
    """Every line logged in this context (this request's task and the threads it runs work
    in) carries `request_id`."""
    tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
