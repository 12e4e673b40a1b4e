"""Who may call the registrar routes: a client holding the gateway's registrar bearer token.

The gateway's operator key holds REGISTRAR_ROLE in the MeterRegistry, so these routes write to
the chain with the registrar's authority; `LEDGER_REGISTRAR_TOKEN` is what stands between a client
and that role. With no token configured the routes are off (403), never open. Routes ask for it
with `RegistrarDep` (api/deps.py).
"""

from __future__ import annotations

import hmac

from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError

registrar_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="RegistrarToken",
    description="`Authorization: Bearer <LEDGER_REGISTRAR_TOKEN>`",
)


def check_registrar(expected: str | None, credentials: HTTPAuthorizationCredentials | None) -> None:
    """Lets the request through only with the configured registrar token `expected`.

    Raises:
        ApiError: 403 `registrar_api_disabled` when the gateway has no token configured;
            401 `unauthorized` when the request carries no bearer token or another one.
    """
    if not expected:
        raise ApiError(
            403,
            code="registrar_api_disabled",
            message="the registrar API is disabled: LEDGER_REGISTRAR_TOKEN is not set",
        )
    if credentials is None:
        raise ApiError(
            401,
            code="unauthorized",
            message="the registrar API needs an Authorization: Bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Bytes, not str: compare_digest refuses non-ASCII str, and header values may hold any byte.
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise ApiError(
            401,
            code="unauthorized",
            message="the bearer token is not the registrar token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
