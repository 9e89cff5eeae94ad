"""Synthetic arithmetic: left-to-right + and − on single digits, worked step by step.

A problem's prompt is the expression (`4+5+2-9`); its worked solution is
`4+5=9|9+2=11|11-9=2|Answer: 2`. Every intermediate value stays within 0..99.
An expression belongs to the test split iff a stable hash of it is 0 mod 5, so the
splits are disjoint for any seeds, and toy pretraining can draw from train only.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence

from ..config import TaskConfig
from ..types import Problem
from .io import TaskDataError, with_instruction

WORLD_VERSION = 1  # bump when generation or solution format changes (toy model caches key on it)
MAX_VALUE = 99
ERROR_OFFSETS = (-10, -2, -1, 1, 2, 10)
OPTIONS = ("count", "levels", "seed")
MAX_COUNT = 1_000_000  # problems of one split: far more than a run uses, a few GB of memory at most
SPLITS = ("train", "test")


def expression(operands: Sequence[int], ops: Sequence[str]) -> str:
    return str(operands[0]) + "".join(f"{op}{b}" for op, b in zip(ops, operands[1:]))


def split_of(expr: str) -> str:
    """'test' for a fifth of all expressions, by a stable hash; 'train' for the rest."""
    return "test" if zlib.crc32(expr.encode()) % 5 == 0 else "train"


def apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b


def running_values(operands: Sequence[int], ops: Sequence[str]) -> list[int]:
    """The value after each operation."""
    values, a = [], operands[0]
    for op, b in zip(ops, operands[1:]):
        a = apply(a, op, b)
        values.append(a)
    return values


def random_problem(rng: random.Random, level: int) -> tuple[list[int], list[str]]:
    """Operands and ops with every intermediate value in 0..MAX_VALUE (resampled until so)."""
    while True:
        operands = [rng.randint(0, 9) for _ in range(level + 1)]
        ops = [rng.choice("+-") for _ in range(level)]
        if all(0 <= v <= MAX_VALUE for v in running_values(operands, ops)):
            return operands, ops


def _format(operands: Sequence[int], ops: Sequence[str], results: Sequence[int]) -> str:
    steps, a = [], operands[0]
    for op, b, c in zip(ops, operands[1:], results):
        steps.append(f"{a}{op}{b}={c}")
        a = c
    return "|".join(steps + [f"Answer: {a}"])


def solve(operands: Sequence[int], ops: Sequence[str]) -> str:
    """The correct worked solution.

    >>> solve([4, 5, 2, 9], ["+", "+", "-"])
    '4+5=9|9+2=11|11-9=2|Answer: 2'
    """
    return _format(operands, ops, running_values(operands, ops))


def teacher_solution(
    operands: Sequence[int],
    ops: Sequence[str],
    rng: random.Random,
    error_rate: float = 0.06,
    force_step: int | None = None,
) -> str:
    """A noisy worked solution: each step is wrong with probability `error_rate * len(ops)`.

    A wrong step's result is off by ±1, ±2 or ±10 and is carried forward into the next
    step. Offsets are chosen so that the rest of the chain stays ≥ 0. `force_step` makes
    that step wrong for sure.
    """
    p = error_rate * len(ops)
    results, a = [], operands[0]
    for i, (op, b) in enumerate(zip(ops, operands[1:])):
        c = apply(a, op, b)
        if i == force_step or rng.random() < p:
            floor = -min(
                [0, *running_values([0, *operands[i + 2 :]], ops[i + 1 :])]
            )  # lowest dip of the rest
            c += rng.choice([d for d in ERROR_OFFSETS if floor <= c + d <= MAX_VALUE])
        results.append(c)
        a = c
    return _format(operands, ops, results)


def wrong_teacher_solution(
    operands: Sequence[int], ops: Sequence[str], rng: random.Random, error_rate: float = 0.06
) -> str:
    """A teacher solution with at least one wrong step and a wrong final answer."""
    right = solve(operands, ops)
    while True:
        text = teacher_solution(operands, ops, rng, error_rate, force_step=rng.randrange(len(ops)))
        if text.rsplit("Answer: ", 1)[1] != right.rsplit("Answer: ", 1)[1]:  # errors can cancel out
            return text


def generate(count: int, levels: list[int], seed: int, split: str) -> list[Problem]:
    """`count` distinct problems of the split, levels drawn uniformly; deterministic for a seed."""
    if split not in SPLITS:
        raise TaskDataError(f"synthetic task: split must be one of {', '.join(SPLITS)}, got {split!r}")
    bad = [lv for lv in levels if not isinstance(lv, int) or not 1 <= lv <= 10]
    if not levels or bad:
        raise TaskDataError(
            f"synthetic task: levels must be integers in 1..10 (operations per problem), got {levels!r}"
        )
    rng = random.Random(f"synthetic-{seed}-{split}")
    seen: set[str] = set()
    problems: list[Problem] = []
    tries = 0
    while len(problems) < count:
        level = rng.choice(levels)
        while True:  # redraw within the level, so duplicates don't skew the level mix
            tries += 1
            if tries > 200 * count + 10_000:
                raise TaskDataError(
                    f"synthetic task: only {len(problems)} distinct {split} problems found for "
                    f"levels {levels}; lower count or add levels"
                )
            operands, ops = random_problem(rng, level)
            expr = expression(operands, ops)
            if expr not in seen and split_of(expr) == split:
                break
        seen.add(expr)
        problems.append(
            Problem(
                id=f"synthetic-{split}-{len(problems)}",
                prompt=expr,
                answer=str(running_values(operands, ops)[-1]),
                solution=solve(operands, ops),
                meta={"operands": operands, "ops": ops, "level": level},
            )
        )
    return problems


def load(cfg: TaskConfig, seed: int) -> list[Problem]:
    """Options: count (500), levels ([2, 3, 4]), seed (the run seed). `split` is train or test."""
    if cfg.path is not None:
        raise TaskDataError(
            f"task {cfg.name}: the synthetic task is generated, not loaded; remove `path` (got {cfg.path!r})"
        )
    unknown = sorted(set(cfg.options) - set(OPTIONS))
    if unknown:
        raise TaskDataError(
            f"task {cfg.name}: unknown option {unknown[0]!r}; accepted options: {', '.join(OPTIONS)}"
        )
    count = cfg.options.get("count", 500)
    if not isinstance(count, int) or count < 1:
        raise TaskDataError(f"task {cfg.name}: option count must be a positive integer, got {count!r}")
    if count > MAX_COUNT:
        raise TaskDataError(f"task {cfg.name}: option count must be at most {MAX_COUNT:,}, got {count:,}")
    problems = generate(
        count, list(cfg.options.get("levels", [2, 3, 4])), cfg.options.get("seed", seed), cfg.split
    )
    if cfg.shuffle:
        random.Random(seed).shuffle(problems)
    if cfg.instruction:
        problems = [
            Problem(p.id, with_instruction(p.prompt, cfg.instruction), p.answer, p.solution, p.meta)
            for p in problems
        ]
    return problems[: cfg.limit] if cfg.limit else problems
