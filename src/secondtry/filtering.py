"""Attempts -> SFT examples: keep the correct retries, as (problem -> retry) pairs.

By default the example's prompt is the first-attempt conversation: the model learns to produce the
retry without having seen the failure. With `filter.retry_example: turn` the prompt is the retry's
whole conversation as the model saw it (the problem, the failed attempt, the retry prompt), so the
model also learns the second turn itself; the loss stays on the retry (training puts it on the
completion only). `both` keeps each correct retry as both examples. Every rejected attempt is
counted by reason. A generation cut at max_new_tokens is never kept, whatever its verdict: it has no
ending to learn.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from .conditions import PRIVILEGED, restates_hint
from .config import Config
from .types import Attempt, Example, Kind, Message, Problem

FirstBuilder = Callable[[Problem, list[str], Config], list[Message]]


def select(
    attempts: Sequence[Attempt], problems: dict[str, Problem], first: FirstBuilder, cfg: Config
) -> tuple[list[Example], dict[str, Any]]:
    """The training examples and the counts behind them (kept, rejected by reason, lucky share)."""
    f = cfg.filter
    kinds = {Kind.RETRY} | ({Kind.FIRST} if f.include_first_attempts else set())
    counts: Counter[str] = Counter()
    examples: list[Example] = []
    seen: set[tuple[str, str]] = set()
    per_problem: Counter[str] = Counter()
    answer_right = lucky = 0
    privileged = cfg.conditions.retry in PRIVILEGED  # the retry prompt showed the gold answer
    for a in attempts:
        if a.kind not in kinds:
            continue
        if a.finish_reason == "length":
            counts["cut"] += 1
            continue
        if a.verdict.correct is None:
            counts["unjudged"] += 1
            continue
        if not a.verdict.correct:
            counts["wrong"] += 1
            continue
        answer_right += 1
        lucky += a.verdict.lucky
        if f.require == "steps" and a.verdict.steps is None:
            raise ValueError(
                f"filter.require=steps but the {cfg.verifier.name} verifier does not check "
                f"steps; use filter.require=answer"
            )
        if f.require == "steps" and a.verdict.lucky:
            counts["lucky"] += 1
            continue
        if privileged and a.kind == Kind.RETRY and restates_hint(a.completion):
            counts["hint_leak"] += 1  # trained on only with filter.hint_leaks: keep
            if f.hint_leaks == "drop":
                continue
        if f.dedupe and (a.problem_id, a.completion) in seen:
            counts["duplicate"] += 1
            continue
        if per_problem[a.problem_id] >= f.max_per_problem:
            counts["over_cap"] += 1
            continue
        seen.add((a.problem_id, a.completion))
        per_problem[a.problem_id] += 1
        examples += _examples(a, tuple(first(problems[a.problem_id], [], cfg)), f.retry_example)
    leaks = counts["hint_leak"] if privileged else None
    if f.hint_leaks == "keep":
        counts.pop("hint_leak", None)  # kept, so not a rejection; still reported as hint_leaks
    stats = {
        "kept": len(examples),
        "kept_from": dict(Counter(e.source for e in examples)),
        "problems": len(per_problem),
        "rejected": dict(counts),
        "hint_leaks": leaks,  # gold-hint retries that name or quote the hint, dropped or kept
        # right answers reached through a wrong step, among right answers (None: steps not checked)
        "lucky_share": (lucky / answer_right)
        if answer_right and any(a.verdict.steps is not None for a in attempts)
        else None,
    }
    return examples, stats


TURN = "retry_turn"  # an example whose prompt is the retry's whole conversation


def _examples(a: Attempt, problem: tuple[Message, ...], form: str) -> list[Example]:
    """A kept attempt as examples: problem -> completion, and/or (a retry) its whole conversation ->
    completion. A retry whose conversation is the problem alone (resampling) makes one example."""
    single = Example(a.problem_id, problem, a.completion, source=a.kind, turn=a.turn)
    if a.kind != Kind.RETRY or form == "problem" or a.messages == problem:
        return [single]
    turn = Example(a.problem_id, a.messages, a.completion, source=TURN, turn=a.turn)
    return [turn] if form == "turn" else [single, turn]
