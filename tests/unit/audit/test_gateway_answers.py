"""What the audit reads from a gateway it does not trust (`ledger.audit.bills.get_json`): a JSON
answer, and a clear input error, not a memory filled, for an answer that does not end."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from ledger.audit.bills import get_json
from ledger.audit.chain import AuditInputError
from tests.fixtures.local_http import local_http_server

LIMIT = 1 << 20


class _Gateway(BaseHTTPRequestHandler):
    """`/small`: a JSON object; `/endless`: a JSON array that never ends (64 MiB, no length)."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server interface
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        if self.path == "/small":
            self.wfile.write(b'{"bills": []}')
            return
        self.wfile.write(b"[")
        try:
            for _ in range(64):
                self.wfile.write(b"0," * (LIMIT // 2))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading, as it should

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[str]:
    with local_http_server(_Gateway) as url:
        yield url


def test_a_json_answer_is_read(gateway: str) -> None:
    assert get_json(f"{gateway}/small", None, limit=LIMIT) == {"bills": []}


def test_an_answer_longer_than_the_limit_is_an_input_error_read_no_further(gateway: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(AuditInputError, match=f"the answer is longer than {LIMIT} bytes"):
            get_json(f"{gateway}/endless", None, limit=LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * LIMIT  # the whole answer is 64 MiB
