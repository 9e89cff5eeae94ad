"""Verifier for the synthetic arithmetic task: the final answer, and every step on its own terms."""

from __future__ import annotations

import re
from typing import Any

from ..types import Problem, Verdict

ANSWER = re.compile(r"Answer:\s*(-?\d+)")
STEP = re.compile(r"\s*(-?\d+)\s*([+-])\s*(\d+)\s*=\s*(-?\d+)\s*")
EXPRESSION = re.compile(r"\s*\d(?:\s*[+-]\s*\d)+\s*")


def _operation(problem: Problem) -> tuple[list[int], list[str]] | None:
    """Operands and ops from the problem's meta, else parsed from its prompt."""
    meta: Any = problem.meta or {}
    if "operands" in meta and "ops" in meta:
        try:
            operands, ops = [int(x) for x in meta["operands"]], [str(op) for op in meta["ops"]]
        except (TypeError, ValueError):
            return None
        return (operands, ops) if len(operands) == len(ops) + 1 else None
    first_line = problem.prompt.strip().splitlines()[0] if problem.prompt.strip() else ""
    if not EXPRESSION.fullmatch(first_line):
        return None
    tokens = re.findall(r"\d|[+-]", first_line)
    return [int(t) for t in tokens[::2]], tokens[1::2]


def _steps(body: str, operands: list[int], ops: list[str]) -> tuple[bool, ...]:
    """One boolean per expected step; extra steps are appended as False."""
    segments = [s for s in body.split("|") if s.strip()]
    out: list[bool] = []
    prev: int | None = operands[0]  # the stated result a step must start from
    for i, segment in enumerate(segments):
        m = STEP.fullmatch(segment)
        if i >= len(ops) or m is None:
            out.append(False)
            prev = None
            continue
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        true_prev = _true_value(operands, ops, i)
        start_ok = a == (
            true_prev if prev is None else prev
        )  # unreadable previous step: judge against the truth
        out.append(
            start_ok and op == ops[i] and b == operands[i + 1] and c == (a + b if op == "+" else a - b)
        )
        prev = c
    return tuple(out + [False] * (len(ops) - len(out)))


def _true_value(operands: list[int], ops: list[str], i: int) -> int:
    """The correct value before operation i."""
    a = operands[0]
    for op, b in zip(ops[:i], operands[1 : i + 1]):
        a = a + b if op == "+" else a - b
    return a


def verify(problem: Problem, completion: str) -> Verdict:
    """Right iff the last `Answer: N` equals the gold answer; `steps` checks each `a<op>b=c`.

    >>> p = Problem("p", "4+5+2-9", "2", meta={"operands": [4, 5, 2, 9], "ops": ["+", "+", "-"]})
    >>> verify(p, "4+5=9|9+2=11|11-9=2|Answer: 2").steps_ok
    True
    >>> v = verify(p, "4+5=8|8+2=11|11-9=2|Answer: 2")  # right answer, two wrong steps
    >>> v.correct, v.steps, v.lucky
    (True, (False, False, True), True)
    >>> verify(p, "no idea")
    Verdict(correct=False, extracted=None, reason='no answer', steps=(False, False, False), details=None)
    """
    try:
        if not isinstance(completion, str):
            return Verdict(False, None, f"completion is {type(completion).__name__}, not text")
        matches = list(ANSWER.finditer(completion))
        body = completion[: matches[-1].start()] if matches else completion
        operation = _operation(problem)
        steps = _steps(body, *operation) if operation else None
        if not matches:
            return Verdict(False, None, "no answer", steps)
        extracted = matches[-1][1]
        try:
            gold = int(str(problem.answer).strip())
        except ValueError:
            return Verdict(None, extracted, f"gold answer {problem.answer!r} is not an integer", steps)
        correct = int(extracted) == gold
        return Verdict(correct, extracted, "right answer" if correct else f"expected {gold}", steps)
    except Exception as e:  # a verifier never raises on odd input
        return Verdict(None, None, f"cannot judge: {type(e).__name__}: {e}")
