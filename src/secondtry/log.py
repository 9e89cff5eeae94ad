"""One small logging interface. `Log()` does nothing; `RichLog()` prints, with progress that shows anywhere.

Stages take a `log` and call `log.info(...)` and `with log.progress(label, total, unit) as bar: bar(n)`
(`bar.resize(total)` when the total is known only later).

On a terminal `RichLog` draws rich progress bars. Written to a pipe or a file (`secondtry demo > demo.log`,
a job scheduler's log) a bar would show only when it ends, so there each stage prints plain lines instead:
one when it starts, one at every tenth of the way or after `every_s` seconds without a line, whichever
comes first (with the count, the rate and the time left), and one when it ends.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO


class Bar:
    """What `progress` yields: `bar(n)` advances it by n; `bar.resize(total)` sets a new total."""

    def __init__(
        self,
        advance: Callable[[int], None] = lambda n: None,
        resize: Callable[[int], None] = lambda total: None,
    ) -> None:
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
    def progress(self, label: str, total: int | None, unit: str = "") -> Iterator[Bar]:
        yield Bar()


def duration(seconds: float) -> str:
    """A duration as a person reads it: 45s, 3m 05s, 1h 02m.

    >>> duration(4.2), duration(185), duration(3725)
    ('4s', '3m 05s', '1h 02m')
    """
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def _rate(n: float, seconds: float) -> str:
    """Items a second, or seconds an item when that reads better: 2.4/s, 1,250/s, 3.5 s each."""
    per = n / seconds if seconds > 0 else 0.0
    if per >= 1 or per == 0:
        return f"{per:,.1f}/s" if per < 100 else f"{per:,.0f}/s"
    return f"{seconds / n:,.1f} s each"


class PlainProgress:
    """Progress as plain lines for a pipe or a file (see the module docstring). Thread-safe: a stage may
    advance it from worker threads; a timer thread writes the line due after `every_s` seconds of silence."""

    def __init__(
        self,
        write: Callable[[str], None],
        label: str,
        total: int | None,
        unit: str = "",
        every_s: float = 30.0,
        step: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write, self.label, self.total, self.unit = write, label, total, unit
        self.every_s, self.step, self.clock = every_s, step, clock
        self.done = 0
        self.start = self.last_line = clock()
        self.next_mark = step  # the next tenth of the way that gets a line
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.timer: threading.Thread | None = None

    def begin(self) -> None:
        of = f"{self.total:,} {self.unit}".rstrip() if self.total is not None else "total unknown"
        self.write(f"{self.label}: started ({of})")
        if self.every_s > 0:
            self.timer = threading.Thread(target=self._tick, name="progress-lines", daemon=True)
            self.timer.start()

    def advance(self, n: int = 1) -> None:
        with self.lock:
            self.done += n
            if self.total and self.done / self.total >= self.next_mark and self.done < self.total:
                while self.next_mark <= self.done / self.total:
                    self.next_mark += self.step
                self._line()

    def resize(self, total: int) -> None:
        with self.lock:
            self.total = total

    def _tick(self) -> None:
        while not self.stopped.wait(min(1.0, self.every_s / 4)):
            with self.lock:
                if self.clock() - self.last_line >= self.every_s:
                    self._line()

    def _line(self) -> None:
        """The count, the share done, the time taken, the rate and the time left (the lock is held)."""
        now = self.clock()
        elapsed = now - self.start
        count = f"{self.done:,}/{self.total:,}" if self.total else f"{self.done:,}"
        parts = [
            f"{count} {self.unit}".rstrip() + (f" ({self.done / self.total:.0%})" if self.total else ""),
            duration(elapsed),
        ]
        if self.total and self.done >= self.total:
            parts.append("all counted, finishing")  # the stage's last work: what its count does not cover
        elif self.done:
            parts.append(_rate(self.done, elapsed))
            if self.total:
                parts.append(f"{duration(elapsed / self.done * (self.total - self.done))} left")
        else:
            parts.append("none finished yet")
        self.write(f"{self.label}: " + ", ".join(parts))
        self.last_line = now

    def end(self, failed: bool = False) -> None:
        self.stopped.set()
        if self.timer is not None:
            self.timer.join()
        with self.lock:
            elapsed = self.clock() - self.start
            count = f"{self.done:,} {self.unit}".rstrip()
            if failed:
                self.write(f"{self.label}: stopped after {count} in {duration(elapsed)}")
            else:
                rate = f", {_rate(self.done, elapsed)}" if self.done else ""
                self.write(f"{self.label}: done, {count} in {duration(elapsed)}{rate}")


class RichLog(Log):
    """Terminal output: rich progress bars on a terminal, plain progress lines on a pipe or a file.

    `plain` forces either (None: decide by whether stderr is a terminal); `every_s` is the longest silence
    of a stage's plain lines."""

    def __init__(self, plain: bool | None = None, every_s: float = 30.0, file: TextIO | None = None) -> None:
        from rich.console import Console

        self.console = Console(stderr=file is None, file=file)
        self.plain = (not self.console.is_terminal) if plain is None else plain
        self.every_s = every_s

    def _print(self, message: str, **style: Any) -> None:
        sys.stdout.flush()  # what the command printed before this line comes before it in a shared log
        # in a log file each message stays one line (grep finds it whole); a terminal wraps between words
        self.console.print(message, highlight=False, soft_wrap=self.plain, **style)
        if self.plain:
            self.console.file.flush()

    def info(self, message: str) -> None:
        self._print(message, markup=False)

    def warn(self, message: str) -> None:
        from rich.text import Text

        self._print(Text.assemble(("warning: ", "yellow"), message))  # type: ignore[arg-type]

    @contextlib.contextmanager
    def progress(self, label: str, total: int | None, unit: str = "") -> Iterator[Bar]:
        if self.plain:
            lines = PlainProgress(
                lambda line: self._print(line, markup=False), label, total, unit, self.every_s
            )
            lines.begin()
            try:
                yield Bar(lines.advance, lines.resize)
            except BaseException:
                lines.end(failed=True)
                raise
            lines.end()
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = [
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        ]
        with Progress(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task(label, total=total)
            yield Bar(lambda n: bar.advance(task, n), lambda total: bar.update(task, total=total))
