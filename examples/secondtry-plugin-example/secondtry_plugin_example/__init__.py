"""An example secondtry plugin: the `reverse_word` task and the `answer_line` verifier.

Importing this module registers both. secondtry imports it in the run and in every verifier worker
when the config says `plugins: [secondtry_plugin_example]` (with this folder's parent on PYTHONPATH),
or by itself once the package is installed (its `secondtry.plugins` entry point).
"""

from __future__ import annotations

import random
import re

from secondtry.config import TaskConfig
from secondtry.tasks import TaskDataError, register_task
from secondtry.types import Problem, Verdict
from secondtry.verifiers import register_verifier

WORDS = (
    "apple",
    "bridge",
    "candle",
    "dragon",
    "engine",
    "forest",
    "garden",
    "harbor",
    "island",
    "jungle",
    "kettle",
    "lantern",
    "meadow",
    "needle",
    "orange",
    "pencil",
    "quartz",
    "rocket",
    "saddle",
    "tunnel",
    "velvet",
    "window",
    "yellow",
    "zipper",
    "anchor",
    "button",
    "carpet",
    "donkey",
    "falcon",
    "goblet",
)
INSTRUCTION = "Write the word backwards, letter by letter. End with a line `Answer: <reversed word>`."


@register_task("reverse_word")
def load(cfg: TaskConfig, seed: int) -> list[Problem]:
    """Reverse a word letter by letter (procedural; options: count)."""
    unknown = set(cfg.options) - {"count"}
    if unknown:
        raise TaskDataError(
            f"task options: reverse_word has no option(s) {', '.join(sorted(unknown))}; valid: count"
        )
    if cfg.split not in ("train", "test"):
        raise TaskDataError(f"task split: reverse_word has the splits train and test, not {cfg.split!r}")
    count = int(cfg.options.get("count", len(WORDS)))
    words = [w for i, w in enumerate(WORDS) if (i % 5 == 0) == (cfg.split == "test")]
    rng = random.Random(seed)
    if cfg.shuffle:
        rng.shuffle(words)
    words = (words * (count // max(1, len(words)) + 1))[:count]
    problems = [
        Problem(
            id=f"{cfg.split}-{i}-{w}",
            prompt=f"{w}\n\n{cfg.instruction or INSTRUCTION}",
            answer=w[::-1],
            solution=" ".join(reversed(w)) + f"\nAnswer: {w[::-1]}",
        )
        for i, w in enumerate(words)
    ]
    return problems[: cfg.limit] if cfg.limit else problems


ANSWER = re.compile(r"^\s*answer\s*:\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)


@register_verifier("answer_line")
def verify(problem: Problem, completion: str, *, case_sensitive: bool = False) -> Verdict:
    """The last `Answer: X` line equals the gold answer (case-insensitive unless case_sensitive)."""
    found = ANSWER.findall(completion)
    if not found:
        return Verdict(False, None, "no Answer: line")
    got, gold = found[-1], problem.answer
    same = got == gold if case_sensitive else got.lower() == gold.lower()
    return Verdict(same, got, "answer matches" if same else "wrong answer")
