"""The long commands' progress bars (ledger/progress.py): silent unless stderr is a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from ledger.progress import progress_bar, track


def test_a_bar_writes_nothing_when_the_console_is_not_a_terminal() -> None:
    out = io.StringIO()
    bar = progress_bar("readings", total=10, unit="readings", console=Console(file=out))

    bar.advance(10)
    bar.close()

    assert not bar.shown
    assert bar.completed == 10
    assert out.getvalue() == ""


def test_a_bar_is_drawn_with_its_count_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    bar = progress_bar("readings", total=10, unit="readings", console=console)

    bar.advance(4)
    bar.describe("accepted 4")
    bar.close()

    assert bar.shown
    text = out.getvalue()
    assert "readings" in text and "4/10" in text and "accepted 4" in text


def test_track_yields_every_item_and_counts_them_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)

    items = list(track(["a", "b", "c"], "bills", unit="customers", console=console))

    assert items == ["a", "b", "c"]
    assert "3/3" in out.getvalue()


def test_the_default_console_is_stderr_and_pytest_capture_is_not_a_terminal() -> None:
    bar = progress_bar("readings", total=None, unit="readings")
    bar.advance()
    bar.close()

    assert not bar.shown
