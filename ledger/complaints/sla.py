"""Service-level targets of complaints: how long after a round's start (the opening or a
reopening) the operator's first response, the handler's assignment and the solution plan are
due, per subject kind.

Defaults follow the utility practice the project starts from: a response within 30 minutes,
a named handler within 2 hours, a plan within 8 hours (`LEDGER_COMPLAINT_RESPONSE_TARGET_S`,
`LEDGER_COMPLAINT_ASSIGNMENT_TARGET_S`, `LEDGER_COMPLAINT_PLAN_TARGET_S`). A kind may have its
own (`LEDGER_COMPLAINT_TARGETS`, JSON: `{"outage": {"response_s": 900}}`; a step it does not
name keeps the default). The resolution has no target: its time is shown and counted in the
statistics, never a breach.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ledger.settings import Settings

DEFAULT_RESPONSE_S = 30 * 60
DEFAULT_ASSIGNMENT_S = 2 * 3600
DEFAULT_PLAN_S = 8 * 3600
TARGET_KEYS = ("response_s", "assignment_s", "plan_s")
"""The keys a kind's override may name in LEDGER_COMPLAINT_TARGETS."""


@dataclass(frozen=True)
class Targets:
    """Seconds from a round's start within which each targeted step is due."""

    response_s: int = DEFAULT_RESPONSE_S
    assignment_s: int = DEFAULT_ASSIGNMENT_S
    plan_s: int = DEFAULT_PLAN_S

    def for_step(self, step: str) -> int | None:
        """The target of a step ('responded', 'assigned', 'planned'), None for the others."""
        return {
            "responded": self.response_s,
            "assigned": self.assignment_s,
            "planned": self.plan_s,
        }.get(step)


@dataclass(frozen=True)
class ServiceLevels:
    """The targets of every subject kind: `default`, except where `by_kind` says otherwise."""

    default: Targets = field(default_factory=Targets)
    by_kind: Mapping[str, Targets] = field(default_factory=dict)

    def targets(self, kind: str) -> Targets:
        return self.by_kind.get(kind, self.default)

    @classmethod
    def from_overrides(
        cls, default: Targets, overrides: Mapping[str, Mapping[str, int]]
    ) -> ServiceLevels:
        """`default` for every kind, with each kind's named targets replaced."""
        return cls(
            default=default,
            by_kind={kind: replace(default, **dict(values)) for kind, values in overrides.items()},
        )


def levels_from_settings(settings: Settings) -> ServiceLevels:
    """The targets LEDGER_COMPLAINT_*_TARGET_S and LEDGER_COMPLAINT_TARGETS configure."""
    default = Targets(
        response_s=settings.complaint_response_target_s,
        assignment_s=settings.complaint_assignment_target_s,
        plan_s=settings.complaint_plan_target_s,
    )
    return ServiceLevels.from_overrides(default, settings.complaint_targets)
