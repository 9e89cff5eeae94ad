"""One small logging interface. `Log()` does nothing; `RichLog()` prints and draws progress bars.

Stages take a `log` and call `log.info(...)` and `with log.progress(label, total) as bar: bar(n)`
(`bar.resize(total)` when the total is known only later).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator


class Bar:
    """What `progress` yields: `bar(n)` advances it by n; `bar.resize(total)` sets a new total."""

    def __init__(self, advance: Callable[[int], None] = lambda n: None,
                 resize: Callable[[int], None] = lambda total: None) -> None:
        self._advance, self.resize = advance, resize

    def __call__(self, n: int = 1) -> None:
        self._advance(n)


class Log:
    """The do-nothing default (tests, library use)."""

    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    @contextlib.contextmanager
    def progress(self, label: str, total: int | None) -> Iterator[Bar]:
        yield Bar()


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
    def progress(self, label: str, total: int | None) -> Iterator[Bar]:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
        with Progress(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task(label, total=total)
            yield Bar(lambda n: bar.advance(task, n), lambda total: bar.update(task, total=total))
