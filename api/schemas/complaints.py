"""Complaints: customers' signed steps and the operator's steps in; complaints with their rounds
and step clocks, the operator's queue and the monthly statistics out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ledger.complaints.service import MAX_TEXT_CHARS

_ADDRESS = r"^0x[0-9a-fA-F]{40}$"
_SIGNATURE = r"^0x[0-9a-fA-F]{130}$"
SubjectKind = Literal["bill_line", "reading", "trade", "outage", "other"]


def _text(what: str) -> Any:
    return Field(
        min_length=1,
        max_length=MAX_TEXT_CHARS,
        description=f"the {what} (UTF-8); its keccak256 goes on chain, the text stays here",
    )


class _Signed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer: str = Field(pattern=_ADDRESS, description="the signed-in customer's account")
    deadline: int = Field(ge=0, lt=2**256, description="the signature is valid until then")
    signature: str = Field(
        pattern=_SIGNATURE, description="0x + 65 bytes r || s || v (EIP-712, docs/complaints.md)"
    )


class ComplaintOpenIn(_Signed):
    """A complaint the customer signed (EIP-712 `Open`), for the gateway to relay."""

    subject_kind: SubjectKind
    subject_ref: str = Field(
        default="",
        max_length=66,
        description="0x + 64 hex digits (docs/complaints.md gives each kind's encoding), or "
        "empty for none",
    )
    text: str = _text("complaint")


class ComplaintRateIn(_Signed):
    """A rating of the resolution the customer signed (EIP-712 `Rate`)."""

    rating: int = Field(ge=1, le=5, description="1 (worst) to 5 (best)")


class ComplaintReopenIn(_Signed):
    """A reopening the customer signed (EIP-712 `Reopen`)."""

    text: str = _text("reason to reopen")


class ComplaintStepIn(BaseModel):
    """An operator step. No time: the chain stamps the step with its block's time."""

    model_config = ConfigDict(extra="forbid")

    step: Literal["respond", "assign", "plan", "resolve"]
    text: str = _text("answer")
    handler: str | None = Field(
        default=None,
        max_length=66,
        description="assign only: the handler's id, 1-32 bytes of text or 0x + 64 hex digits",
    )


class SigningContextPublic(BaseModel):
    """What the signed-in customer signs its next step with."""

    domain: dict[str, Any]
    customer: str
    nonce: int


class StepClockPublic(BaseModel):
    step: Literal["responded", "assigned", "planned", "resolved"]
    at: int | None = Field(description="block time of the step, null if not taken")
    took_s: int | None = Field(description="seconds from the round's start to the step")
    target_s: int | None = Field(description="the target of the complaint's kind, null if none")
    due_at: int | None
    state: Literal["met", "late", "waiting", "overdue", "taken", "pending"]
    met: bool | None = Field(description="null while waiting, or for a step without target")
    time_left_s: int | None = Field(description="waiting: seconds until due")
    overdue_s: int | None = Field(description="overdue: seconds past due")
    text: str | None
    text_hash: str | None


class RoundPublic(BaseModel):
    round: int
    started_at: int
    text: str | None = Field(description="the complaint (round 1) or the reopening's text")
    handler: str | None
    rating: int | None
    rated_at: int | None
    steps: list[StepClockPublic]


class ComplaintSummaryPublic(BaseModel):
    complaint_id: int
    customer: str
    subject_kind: str
    subject_ref: str
    status: Literal["open", "responded", "assigned", "planned", "resolved", "rated"]
    round: int
    opened_at: int
    round_started_at: int
    time_to_breach_s: int | None = Field(
        description="seconds until the next targeted step is due (negative: overdue); null "
        "when none is pending"
    )
    as_of: int = Field(description="the chain's latest block time the clocks are read at")


class ComplaintListPublic(BaseModel):
    complaints: list[ComplaintSummaryPublic]


class ComplaintPublic(ComplaintSummaryPublic):
    text: str | None
    text_hash: str
    rounds: list[RoundPublic]


class ComplaintStepPublic(ComplaintPublic):
    """The complaint after a step, with the step's transaction and its time (the block's)."""

    transaction_hash: str
    block_number: int
    step_at: int


class StepStatisticsPublic(BaseModel):
    step: str
    taken: int
    median_s: int | None
    p90_s: int | None
    target_s: int | None
    due: int | None
    met: int | None
    share_met_bp: int | None = Field(description="met / due in basis points, rounded down")


class BreachPublic(BaseModel):
    complaint_id: int
    round: int
    step: str
    subject_kind: str
    target_s: int
    due_at: int
    answered: bool = Field(description="true: taken late; false: still not taken at as_of")
    delay_s: int


class MonthlyStatisticsPublic(BaseModel):
    month: str
    period_start: int
    period_end: int
    as_of: int
    count: int
    reopened: int
    steps: list[StepStatisticsPublic]
    breaches: list[BreachPublic] = Field(description="the negative list")
