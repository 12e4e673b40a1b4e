"""The request middleware (api/observe.py): the request id it echoes, the route template it
labels a request with, and the one line it logs per request, failures included."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from fastapi import FastAPI

from api.observe import UNMATCHED_ROUTE, RequestObservation
from ledger.logs import ACCESS_LOGGER
from ledger.metrics import REQUEST_SECONDS


def app() -> FastAPI:
    built = FastAPI()

    @built.get("/things/{thing_id}")
    def thing(thing_id: str) -> dict[str, str]:
        return {"thing": thing_id}

    @built.get("/broken")
    def broken() -> None:
        raise RuntimeError("a bug")

    built.add_middleware(RequestObservation)
    return built


def get(path: str, headers: dict[bytes, bytes] | None = None) -> httpx.Response:
    """`GET path` on the app, in process; an exception the app raises becomes a 500."""

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
            return await c.get(path, headers=headers)

    return asyncio.run(run())


def observed(method: str, route: str, status: str) -> float:
    histogram = REQUEST_SECONDS.labels(method=method, route=route, status=status)
    return float(sum(bucket.get() for bucket in histogram._buckets))


def test_the_client_request_id_is_echoed() -> None:
    answer = get("/things/a", headers={b"x-request-id": b"abc-123"})

    assert answer.headers["x-request-id"] == "abc-123"


@pytest.mark.parametrize("given", ["", "has space", "x" * 129, "semi;colon", "é"])
def test_an_unsafe_or_overlong_request_id_is_replaced_by_a_random_one(given: str) -> None:
    answer = get("/things/a", headers={b"x-request-id": given.encode()})

    assert answer.headers["x-request-id"] != given
    assert len(answer.headers["x-request-id"]) == 32


def test_latency_is_observed_under_the_route_template_not_the_path() -> None:
    before = observed("GET", "/things/{thing_id}", "200")

    get("/things/METER-1")

    assert observed("GET", "/things/{thing_id}", "200") == before + 1


def test_a_path_no_route_matches_is_labelled_unmatched() -> None:
    before = observed("GET", UNMATCHED_ROUTE, "404")

    get("/no/such/path/123")

    assert observed("GET", UNMATCHED_ROUTE, "404") == before + 1


def test_one_line_is_logged_per_request_with_its_fields(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        get("/things/a?token=secret", headers={b"x-request-id": b"r-1"})

    (record,) = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    fields = record.__dict__
    assert record.getMessage() == "request"
    assert (fields["method"], fields["route"], fields["path"], fields["status"]) == (
        "GET",
        "/things/{thing_id}",
        "/things/a",
        200,
    )
    assert fields["duration_ms"] >= 0


def test_a_request_that_raises_is_logged_as_an_error_with_status_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        answer = get("/broken")

    assert answer.status_code == 500
    (record,) = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert record.levelno == logging.ERROR
    assert record.__dict__["status"] == 500
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
