"""MATH-format JSONL (PRM800K / MATH-500 / hendrycks MATH): problem, solution, answer."""

from __future__ import annotations

import re

from ..config import TaskConfig
from ..types import Problem
from .io import TaskDataError, build_problems, text_field, with_instruction

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


def _braced(text: str, i: int) -> str | None:
    """The content of the brace group opening at text[i], or None if it never closes."""
    depth = 0
    j = i
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2  # an escaped char (\{ \} \\) never opens or closes the group
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
        j += 1
    return None


def _box_at(text: str, m: re.Match) -> str | None:
    """The content of the box whose command `m` matched, or None if it never closes."""
    i = m.end()
    while i < len(text) and text[i] in " \t":
        i += 1
    if i < len(text) and text[i] == "{":
        inner = _braced(text, i)
        return None if inner is None else inner.strip()
    if i > m.end():  # "\boxed x": one token, up to whitespace or a math delimiter
        tok = re.match(r"[^\s$]+", text[i:])
        if tok:
            return tok.group(0).rstrip(".,;")
    return None


def boxes(text: str) -> list[str]:
    r"""The contents of every complete ``\boxed{...}`` / ``\fbox{...}`` / ``\boxed x``, in order.

    >>> boxes(r"x = \boxed{2} or x = \boxed{3}, not \boxed{4")
    ['2', '3']
    """
    return [box for m in _BOX.finditer(text) if (box := _box_at(text, m)) is not None]


def last_boxed(text: str) -> str | None:
    r"""Content of the last complete ``\boxed{...}`` / ``\fbox{...}`` / ``\boxed x``.

    >>> last_boxed(r"\boxed{1} and \boxed{\frac{a}{\{b\}}}")
    '\\frac{a}{\\{b\\}}'
    >>> last_boxed(r"so $\boxed 7$.")
    '7'
    >>> last_boxed(r"\boxed{2} then \boxed{3")  # truncated box: the earlier one counts
    '2'
    """
    if "box" not in text:  # most completions of a long chain of thought: skip the scan
        return None
    for m in reversed(list(_BOX.finditer(text))):  # from the end: the first complete one is the answer
        if (box := _box_at(text, m)) is not None:
            return box
    return None


def load(cfg: TaskConfig, seed: int) -> list[Problem]:
    instruction = INSTRUCTION if cfg.instruction is None else cfg.instruction

    def make(where: str, row: dict, index: int) -> Problem:
        question = text_field(row, "problem", where)
        solution = text_field(row, "solution", where, required=False)
        if "answer" in row:
            answer = text_field(row, "answer", where)
        else:  # hendrycks MATH has no answer field: the last box of the solution is the answer
            answer = last_boxed(solution) or ""
            if not answer:
                raise TaskDataError(f"{where}: no 'answer' field and no \\boxed{{}} answer in 'solution'")
        pid = str(row.get("unique_id") or row.get("id") or f"{cfg.name}-{cfg.split}-{index}")
        meta = {k: row[k] for k in ("subject", "level", "type") if k in row}
        return Problem(
            id=pid,
            prompt=with_instruction(question, instruction),
            answer=answer.strip(),
            solution=solution,
            meta=meta,
        )

    return build_problems(cfg, seed, make)
