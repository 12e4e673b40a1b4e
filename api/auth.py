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
import os
import secrets
from dataclasses import dataclass

import jwt
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from ledger.errors import ConfigError
from ledger.settings import Settings

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


# --- customers' sessions ------------------------------------------------------------------------

session_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="SessionToken",
    description="`Authorization: Bearer <token>` from POST /v1/auth/sign-in (a customer or an "
    "auditor); the operator and registrar tokens are accepted here too.",
)

SESSION_ALGORITHM = "HS256"
SESSION_ISSUER = "energy-ledger"
SESSION_SECRET_FILE = "session-secret"
SESSION_ROLES = ("customer", "auditor")


@dataclass(frozen=True)
class Session:
    """What a valid session token says: who signed in, as what, until when."""

    address: str
    role: str
    expires_at: int
    session_id: str


def session_secret(settings: Settings) -> bytes:
    """The key session tokens are signed with: `LEDGER_SESSION_SECRET`, or 32 random bytes kept
    in `<data_dir>/session-secret` (mode 0600), created by the first process that needs it so
    every worker and gateway on that data directory accepts the others' tokens."""
    if settings.session_secret is not None:
        return settings.session_secret.encode()
    path = settings.data_dir / SESSION_SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        aside = path.with_name(f"{SESSION_SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(secrets.token_bytes(32).hex().encode())
        try:
            # A hard link is created whole or not at all: of two workers starting together one
            # wins, the other reads the winner's key; nobody ever reads half a file.
            os.link(aside, path)
        except FileExistsError:
            pass
        finally:
            aside.unlink()
    key = path.read_bytes().strip()
    if len(key) < 32:
        raise ConfigError(f"{path}: too short for a session key; delete it to make a new one")
    return key


def issue_session(address: str, role: str, *, now: int, ttl_s: int) -> Session:
    """A session of `address` in `role` from `now` for `ttl_s` seconds."""
    return Session(address, role, now + ttl_s, secrets.token_hex(16))


def session_token(secret: bytes, session: Session, *, now: int) -> str:
    """The signed token (JWT, HS256) carrying `session`."""
    claims = {
        "iss": SESSION_ISSUER,
        "sub": session.address,
        "role": session.role,
        "iat": now,
        "exp": session.expires_at,
        "jti": session.session_id,
    }
    return jwt.encode(claims, secret, algorithm=SESSION_ALGORITHM)


def read_session(secret: bytes, token: str) -> Session:
    """The session a token carries.

    Raises:
        ApiError: 401 `invalid_session` when the token is not one this gateway signed (with
            this key), is expired, or names no customer or auditor.
    """
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[SESSION_ALGORITHM],
            issuer=SESSION_ISSUER,
            options={"require": ["exp", "iat", "sub", "jti", "iss"]},
        )
    except jwt.ExpiredSignatureError as error:
        raise _invalid_session("the session expired: sign in again") from error
    except jwt.InvalidTokenError as error:
        raise _invalid_session(f"not a session token of this gateway: {error}") from error
    address, role = claims.get("sub"), claims.get("role")
    if not isinstance(address, str) or role not in SESSION_ROLES:
        raise _invalid_session("not a session token of this gateway")
    return Session(address, role, int(claims["exp"]), str(claims["jti"]))


def _invalid_session(message: str) -> ApiError:
    return ApiError(
        401,
        code="invalid_session",
        message=message,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def token_matches(expected: str | None, presented: str) -> bool:
    """Whether `presented` is the configured token `expected` (never when none is configured)."""
    return bool(expected) and hmac.compare_digest(presented.encode(), str(expected).encode())
