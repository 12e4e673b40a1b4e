"""ledger.complaints.service: what a complaint request may carry, checked before anything is
saved or sent."""

from __future__ import annotations

import pytest

from ledger.complaints.service import (
    MAX_TEXT_CHARS,
    ComplaintInputError,
    bytes32_of,
    checked_text,
    shown_bytes32,
    subject_kind_number,
)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "x" * (MAX_TEXT_CHARS + 1), "lone \ud800 surrogate", "nul \x00 inside"],
)
def test_a_text_that_cannot_be_hashed_and_kept_is_complaint_invalid_input(text: str) -> None:
    with pytest.raises(ComplaintInputError):
        checked_text(text)


def test_a_text_of_any_script_is_kept_as_given() -> None:
    assert checked_text("电费账单第三行有误。") == "电费账单第三行有误。"


def test_a_handler_of_up_to_32_bytes_is_right_padded() -> None:
    assert bytes32_of("STAFF-0042", "handler") == b"STAFF-0042".ljust(32, b"\x00")


@pytest.mark.parametrize("value", ["", "x" * 33, "\ud800"])
def test_a_handler_that_is_not_1_to_32_bytes_is_complaint_invalid_input(value: str) -> None:
    with pytest.raises(ComplaintInputError):
        bytes32_of(value, "handler")


def test_a_handler_id_shows_as_its_text() -> None:
    assert shown_bytes32(b"STAFF-0042".ljust(32, b"\x00")) == "STAFF-0042"


def test_an_unknown_subject_kind_is_complaint_invalid_input() -> None:
    with pytest.raises(ComplaintInputError):
        subject_kind_number("weather")
