"""Conditions: the conversations the model answers. build(problem, failed, cfg) -> list[Message].

`failed` holds the completions that already failed on this problem, oldest first (empty
for a first attempt). What a retry sees is decided here and recorded with every attempt:
with `conditions.history: all` it sees each earlier attempt and retry turn, with `last`
only the attempt just before. (Chat templates may drop parts of earlier assistant turns:
Qwen3's drops their `<think>` content, so a thinking-mode retry never sees that reasoning.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .config import Config
from .plugins import register
from .types import Message, Problem

Builder = Callable[[Problem, list[str], Config], list[Message]]


def first_attempt(problem: Problem, failed: list[str], cfg: Config) -> list[Message]:
    """The problem alone (after the optional system prompt)."""
    system = [Message("system", cfg.model.system_prompt)] if cfg.model.system_prompt else []
    return [*system, Message("user", problem.prompt)]


def _with_retries(problem: Problem, failed: list[str], cfg: Config, retry_text: str) -> list[Message]:
    shown = failed if cfg.conditions.history == "all" else failed[-1:]
    messages = first_attempt(problem, [], cfg)
    for completion in shown:
        messages += [Message("assistant", completion), Message("user", retry_text)]
    return messages


def retry(problem: Problem, failed: list[str], cfg: Config) -> list[Message]:
    """The failed attempt(s), then the bare retry prompt ("Try again carefully.")."""
    return _with_retries(problem, failed, cfg, cfg.conditions.retry_prompt)


def gold_hint(problem: Problem, failed: list[str], cfg: Config) -> list[Message]:
    """STaR-style rationalisation: the retry prompt carries the gold answer (privileged information)."""
    hint = f"{cfg.conditions.retry_prompt} (Hint: the correct final answer is {problem.answer}.)"
    return _with_retries(problem, failed, cfg, hint)


def rationalize(problem: Problem, failed: list[str], cfg: Config) -> list[Message]:
    """STaR's rationalisation: the problem asked afresh with the gold answer as a hint; the failure is not shown."""
    messages = first_attempt(problem, [], cfg)
    hint = f"{problem.prompt}\n\n(Hint: the correct final answer is {problem.answer}.)"
    return [*messages[:-1], Message("user", hint)]


def resample(problem: Problem, failed: list[str], cfg: Config) -> list[Message]:
    """The resampling baseline: a fresh, independent sample of the problem; the failure is not shown."""
    return first_attempt(problem, [], cfg)


CONDITIONS: dict[str, Builder] = {
    "first_attempt": first_attempt,
    "retry": retry,
    "gold_hint": gold_hint,
    "rationalize": rationalize,
    "resample": resample,
}

HINT_PHRASES = ("hint", "correct final answer is", "the given answer", "answer provided", "as given")


def restates_hint(completion: str) -> bool:
    """A gold-hint retry that leans on the hint (names it, quotes it) rather than solving the problem."""
    text = completion.lower()
    return any(phrase in text for phrase in HINT_PHRASES)


# conditions that show the model privileged information (never used at test time), and what they show
PRIVILEGED = {"gold_hint": "gold answer", "rationalize": "gold answer"}


def register_condition(name: str, build: Builder | None = None, *, privileged: str | None = None) -> Any:
    """Add a condition: `register_condition("name", build)`, or `@register_condition("name")` on
    `build(problem, failed, cfg) -> list[Message]`. `privileged` names what it shows that a test-time
    retry must not (e.g. "gold answer"). A name already taken is refused."""

    def add(fn: Builder) -> Builder:
        register(CONDITIONS, "condition", name, fn)
        if privileged:
            PRIVILEGED[name] = privileged
        return fn

    return add if build is None else add(build)
