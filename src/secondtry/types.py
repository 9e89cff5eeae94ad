"""The records that flow through secondtry: small frozen dataclasses, JSON in and out.

Every stage reads and writes these, one per JSONL line, so that every figure in a
report can be recomputed from per-problem records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One task item. `prompt` is the user message the model sees on a first attempt."""

    id: str
    prompt: str
    answer: str  # gold final answer, as the verifier compares it
    solution: str = ""  # reference solution text, when the dataset has one
    meta: Mapping[str, Any] = field(default_factory=dict)  # level, subject, operands, ...


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Verdict:
    """A verifier's judgement. `correct is None` means the verifier cannot judge."""

    correct: bool | None
    extracted: str | None = None  # the answer the verifier read from the completion
    reason: str = ""
    steps: tuple[bool, ...] | None = None  # per-step results, where the task can check steps
    details: Mapping[str, Any] | None = (
        None  # verifier-specific: extractor used, second grader, exit code, ...
    )

    @property
    def lucky(self) -> bool:
        """Right final answer reached through at least one wrong step."""
        return bool(self.correct) and self.steps is not None and not all(self.steps)

    @property
    def steps_ok(self) -> bool:
        """Right answer and, where steps are checked, every step right."""
        return bool(self.correct) and (self.steps is None or all(self.steps))


@dataclass(frozen=True)
class Completion:
    """What a backend returns for one sample of one conversation."""

    text: str
    n_tokens: int  # generated tokens, up to and including the stop token
    finish_reason: str = "stop"  # "stop" | "length"
    prompt_tokens: int = 0


class Kind(str, Enum):
    """What an attempt is: a greedy or sampled first attempt at evaluation, a first attempt on a training problem,
    or a retry turn. A str, so records hold the bare name ("retry") and compare equal to it."""

    GREEDY = "greedy"
    FIRST = "first"
    SAMPLE = "sample"
    RETRY = "retry"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Attempt:
    """One model output with its verdict, and exactly what the model saw."""

    problem_id: str
    kind: Kind
    turn: int  # 0 for a first attempt, j for the j-th retry turn of a chain
    sample: int  # which independent sample or chain of this problem
    messages: tuple[Message, ...]  # the conversation the completion answers
    completion: str
    n_tokens: int
    finish_reason: str
    verdict: Verdict


@dataclass(frozen=True)
class Example:
    """One SFT example: a prompt and the target the model learns to produce (the loss is on the target
    only)."""

    problem_id: str
    # the prompt: the problem; for "retry_turn", the failed attempt and the retry prompt too
    messages: tuple[Message, ...]
    completion: str
    source: str  # "retry" | "first" | "retry_turn"
    turn: int = 0


@dataclass(frozen=True)
class Decision:
    """A stopping decision and the figures it was taken on."""

    stop: bool
    reason: str
    policy: str | None = None  # the policy that stopped the run, if any
    inputs: Mapping[str, Any] = field(default_factory=dict)


def to_dict(record: Any) -> dict[str, Any]:
    """A dataclass record as plain JSON-ready data (tuples become lists)."""
    return dataclasses.asdict(record)


def _message_tuple(items: Any) -> tuple[Message, ...]:
    return tuple(Message(**m) if isinstance(m, Mapping) else m for m in items)


def verdict_from_dict(d: Mapping[str, Any]) -> Verdict:
    steps = d.get("steps")
    return Verdict(
        correct=d.get("correct"),
        extracted=d.get("extracted"),
        reason=d.get("reason", ""),
        steps=None if steps is None else tuple(bool(s) for s in steps),
        details=d.get("details"),
    )


def problem_from_dict(d: Mapping[str, Any]) -> Problem:
    return Problem(
        id=str(d["id"]),
        prompt=d["prompt"],
        answer=d["answer"],
        solution=d.get("solution", ""),
        meta=dict(d.get("meta", {})),
    )


def attempt_from_dict(d: Mapping[str, Any]) -> Attempt:
    return Attempt(
        problem_id=d["problem_id"],
        kind=Kind(d["kind"]),
        turn=d["turn"],
        sample=d["sample"],
        messages=_message_tuple(d["messages"]),
        completion=d["completion"],
        n_tokens=d["n_tokens"],
        finish_reason=d["finish_reason"],
        verdict=verdict_from_dict(d["verdict"]),
    )


def example_from_dict(d: Mapping[str, Any]) -> Example:
    return Example(
        problem_id=d["problem_id"],
        messages=_message_tuple(d["messages"]),
        completion=d["completion"],
        source=d["source"],
        turn=d.get("turn", 0),
    )


def decision_from_dict(d: Mapping[str, Any]) -> Decision:
    return Decision(
        stop=d["stop"], reason=d["reason"], policy=d.get("policy"), inputs=dict(d.get("inputs", {}))
    )
