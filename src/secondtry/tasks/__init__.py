"""Tasks: load(cfg: TaskConfig, seed) -> list[Problem]. A task owns its data format and its prompt.

`TASKS` is the one registry; `secondtry ls` is generated from it. `register_task` adds to it (a plugin's
tasks: secondtry/plugins.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from secondtry.config import TaskConfig
from secondtry.plugins import register
from secondtry.types import Problem

from . import code, gsm8k, jsonl, math, synthetic
from .io import SOURCES, TaskDataError

Loader = Callable[[TaskConfig, int], list[Problem]]

TASKS: dict[str, Loader] = {
    "math": math.load,
    "gsm8k": gsm8k.load,
    "humaneval": code.load_humaneval,
    "mbpp": code.load_mbpp,
    "jsonl": jsonl.load,
    "synthetic": synthetic.load,
}


def register_task(name: str, load: Loader | None = None) -> Any:
    """Add a task: `register_task("name", load)`, or `@register_task("name")` on `load(cfg, seed)`.
    Its docstring's first line is what `secondtry ls` shows. A name already taken is refused."""
    return register(TASKS, "task", name, load)


__all__ = ["TASKS", "SOURCES", "TaskDataError", "register_task"]
