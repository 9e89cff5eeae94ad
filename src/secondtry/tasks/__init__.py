"""Tasks: load(cfg: TaskConfig, seed) -> list[Problem]. A task owns its data format and its prompt.

`TASKS` is the one registry; `secondtry ls` is generated from it. Each task names the
verifier that fits it by default in `DEFAULT_VERIFIER`.
"""

from __future__ import annotations

from . import gsm8k, jsonl, math, synthetic
from .io import TaskDataError

TASKS = {
    "math": math.load,
    "gsm8k": gsm8k.load,
    "jsonl": jsonl.load,
    "synthetic": synthetic.load,
}

DEFAULT_VERIFIER = {"math": "math", "gsm8k": "numeric", "jsonl": "math", "synthetic": "synthetic"}

__all__ = ["TASKS", "DEFAULT_VERIFIER", "TaskDataError"]
