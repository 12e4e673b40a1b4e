"""Progress bars of the long commands (`ledger simulate`, `bills issue`, `audit`, `export-bundle`,
`sim month`), drawn with rich on stderr.

One small helper for all of them, so they look and behave alike: a bar only when stderr is a
terminal, nothing at all otherwise, so scripts, pipes and tests read clean output (the commands'
results go to stdout, as JSON). `progress_bar` gives a bar to advance by hand; `track` wraps an
iterable and advances once per item.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")


class ProgressBar:
    """A bar on a terminal, or nothing (`shown` False): the same calls either way."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._progress = progress
        self._task = task
        self.completed = 0
        self.shown = progress is not None
        """Whether a bar is drawn (stderr is a terminal)."""

    def advance(self, steps: int = 1) -> None:
        self.completed += steps
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=self.completed)

    def describe(self, text: str) -> None:
        """Replaces the text after the bar (e.g. counts by outcome)."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, status=text)

    def close(self) -> None:
        """Draws the bar one last time and gives the terminal back; a second close is a no-op."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def progress_bar(
    description: str,
    *,
    total: int | None,
    unit: str,
    console: Console | None = None,
) -> ProgressBar:
    """A started bar `description [####    ] 120/400 unit 0:00:03 0:00:07`, on `console`
    (default: stderr); a silent one when that is not a terminal. `total` None: unknown (the
    bar pulses and shows the count). Close it when done."""
    console = console if console is not None else Console(stderr=True)
    if not console.is_terminal:
        return ProgressBar(None, None)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
    )
    task = progress.add_task(description, total=total, status="")
    progress.start()
    return ProgressBar(progress, task)


def track(
    items: Iterable[T],
    description: str,
    *,
    unit: str,
    total: int | None = None,
    console: Console | None = None,
) -> Iterator[T]:
    """Yields `items`, advancing a bar (see `progress_bar`) after each; its total is
    `len(items)` when they have one."""
    if total is None and isinstance(items, Sized):
        total = len(items)
    bar = progress_bar(description, total=total, unit=unit, console=console)
    try:
        for item in items:
            yield item
            bar.advance()
    finally:
        bar.close()
