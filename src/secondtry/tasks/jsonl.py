"""Any JSONL (or hub dataset) with a column mapping: `columns: {question: q, answer: a, id: uid, solution: s}`."""

from __future__ import annotations

from ..config import TaskConfig
from ..types import Problem
from .io import TaskDataError, build_problems, text_field, with_instruction

ROLES = ("question", "answer", "id", "solution")


def load(cfg: TaskConfig, seed: int) -> list[Problem]:
    unknown = set(cfg.columns) - set(ROLES)
    if unknown:
        raise TaskDataError(
            f"task jsonl: unknown columns role(s) {sorted(unknown)}; valid: {', '.join(ROLES)}"
        )
    col = {role: cfg.columns.get(role, role) for role in ROLES}

    def make(where: str, row: dict, index: int) -> Problem:
        pid = text_field(row, col["id"], where, required=False) or f"{cfg.name}-{cfg.split}-{index}"
        meta = {
            k: v for k, v in row.items() if k not in col.values() and isinstance(v, (str, int, float, bool))
        }
        return Problem(
            id=pid,
            prompt=with_instruction(text_field(row, col["question"], where), cfg.instruction),
            answer=text_field(row, col["answer"], where).strip(),
            solution=text_field(row, col["solution"], where, required=False),
            meta=meta,
        )

    return build_problems(cfg, seed, make)
