"""ledger.complaints.sla: targets per subject kind, from LEDGER_COMPLAINT_* settings."""

from __future__ import annotations

import pytest

from ledger.complaints.sla import Targets, levels_from_settings
from ledger.errors import ConfigError
from ledger.settings import Settings


def test_the_default_targets_are_30_minutes_2_hours_and_8_hours() -> None:
    levels = levels_from_settings(Settings.from_env({}))

    assert levels.targets("bill_line") == Targets(1800, 7200, 28_800)


def test_a_kind_named_in_complaint_targets_gets_its_own_and_keeps_the_rest() -> None:
    settings = Settings.from_env(
        {
            "LEDGER_COMPLAINT_RESPONSE_TARGET_S": "1200",
            "LEDGER_COMPLAINT_TARGETS": '{"outage": {"response_s": 900}}',
        }
    )

    levels = levels_from_settings(settings)

    assert levels.targets("outage") == Targets(900, 7200, 28_800)
    assert levels.targets("trade") == Targets(1200, 7200, 28_800)


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        '{"weather": {"response_s": 60}}',
        '{"outage": {"resolution_s": 60}}',
        '{"outage": {"response_s": 0}}',
    ],
)
def test_complaint_targets_naming_an_unknown_kind_or_step_or_no_time_is_a_config_error(
    value: str,
) -> None:
    with pytest.raises(ConfigError, match="LEDGER_COMPLAINT_TARGETS"):
        Settings.from_env({"LEDGER_COMPLAINT_TARGETS": value})
