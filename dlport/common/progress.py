"""A progress bar on a terminal (rich, when installed); nothing at all when piped."""

from __future__ import annotations

import sys
from contextlib import contextmanager


class _Silent:
    def advance(self, note: str = "") -> None:
        pass

    def status(self, note: str) -> None:
        pass


class _RichBar:
    def __init__(self, progress, task):
        self._progress, self._task = progress, task

    def advance(self, note: str = "") -> None:
        self._progress.update(self._task, advance=1, note=note)

    def status(self, note: str) -> None:
        self._progress.update(self._task, note=note)


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True):
    """Yields ``advance(note)`` / ``status(note)``; a live bar only on an interactive stderr."""
    if not (enabled and sys.stderr.isatty()):
        yield _Silent()
        return
    try:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
    except ImportError:  # the `cli` extra is not installed
        yield _Silent()
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        yield _RichBar(progress, progress.add_task(description, total=total, note=""))
