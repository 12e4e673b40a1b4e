"""The body of every error answer (`api/errors.py` writes it)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable error code")
    message: str


class ErrorPublic(BaseModel):
    error: ErrorDetail
