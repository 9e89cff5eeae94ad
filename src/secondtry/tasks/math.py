"""MATH-format JSONL (PRM800K / MATH-500 / hendrycks MATH): problem, solution, answer."""

from __future__ import annotations

from ..config import TaskConfig
from ..types import Problem
from .io import TaskDataError, build_problems, text_field, with_instruction

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def last_boxed(text: str) -> str | None:
    r"""The content of the last \boxed{...} in `text`, braces balanced.

    >>> last_boxed(r"so $\boxed{\frac{1}{2}}$ and")
    '\\frac{1}{2}'
    """
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth = start + len("\\boxed{"), 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j].strip()
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
        return Problem(id=pid, prompt=with_instruction(question, instruction), answer=answer.strip(),
                       solution=solution, meta=meta)

    return build_problems(cfg, seed, make)

