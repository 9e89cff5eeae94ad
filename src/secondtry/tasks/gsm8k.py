"""GSM8K JSONL: question, answer (a worked solution whose last line is `#### N`)."""

from __future__ import annotations

from ..config import TaskConfig
from ..types import Problem
from .io import TaskDataError, build_problems, text_field, with_instruction
from .math import INSTRUCTION  # the same boxed-answer instruction


def load(cfg: TaskConfig, seed: int) -> list[Problem]:
    instruction = INSTRUCTION if cfg.instruction is None else cfg.instruction

    def make(where: str, row: dict, index: int) -> Problem:
        question = text_field(row, "question", where)
        worked = text_field(row, "answer", where)
        solution, sep, final = worked.rpartition("####")
        if not sep or not final.strip():
            raise TaskDataError(f"{where}: field 'answer' has no '#### <number>' final line")
        pid = str(row.get("id") or f"gsm8k-{cfg.split}-{index}")
        return Problem(
            id=pid,
            prompt=with_instruction(question, instruction),
            answer=final.strip().replace(",", ""),
            solution=solution.strip(),
        )

    return build_problems(cfg, seed, make)
