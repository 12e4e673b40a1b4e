"""Answers every LedgerError with the HTTP status and stable machine-readable code its class
carries (`http_status`, `code`: the tree in `ledger/errors.py`; a contract's revert takes both
from its custom error's name), and `Retry-After` when the error knows when to retry.

Clients get `{"error": {"code": ..., "message": ...}}` and never a stack trace. Request bodies and
parameters that fail validation, and bodies that are not JSON at all, get `invalid_request` with
the field errors; refusals by the HTTP layer itself (authorisation) are `ApiError`s that carry
their own code, and a body over the size limit is `request_too_large` (`api/limits.py`).
"""

from __future__ import annotations

import sys

from eth_utils.address import is_checksum_address, to_checksum_address
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.errors import ChainUnavailable, LedgerError
from ledger.metrics import count_chain_error


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
    if isinstance(error, ChainUnavailable):
        count_chain_error("request", error)  # /metrics: a client was told the chain is down
    headers = None
    if error.retry_after_s is not None:
        # A database that reconnects, a relay quota that frees up: the same request may succeed.
        headers = {"Retry-After": str(error.retry_after_s)}
    return JSONResponse(
        error_body(error.code, str(error)), status_code=error.http_status, headers=headers
    )


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


def install_error_handlers(app: FastAPI) -> None:
    """Registers the handlers on the app."""
    app.add_exception_handler(LedgerError, _ledger_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


def account_address(address: str) -> str:
    """The EIP-55 form of an account address from a path or body (its pattern already checked).

    All-lowercase (or all-uppercase) hex carries no checksum; mixed case must be a valid one, so
    a mistyped address is refused (422 `invalid_address`) instead of silently naming another
    account.
    """
    body = address[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(address):
        raise ApiError(422, code="invalid_address", message=f"{address}: bad EIP-55 checksum")
    return to_checksum_address(address)
