"""Sign-In with Ethereum (EIP-4361): a customer or auditor proves control of an address and
gets a short-lived session token (docs/access.md walks a client through it).

1. `POST /v1/auth/nonce`: a fresh nonce, kept in the database until used or expired, and what
   the message must name (domain, URI, chain id).
2. The client signs an EIP-4361 message with that nonce (EIP-191 `personal_sign`).
3. `POST /v1/auth/sign-in`: the gateway checks the message against its own domain, URI and chain
   id, its expiry and not-before times, uses up the nonce, checks the signature (by recovery,
   or for an address with code through its EIP-1271 `isValidSignature` on the chain) and answers
   a session token: `auditor` when the address holds AUDITOR_ROLE in the MeterRegistry, else
   `customer`.

Each refusal has its own code and opens no session.
"""

from __future__ import annotations

import functools
import importlib
import re
import time
from datetime import UTC, datetime
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from eth_keys.exceptions import BadSignature
from eth_utils.crypto import keccak
from fastapi import APIRouter, Request

from api.access import public
from api.auth import issue_session, session_token
from api.deps import CallerDep, NodeDep, get_session_secret
from api.errors import ApiError
from api.schemas.auth import CallerPublic, NoncePublic, SessionPublic, SignInIn
from api.schemas.errors import ErrorPublic
from ledger.node import LedgerNode
from ledger.store.sign_in import issue_nonce, use_nonce

router = APIRouter(prefix="/v1/auth", tags=["auth"])

NONCE_TTL_S = 600
"""How long a nonce waits for its sign-in: time to open a wallet and read the message."""

AUDITOR_ROLE = keccak(text="AUDITOR_ROLE")
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")

_SIGN_IN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorPublic,
        "description": "`siwe_wrong_domain`, `siwe_wrong_uri`, `siwe_wrong_chain`, "
        "`siwe_expired`, `siwe_not_yet_valid`, `siwe_nonce_unknown` (never issued, used or "
        "expired), `siwe_bad_signature`",
    },
    422: {"model": ErrorPublic, "description": "`siwe_malformed`, `invalid_request`"},
}


def _refused(code: str, message: str, status: int = 401) -> ApiError:
    return ApiError(status, code=code, message=message)


@functools.cache
def _siwe() -> ModuleType:
    """The `siwe` package, imported at the first nonce or sign-in rather than at start: it builds
    its ABNF grammars on import, about half a second of CPU, a third of a gateway worker's start,
    which every (re)start of every worker would pay whether or not anyone signs in."""
    return importlib.import_module("siwe.siwe")


def expected_origin(node: LedgerNode) -> tuple[str, str, str]:
    """(scheme, domain, URI) a message must name: from `LEDGER_PUBLIC_URL`."""
    public = urlsplit(node.settings.public_url)
    return public.scheme, public.netloc, f"{public.scheme}://{public.netloc}"


@router.post("/nonce", response_model=NoncePublic, openapi_extra=public())
def new_nonce(node: NodeDep) -> NoncePublic:
    """A single-use nonce for a sign-in message, and the domain, URI and chain id the message
    must name."""
    now = int(time.time())
    nonce: str = _siwe().generate_nonce()
    issue_nonce(node.store, nonce, now=now, expires_at=now + NONCE_TTL_S)
    _, domain, uri = expected_origin(node)
    return NoncePublic(
        nonce=nonce,
        expires_at=now + NONCE_TTL_S,
        domain=domain,
        uri=uri,
        chain_id=node.chain.chain_id,
    )


_SIWE_FIRST_LINE_END = " wants you to sign in with your Ethereum account:"


@router.post(
    "/sign-in",
    response_model=SessionPublic,
    responses=_SIGN_IN_ERRORS,
    openapi_extra=public(),
)
def sign_in(body: SignInIn, node: NodeDep, request: Request) -> SessionPublic:
    """Checks a signed EIP-4361 message and opens a session for its address."""
    # siwe's grammar takes seconds to refuse a few thousand characters of anything else: text
    # without the message's first line is refused before it is parsed.
    if not body.message.split("\n", 1)[0].endswith(_SIWE_FIRST_LINE_END):
        raise _refused(
            "siwe_malformed",
            f"not an EIP-4361 message: its first line must be '{{domain}}{_SIWE_FIRST_LINE_END}'",
            422,
        )
    try:
        message = _siwe().SiweMessage.from_message(body.message)
    except ValueError as error:
        raise _refused("siwe_malformed", f"not an EIP-4361 message: {error}", 422) from error
    scheme, domain, uri = expected_origin(node)
    if message.domain != domain or (message.scheme is not None and message.scheme != scheme):
        raise _refused("siwe_wrong_domain", f"the message is for {message.domain}, not {domain}")
    if str(message.uri).rstrip("/") != uri:
        raise _refused("siwe_wrong_uri", f"the message's URI is {message.uri}, not {uri}")
    if message.chain_id != node.chain.chain_id:
        raise _refused(
            "siwe_wrong_chain",
            f"the message is for chain {message.chain_id}, not {node.chain.chain_id}",
        )
    now = int(time.time())
    moment = datetime.fromtimestamp(now, tz=UTC)
    expires = None
    if message.expiration_time is not None:
        expires = message.expiration_time._datetime
        if moment >= expires:
            raise _refused("siwe_expired", f"the message expired at {message.expiration_time}")
    if message.not_before is not None and moment < message.not_before._datetime:
        raise _refused("siwe_not_yet_valid", f"the message is valid from {message.not_before}")
    # The nonce is used up before the signature is checked: a signature check may cost a chain
    # call (EIP-1271), and each attempt then costs its sender a fresh nonce.
    if not use_nonce(node.store, message.nonce, now=now):
        raise _refused("siwe_nonce_unknown", "the nonce was never issued, is used or expired")
    try:
        if not _HEX.fullmatch(body.signature):
            raise _siwe().VerificationError("not 0x + hex")
        message.verify(body.signature, timestamp=moment, provider=node.chain.w3.provider)
    except (_siwe().VerificationError, BadSignature) as error:
        # BadSignature: 65 bytes from which no public key can be recovered (r = 0, s >= n).
        raise _refused("siwe_bad_signature", f"the signature is not {message.address}'s") from error
    registry = node.deployment.meter_registry
    auditor = bool(node.chain.call(registry.functions.hasRole(AUDITOR_ROLE, message.address)))
    ttl_s = node.settings.session_ttl_s
    if expires is not None:  # the session ends when the message said it would, if sooner
        ttl_s = min(ttl_s, int(expires.timestamp()) - now)
    session = issue_session(
        message.address, "auditor" if auditor else "customer", now=now, ttl_s=ttl_s
    )
    return SessionPublic(
        token=session_token(get_session_secret(request, node), session, now=now),
        address=session.address,
        role="auditor" if auditor else "customer",
        expires_at=session.expires_at,
    )


@router.get(
    "/session",
    response_model=CallerPublic,
    responses={401: {"model": ErrorPublic, "description": "`invalid_session`"}},
    openapi_extra=public(),
)
def who_am_i(caller: CallerDep) -> CallerPublic:
    """Who the request's bearer token says the caller is (anonymous without one): a client
    checks its session with it."""
    return CallerPublic(role=caller.role, address=caller.address)
