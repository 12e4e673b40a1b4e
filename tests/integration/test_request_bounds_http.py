"""Input bounds of the gateway over real HTTP (`ledger serve`): body size, batch count, malformed
JSON, and the seq-jump limit, each configured through its LEDGER_* variable.

These are bounds of the HTTP layer and of the sequence checks, the same on any chain, so one
gateway on Anvil serves the whole module (readings use a meter of their own per test).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from ledger.chain.client import free_port
from ledger.settings import BODY_BYTES_PER_READING
from tests.fixtures.gateway import Gateway, ledger_env, start_gateway
from tests.integration.test_readings_http import post, register_meter, signed

MAX_BATCH = 40
BODY_LIMIT = MAX_BATCH * BODY_BYTES_PER_READING  # LEDGER_MAX_BODY_BYTES is left at its default
MAX_SEQ_JUMP = 10
REGISTRAR_TOKEN = "bounds-registrar-token"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp_path = tmp_path_factory.mktemp("bounds")
    env = ledger_env(
        tmp_path / "data",
        "anvil",
        free_port(),
        LEDGER_MAX_BATCH=str(MAX_BATCH),
        LEDGER_MAX_SEQ_JUMP=str(MAX_SEQ_JUMP),
        LEDGER_REGISTRAR_TOKEN=REGISTRAR_TOKEN,
        # No anchoring: the tests register meters with the operator key while the gateway runs,
        # and the anchorer would send with the same key at the same time.
        LEDGER_ANCHOR_ENABLED="false",
    )
    running = start_gateway(env, tmp_path / "gateway.log")
    yield running
    running.stop()


def raw_request(gateway: Gateway, head: str, body: Iterable[bytes] = ()) -> tuple[int, Any]:
    """Sends a request byte for byte and reads the answer until the server closes.

    A server that waited for the rest of the body would leave this hanging: the socket
    timeout turns that into a failure rather than a stuck test.
    """
    url = urlsplit(gateway.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        for part in body:
            sock.sendall(part)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    header, _, content = received.partition(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1])
    return status, json.loads(content)


def post_bytes(gateway: Gateway, body: bytes, path: str = "/v1/readings") -> httpx.Response:
    headers = {"content-type": "application/json"}
    return httpx.post(f"{gateway.base_url}{path}", content=body, headers=headers, timeout=60)


def error_code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


# --- body size --------------------------------------------------------------------------------


def test_a_body_declared_over_the_limit_is_refused_413_without_being_read(
    gateway: Gateway,
) -> None:
    head = (
        "POST /v1/readings HTTP/1.1\nhost: gateway\ncontent-type: application/json\n"
        "content-length: 150000000\n"
    )
    status, answer = raw_request(gateway, head)  # not one byte of the 150 MB is sent
    assert (status, answer["error"]["code"]) == (413, "request_too_large")


def test_a_chunked_body_is_cut_off_with_413_once_it_passes_the_limit(gateway: Gateway) -> None:
    head = (
        "POST /v1/readings HTTP/1.1\nhost: gateway\ncontent-type: application/json\n"
        "transfer-encoding: chunked\n"
    )
    chunk = b"2000\r\n" + b" " * 0x2000 + b"\r\n"  # 8 KiB of JSON whitespace
    # A little over the limit, and never the closing zero-length chunk: only a server that
    # stops reading at the limit can answer.
    status, answer = raw_request(gateway, head, [chunk] * (BODY_LIMIT // 0x2000 + 1))
    assert (status, answer["error"]["code"]) == (413, "request_too_large")


def test_the_body_limit_applies_to_every_route(gateway: Gateway) -> None:
    body = b" " * (BODY_LIMIT + 1)
    registration = httpx.post(
        f"{gateway.base_url}/v1/meters",
        content=body,
        headers={"authorization": f"Bearer {REGISTRAR_TOKEN}", "content-type": "application/json"},
    )
    health = httpx.request("GET", f"{gateway.base_url}/healthz", content=body)
    assert error_code(registration) == (413, "request_too_large")
    assert error_code(health) == (413, "request_too_large")


def test_a_reading_padded_to_exactly_the_default_limit_is_accepted(gateway: Gateway) -> None:
    key, start = register_meter(gateway, "MTR-BOUNDS-PAD")
    body = json.dumps(signed(key, start, 1, "MTR-BOUNDS-PAD")).encode()
    response = post_bytes(gateway, body + b" " * (BODY_LIMIT - len(body)))
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1


# --- batch count ------------------------------------------------------------------------------


def test_a_batch_over_max_batch_is_refused_before_its_items_are_validated(
    gateway: Gateway,
) -> None:
    # Malformed items: validated first, each would be an error of a 422 answer.
    response = post(gateway, {"readings": [{}] * (MAX_BATCH + 1)})
    assert error_code(response) == (413, "batch_too_large")


# --- malformed JSON ---------------------------------------------------------------------------

MALFORMED_JSON = {
    "invalid_utf8": b'{"meter_id": "\xff\xfe", "canonical": "0x00", "signature": "0x00"}',
    "nested_too_deep": b"[" * 60_000 + b"]" * 60_000,
    "integer_of_100k_digits": b'{"readings": [' + b"7" * 100_000 + b"]}",
    "trailing_garbage": b'{"meter_id": "M", "canonical": "0x00", "signature": "0x00"} }{',
}


@pytest.mark.parametrize("body", MALFORMED_JSON.values(), ids=MALFORMED_JSON.keys())
def test_malformed_json_is_invalid_request_422(gateway: Gateway, body: bytes) -> None:
    assert len(body) <= BODY_LIMIT  # the JSON is what is wrong, not the size
    assert error_code(post_bytes(gateway, body)) == (422, "invalid_request")


# --- seq jump ---------------------------------------------------------------------------------


def test_a_seq_jump_over_ledger_max_seq_jump_is_refused_and_the_next_reading_accepted(
    gateway: Gateway,
) -> None:
    meter = "MTR-BOUNDS-JUMP"
    key, start = register_meter(gateway, meter)
    post(gateway, signed(key, start, 1, meter))
    jumped = post(gateway, signed(key, start, 2 + MAX_SEQ_JUMP, meter)).json()["results"][0]
    following = post(gateway, signed(key, start, 2, meter)).json()["results"][0]
    assert (jumped["status"], jumped["code"]) == ("rejected", "seq_jump_too_large")
    assert (following["status"], following["code"]) == ("accepted", None)
