"""The gateway's log lines (ledger/logs.py): one JSON object a line, the request id of the
request being served, and no secret, whatever the field, message or traceback carries it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from ledger.logs import Redactor, bind_request_id, formatter, redactor_for
from ledger.settings import Settings

TOKEN = "operator-token-0123456789"
PASSWORD = "s3cret-pa55"
RPC_URL = f"https://rpcuser:{PASSWORD}@rpc.example:8545/"


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose lines go, formatted as `ledger serve` formats them, to a string."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    settings = Settings(
        rpc_url=RPC_URL,
        operator_key="0x" + "11" * 32,
        operator_token=TOKEN,
        chain_port=8545,
    )
    handler.setFormatter(formatter("json", redactor_for(settings)))
    logger = logging.getLogger("tests.logs")
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    yield logger, stream
    logger.handlers = []


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_time_level_logger_event_and_fields(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = lines

    logger.info("request", extra={"method": "GET", "status": 200, "duration_ms": 1.5})

    (line,) = parsed(stream)
    assert line["event"] == "request"
    assert (line["level"], line["logger"]) == ("info", "tests.logs")
    assert (line["method"], line["status"], line["duration_ms"]) == ("GET", 200, 1.5)
    assert line["timestamp"].endswith("Z")
    assert isinstance(line["pid"], int)


def test_a_line_logged_while_serving_a_request_carries_its_request_id(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = lines

    with bind_request_id("req-42"):
        logger.warning("anchoring cycle failed, retrying: %s", "boom")
    logger.warning("after the request")

    during, after = parsed(stream)
    assert during["request_id"] == "req-42"
    assert during["event"] == "anchoring cycle failed, retrying: boom"
    assert "request_id" not in after


def test_a_url_password_in_a_message_is_masked(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = lines

    logger.warning("anchoring cycle failed, retrying: %s", f"cannot reach {RPC_URL}")
    # A transport error may quote the password without the URL around it.
    logger.warning("auth failed for rpcuser:%s", PASSWORD)

    assert PASSWORD not in stream.getvalue()
    assert "https://***@rpc.example:8545/" in parsed(stream)[0]["event"]


def test_a_token_is_masked_in_a_field_named_for_it_and_wherever_it_is_quoted(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = lines

    logger.info(
        "request",
        extra={
            "authorization": "Bearer anything",
            "note": f"sent {TOKEN}",
            "key": "0x" + "11" * 32,
        },
    )

    (line,) = parsed(stream)
    assert line["authorization"] == "***"
    assert line["key"] == "***"
    assert line["note"] == "sent ***"
    assert TOKEN not in stream.getvalue()


def test_a_traceback_quoting_a_secret_is_masked(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = lines

    try:
        raise ConnectionError(f"HTTPSConnectionPool {RPC_URL} token={TOKEN}")
    except ConnectionError:
        logger.exception("indexing pass failed")

    (line,) = parsed(stream)
    assert "ConnectionError" in line["exception"]
    assert PASSWORD not in line["exception"] and TOKEN not in line["exception"]


def test_the_console_format_renders_one_readable_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("console", Redactor(secrets=[TOKEN])))
    record = logging.makeLogRecord(
        {"name": "ledger.access", "levelno": logging.INFO, "levelname": "INFO", "msg": "request"}
    )
    record.__dict__["note"] = TOKEN

    handler.emit(record)

    (text,) = stream.getvalue().splitlines()
    assert "request" in text and "note=***" in text and not text.startswith("{")


def test_an_object_passed_as_a_field_is_rendered_as_text_without_its_secrets(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = lines

    logger.warning("anchoring cycle failed", extra={"error": ConnectionError(RPC_URL)})

    (line,) = parsed(stream)
    assert line["error"] == "https://***@rpc.example:8545/"
