"""Python code tasks: HumanEval (HumanEval.jsonl[.gz]) and MBPP (mbpp.jsonl, sanitized-mbpp.json).

`answer` is the test code the `code` verifier runs after the model's code; `solution` is the
canonical program. MBPP's splits are task_id ranges (its README): prompt 1-10, test 11-510,
validation 511-600, train 601-974; HumanEval has only a test split.
"""

from __future__ import annotations

import random

from ..config import TaskConfig
from ..types import Problem
from .io import Problems, TaskDataError, build_problems, text_field, with_instruction

HUMANEVAL_INSTRUCTION = "Return the whole function, with the imports it needs, in one ```python code block."
MBPP_INSTRUCTION = "Write the code in one ```python code block."
MBPP_SPLITS = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974)}


def _fenced(code: str) -> str:
    return f"```python\n{code.strip(chr(10))}\n```"


def load_humaneval(cfg: TaskConfig, seed: int) -> list[Problem]:
    """HumanEval: complete a Python function from its signature and docstring (test split only)."""
    if cfg.split != "test":
        raise TaskDataError(
            f"task {cfg.name}: HumanEval has only a test split (got split: {cfg.split}); "
            f"set split: test on this task"
        )
    instruction = HUMANEVAL_INSTRUCTION if cfg.instruction is None else cfg.instruction

    def make(where: str, row: dict, index: int) -> Problem:
        prompt = text_field(row, "prompt", where)
        entry = text_field(row, "entry_point", where).strip()
        test = text_field(row, "test", where)
        if "def check" not in test:
            raise TaskDataError(f"{where}: field 'test' defines no check(candidate) function")
        question = f"Complete the following Python function.\n\n{_fenced(prompt)}\n"
        return Problem(
            id=text_field(row, "task_id", where),
            prompt=with_instruction(question, instruction),
            answer=test,
            solution=prompt + text_field(row, "canonical_solution", where, required=False),
            meta={"entry_point": entry, "code_prompt": prompt},
        )

    return build_problems(cfg, seed, make)


def load_mbpp(cfg: TaskConfig, seed: int) -> list[Problem]:
    """MBPP (original or sanitized): write a Python function from a description and three asserts."""
    if cfg.split not in MBPP_SPLITS:
        raise TaskDataError(
            f"task {cfg.name}: unknown MBPP split {cfg.split!r}; valid: {', '.join(MBPP_SPLITS)}"
        )
    instruction = MBPP_INSTRUCTION if cfg.instruction is None else cfg.instruction

    def make(where: str, row: dict, index: int) -> Problem:
        text = text_field(
            row, "text" if "text" in row else "prompt", where
        )  # "prompt" in sanitized-mbpp.json
        tests = row.get("test_list")
        if not isinstance(tests, list) or not tests:
            got = repr(tests)[:100]
            raise TaskDataError(
                f"{where}: field 'test_list' should be a non-empty list of asserts, got {got}"
            )
        if not all(isinstance(t, str) and t.strip() for t in tests):
            raise TaskDataError(f"{where}: field 'test_list' holds an empty or non-text test")
        setup = text_field(row, "test_setup_code", where, required=False)
        imports = row.get("test_imports") or []
        if not isinstance(imports, list) or not all(isinstance(i, str) for i in imports):
            raise TaskDataError(f"{where}: field 'test_imports' should be a list of import lines")
        asserts = "\n".join(t.strip() for t in tests)
        question = f"{text.strip()}\nYour code should pass these tests:\n\n{_fenced(asserts)}\n"
        answer = "\n".join(part for part in (setup.strip(), *imports, asserts) if part)
        meta = {"test_setup": setup, "test_imports": list(imports)}
        return Problem(
            id=text_field(row, "task_id", where),
            prompt=with_instruction(question, instruction),
            answer=answer,
            solution=text_field(row, "code", where, required=False),
            meta=meta,
        )

    # rows of every split are read (so bad rows are found wherever they are), then one split is kept
    everything = build_problems(cfg.model_copy(update={"limit": None, "shuffle": False}), seed, make)
    low, high = MBPP_SPLITS[cfg.split]
    problems = [p for p in everything if p.id.isdigit() and low <= int(p.id) <= high]
    if not problems:
        raise TaskDataError(
            f"task {cfg.name} ({cfg.path}): no problems with task_id {low}-{high} (the {cfg.split} split)"
        )
    if cfg.shuffle:
        random.Random(seed).shuffle(problems)
    out = Problems(problems[: cfg.limit] if cfg.limit else problems)
    out.skipped, out.skip_reasons = everything.skipped, everything.skip_reasons
    return out
