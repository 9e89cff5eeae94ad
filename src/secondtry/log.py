"""One small logging interface. `Log()` does nothing; `RichLog()` prints and draws progress bars.

Stages take a `log` and call `log.info(...)` and `with log.progress(label, total) as bar: bar(n)`.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator


class Log:
    """The do-nothing default (tests, library use)."""

    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    @contextlib.contextmanager
    def progress(self, label: str, total: int | None) -> Iterator[Callable[[int], None]]:
        yield lambda n=1: None


class RichLog(Log):
    """Terminal output with rich progress bars (one per long stage)."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)

    def info(self, message: str) -> None:
        self.console.print(message, highlight=False)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)

    @contextlib.contextmanager
    def progress(self, label: str, total: int | None) -> Iterator[Callable[[int], None]]:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
        with Progress(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n=1: bar.advance(task, n)
