"""The gateway answers a LedgerError with the status and code its class carries."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from api.errors import install_error_handlers
from ledger.errors import ContractRevert, LedgerError, MeterError
from ledger.market.orders import RelayQuotaExceeded


def answer_to(error: LedgerError) -> tuple[int, dict[str, object], str | None]:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fail")
    def fail() -> None:
        raise error

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
            return await c.get("/fail")

    response = asyncio.run(run())
    return response.status_code, response.json(), response.headers.get("retry-after")


def test_an_error_is_answered_with_its_class_status_and_code() -> None:
    status, body, _ = answer_to(MeterError("owner 0x12 is not an address"))
    assert (status, body) == (
        422,
        {"error": {"code": "invalid_meter", "message": "owner 0x12 is not an address"}},
    )


def test_an_error_that_knows_when_to_retry_sends_retry_after() -> None:
    error = RelayQuotaExceeded(signer="0x" + "aa" * 20, limit=30, retry_after_s=17)
    status, body, retry_after = answer_to(error)
    assert (status, body["error"], retry_after) == (  # type: ignore[index]
        429,
        {"code": "relay_quota_exceeded", "message": str(error)},
        "17",
    )


def test_a_revert_is_answered_with_its_custom_error_as_code() -> None:
    status, body, _ = answer_to(ContractRevert(error_name="MeterRegistryZeroOwner", args=(b"M",)))
    assert (status, body["error"]) == (  # type: ignore[index]
        422,
        {"code": "meter_registry_zero_owner", "message": "MeterRegistryZeroOwner(0x4d)"},
    )


def test_an_unforeseen_ledger_error_is_a_500_without_a_trace() -> None:
    status, body, _ = answer_to(LedgerError("something broke"))
    assert (status, body) == (
        500,
        {"error": {"code": "ledger_error", "message": "something broke"}},
    )
