"""Who may call the registrar and operator routes: a client holding the gateway's bearer token
for that role.

The gateway's operator key holds REGISTRAR_ROLE in the MeterRegistry, so these routes write to
the chain with the registrar's authority; `LEDGER_REGISTRAR_TOKEN` is what stands between a client
and that role. With no token configured the routes are off (403), never open. Routes ask for it
with `RegistrarDep` (api/deps.py). Likewise `LEDGER_OPERATOR_TOKEN` guards the operator's billing
routes (tariffs, issuing runs) and, until customers sign in themselves, the bills (`OperatorDep`).
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
operator_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="OperatorToken",
    description="`Authorization: Bearer <LEDGER_OPERATOR_TOKEN>`",
)


def check_registrar(expected: str | None, credentials: HTTPAuthorizationCredentials | None) -> None:
    """Lets the request through only with the configured registrar token `expected`.

    Raises:
        ApiError: 403 `registrar_api_disabled` when the gateway has no token configured;
            401 `unauthorized` when the request carries no bearer token or another one.
    """
    _check_bearer(expected, credentials, role="registrar", setting="LEDGER_REGISTRAR_TOKEN")


def check_operator(expected: str | None, credentials: HTTPAuthorizationCredentials | None) -> None:
    """Lets the request through only with the configured operator token `expected` (billing:
    tariffs, issuing runs, every customer's bills until customers sign in themselves).

    Raises:
        ApiError: 403 `operator_api_disabled` when the gateway has no token configured;
            401 `unauthorized` when the request carries no bearer token or another one.
    """
    _check_bearer(expected, credentials, role="operator", setting="LEDGER_OPERATOR_TOKEN")


def _check_bearer(
    expected: str | None,
    credentials: HTTPAuthorizationCredentials | None,
    *,
    role: str,
    setting: str,
) -> None:
    if not expected:
        raise ApiError(
            403,
            code=f"{role}_api_disabled",
            message=f"the {role} API is disabled: {setting} is not set",
        )
    if credentials is None:
        raise ApiError(
            401,
            code="unauthorized",
            message=f"the {role} API needs an Authorization: Bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Bytes, not str: compare_digest refuses non-ASCII str, and header values may hold any byte.
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise ApiError(
            401,
            code="unauthorized",
            message=f"the bearer token is not the {role} token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
