"""Sign-In with Ethereum: the nonce, the signed message, the session it opens."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class NoncePublic(BaseModel):
    nonce: str = Field(description="put it in the message's `Nonce:` line; good for one sign-in")
    expires_at: int = Field(description="Unix time (s) after which the nonce is refused")
    domain: str = Field(description="what the message's first line must name (host[:port])")
    uri: str = Field(description="what the message's `URI:` line must hold")
    chain_id: int = Field(description="what the message's `Chain ID:` line must hold")


class SignInIn(BaseModel):
    message: str = Field(
        min_length=1, max_length=4096, description="the EIP-4361 message text, as signed"
    )
    signature: str = Field(
        min_length=1,
        max_length=4096,
        description="0x + hex: the EIP-191 personal_sign signature of `message` (or an EIP-1271 "
        "contract wallet's signature)",
    )


class SessionPublic(BaseModel):
    token: str = Field(description="send it as `Authorization: Bearer <token>`")
    address: str = Field(description="the EIP-55 address that signed in")
    role: Literal["customer", "auditor"]
    expires_at: int = Field(description="Unix time (s) the token stops working; sign in again")


class CallerPublic(BaseModel):
    role: Literal["anonymous", "customer", "auditor", "registrar", "operator"] = Field(
        description="the strongest role the request's bearer token proves"
    )
    address: str | None = Field(description="the signed-in address, for a customer or auditor")
