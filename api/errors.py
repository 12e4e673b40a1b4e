"""Maps every LedgerError to one HTTP status and a stable machine-readable code.

Clients get `{"error": {"code": ..., "message": ...}}` and never a stack trace. Request bodies and
parameters that fail validation, and bodies that are not JSON at all, get `invalid_request` with
the field errors; refusals by the HTTP layer itself (authorisation) are `ApiError`s that carry
their own code, and a body over the size limit is `request_too_large` (`api/limits.py`).
"""

from __future__ import annotations

import re
import sys

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.errors import (
    ChainUnavailable,
    ConfigError,
    ContractRevert,
    DeploymentError,
    LedgerError,
    MeterError,
    ToolchainError,
)
from ledger.anchoring.evidence import EvidenceUnavailable
from ledger.market.orders import InvalidOrderSignature
from ledger.readings.ingest import BatchTooLarge, ReadingNotFound
from ledger.store.backends import StoreUnavailable

# Custom errors that mean "no such thing", so they are 404 rather than 409.
_NOT_FOUND_REVERTS = {
    "MeterRegistryUnknownMeter",
    "MeterRegistryNoKeyAt",
    "MeterRegistryUnknownEpoch",
    "ReadingLedgerUnknownBatch",
    "EnergyMarketUnknownOffer",
    "EnergyMarketUnknownTrade",
}
# Custom errors about the request's own values rather than the chain's state: 422, not 409.
_INVALID_INPUT_REVERTS = {
    "MeterRegistryZeroOwner",
    "MeterRegistryUnsupportedAlgorithm",
    "MeterRegistryInvalidPublicKey",
    "MeterRegistryValidFromInPast",
    "MeterRegistryWeakPublicKey",
    "MeterRegistryCompromiseInFuture",
    "MeterRegistryCompromiseBeforeKey",
    "EnergyMarketZeroQuantity",
    "EnergyMarketZeroPrice",
    "EnergyMarketTradeTooSmall",
    "EnergyMarketUnalignedTime",
    "EnergyMarketInvalidExpiry",
    "EnergyMarketDeliveryTooLate",
    "SafeCastOverflowedUintDowncast",
    "EnergyMarketSignatureExpired",
    "EnergyMarketInvalidSignature",
    "EnergyMarketSameMeter",
    "ERC2612ExpiredSignature",
    "ERC2612InvalidSigner",
}

_STATUS = {
    MeterError: 422,
    InvalidOrderSignature: 422,
    EvidenceUnavailable: 409,
    BatchTooLarge: 413,
    ReadingNotFound: 404,
    ChainUnavailable: 503,
    StoreUnavailable: 503,
    DeploymentError: 503,
    ToolchainError: 503,
    ConfigError: 500,
}


class ApiError(StarletteHTTPException):
    """A refusal by the HTTP layer itself (not the ledger), with its own stable code."""

    def __init__(
        self, status_code: int, *, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.code = code


def error_body(code: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": {"code": code, "message": message, **extra}}


def _ledger_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, LedgerError)
    if isinstance(error, ContractRevert):
        status = 409
        if error.error_name in _NOT_FOUND_REVERTS:
            status = 404
        elif error.error_name in _INVALID_INPUT_REVERTS:
            status = 422
        code = _snake(error.error_name)
        return JSONResponse(error_body(code, str(error)), status_code=status)
    status = next((s for cls, s in _STATUS.items() if isinstance(error, cls)), 500)
    headers = None
    if isinstance(error, StoreUnavailable):
        # The next request reconnects; a client should send the same readings again.
        headers = {"Retry-After": str(error.retry_after_s)}
    return JSONResponse(error_body(error.code, str(error)), status_code=status, headers=headers)


def _validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    details = jsonable_encoder(error.errors(), exclude={"input", "ctx", "url"})
    return JSONResponse(
        error_body("invalid_request", "the request is malformed", details=details),
        status_code=422,
    )


def _unparsable_json(error: StarletteHTTPException) -> str | None:
    """Why FastAPI could not parse the request body as JSON, or None for any other refusal.

    FastAPI turns a JSON syntax error into a validation error itself, but any other failure of
    `json.loads` (bytes that are not UTF-8, nesting deeper than the parser's recursion limit, an
    integer of more than 4300 digits) into a bare 400 "There was an error parsing the body"
    raised from the parser's exception. Those are malformed requests like the others.
    """
    if isinstance(error, ApiError) or error.status_code != 400:
        return None
    cause = error.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return f"the body is not UTF-8: {cause.reason} at byte {cause.start}"
    if isinstance(cause, RecursionError):
        return "the JSON is nested too deeply"
    if isinstance(cause, ValueError):
        return f"an integer has more than {sys.get_int_max_str_digits()} digits"
    return None


def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    reason = _unparsable_json(error)
    if reason is not None:
        details = [{"type": "json_invalid", "loc": ["body"], "msg": reason}]
        return JSONResponse(
            error_body("invalid_request", "the request is malformed", details=details),
            status_code=422,
        )
    if isinstance(error, ApiError):
        code = error.code
    else:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
    return JSONResponse(
        error_body(code, str(error.detail)), status_code=error.status_code, headers=error.headers
    )


def _snake(name: str) -> str:
    """CamelCase to snake_case, keeping acronyms whole: ERC20InsufficientBalance ->
    erc20_insufficient_balance."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def install_error_handlers(app: FastAPI) -> None:
    """Registers the handlers on the app."""
    app.add_exception_handler(LedgerError, _ledger_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
