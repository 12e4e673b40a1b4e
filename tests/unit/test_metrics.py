"""The counters of ledger/metrics.py: a batch's readings by result and code, chain errors by
kind, and the shared directory of a multi-process gateway."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import requests
from fastapi import FastAPI

from api.errors import install_error_handlers
from ledger.errors import ChainUnavailable
from ledger.metrics import (
    CHAIN_ERRORS,
    MULTIPROC_ENV,
    READINGS,
    chain_error_kind,
    count_ingest_results,
    multiprocess_dir,
)
from ledger.readings.results import Outcome, Rejection


@dataclass(frozen=True)
class Result:
    status: Outcome
    code: Rejection | None = None


def counted(result: str, code: str = "") -> float:
    return float(READINGS.labels(result=result, code=code)._value.get())


def test_a_batch_is_counted_by_result_and_rejection_code() -> None:
    before = {
        key: counted(*key) for key in [("accepted",), ("duplicate",), ("rejected", "bad_signature")]
    }

    count_ingest_results(
        [
            Result(Outcome.ACCEPTED),
            Result(Outcome.REJECTED, Rejection.BAD_SIGNATURE),
            Result(Outcome.ACCEPTED),
            Result(Outcome.DUPLICATE),
        ]
    )

    assert {key: counted(*key) - before[key] for key in before} == {
        ("accepted",): 2,
        ("duplicate",): 1,
        ("rejected", "bad_signature"): 1,
    }


def test_chain_errors_are_told_apart_by_kind() -> None:
    assert chain_error_kind(ChainUnavailable(rpc_url="http://x", reason="refused")) == "unavailable"
    assert chain_error_kind(requests.ConnectionError("refused")) == "unavailable"
    assert chain_error_kind(requests.ReadTimeout("slow")) == "timeout"
    assert chain_error_kind(TimeoutError()) == "timeout"
    assert chain_error_kind(ValueError("odd answer")) == "other"


def test_the_multiprocess_directory_is_fresh_private_and_removed_afterwards() -> None:
    before = os.environ.get(MULTIPROC_ENV)

    with multiprocess_dir() as directory:
        assert os.environ[MULTIPROC_ENV] == directory
        assert list(Path(directory).iterdir()) == []
        assert Path(directory).stat().st_mode & 0o077 == 0

    assert not Path(directory).exists()
    assert os.environ.get(MULTIPROC_ENV) == before


def test_a_request_answered_chain_unavailable_counts_a_chain_error() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/down")
    def down() -> None:
        raise ChainUnavailable(rpc_url="http://127.0.0.1:1", reason="connection refused")

    counter = CHAIN_ERRORS.labels(where="request", kind="unavailable")
    before = counter._value.get()

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
            return await c.get("/down")

    answer = asyncio.run(call())

    assert answer.status_code == 503
    assert counter._value.get() == before + 1
