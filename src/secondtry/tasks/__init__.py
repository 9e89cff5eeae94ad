"""Tasks: load(cfg: TaskConfig, seed) -> list[Problem]. A task owns its data format and its prompt.

`TASKS` is the one registry; `secondtry ls` is generated from it.
"""

from __future__ import annotations

from . import code, gsm8k, jsonl, math, synthetic
from .io import SOURCES, TaskDataError

TASKS = {
    "math": math.load,
    "gsm8k": gsm8k.load,
    "humaneval": code.load_humaneval,
    "mbpp": code.load_mbpp,
    "jsonl": jsonl.load,
    "synthetic": synthetic.load,
}

__all__ = ["TASKS", "SOURCES", "TaskDataError"]
