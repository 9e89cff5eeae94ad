r"""`secondtry bench verify`: math verdicts per second on MATH-like inputs, and a fuzz of pathological ones.

Throughput: every problem of a MATH-format file is judged four ways — its reference solution, the
same with a wrong final box, a "The final answer is X." restatement of the gold, and the gold
written as a decimal when it is a simple fraction — through a warm `VerifierPool` (its workers'
start-up is reported apart). The `long` workload puts 1,000 to 3,000 characters of working before
each of the four (other problems' solutions with their boxes unwrapped), as a chain of thought
would (a solution already longer stays as it is): the extractors then read whole long texts, and
two of the four have no box to find.
Fuzz: `pathological(n)` inputs (deep nesting, huge exponents and
factorials, unbalanced braces, megabyte strings, LaTeX token soup, control characters) through a
pool with a short hard timeout; a crash is a worker that died, a hang an item that ran more than a
second past its limit.

>>> items = pathological(40, seed=1)
>>> len(items), all(isinstance(p.answer, str) for p, _ in items)
(40, True)
>>> rows = [{"problem": f"p{i}", "solution": f"We add. $1+{i}={i + 1}$, so $\\boxed{{{i + 1}}}$.",
...          "answer": str(i + 1)} for i in range(30)]
>>> long = math_items(rows, long=True)
>>> len(long), min(len(c) for _, c in long) >= 1000, max(len(c) for _, c in long) <= 3000 + 200
(120, True, True)
"""

from __future__ import annotations

import os
import random
import re
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from secondtry.tasks.math import last_boxed
from secondtry.types import Problem, Verdict
from secondtry.verifiers.pool import VerifierPool

_SIMPLE_FRAC = re.compile(r"^\\[dt]?frac\{(-?\d+)\}\{(\d+)\}$")
_BOX_WORD = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
LONG_CHARS = (1000, 3000)  # the `long` workload's completion lengths, drawn uniformly


def _working(rows: list[dict[str, Any]], i: int, n_chars: int) -> str:
    """About `n_chars` of working for row i: the solutions of the rows after it, their boxes unwrapped."""
    parts, size, j = [], 0, i
    while size < n_chars and len(rows) > 1:
        j = (j + 1) % len(rows)
        if j == i:
            continue
        text = _BOX_WORD.sub("", rows[j]["solution"])
        parts.append(text)
        size += len(text) + 2
    return "\n\n".join(parts)[:n_chars]


def math_items(rows: list[dict[str, Any]], long: bool = False, seed: int = 0) -> list[tuple[Problem, str]]:
    """Four completions per MATH row: right, wrong box, 'answer is' phrase, decimal for a simple fraction.

    `long`: each completion is 1,000-3,000 characters, the four endings after working of a drawn length.
    """
    rng = random.Random(seed)
    items = []
    for i, row in enumerate(rows):
        start = len(items)
        solution, gold = row["solution"], row.get("answer") or last_boxed(row["solution"]) or ""
        problem = Problem(id=str(row.get("unique_id", i)), prompt=row["problem"], answer=gold)
        box = last_boxed(solution)
        items.append((problem, solution))
        if box is not None:
            at = solution.index("{", solution.rfind("\\boxed")) + 1  # the last box's content
            items.append((problem, solution[:at] + f"{box}+1" + solution[at + len(box) :]))
        items.append((problem, f"Working it out step by step.\nThe final answer is ${gold}$."))
        m = _SIMPLE_FRAC.match(gold.strip())
        value = f"{float(Fraction(int(m.group(1)), int(m.group(2)))):.10g}" if m else gold
        items.append((problem, f"So the result is $\\boxed{{{value}}}$."))
        if long:
            for k in range(start, len(items)):
                p, ending = items[k]
                pad = rng.randint(*LONG_CHARS) - len(ending) - 2
                items[k] = (p, f"{_working(rows, i, pad)}\n\n{ending}" if pad > 0 else ending)
    return items


_SOUP = [
    r"\frac",
    "{",
    "}",
    "^",
    "_",
    r"\sqrt",
    r"\left(",
    r"\right)",
    r"\begin{pmatrix}",
    r"\end{pmatrix}",
    "&",
    r"\\",
    r"\infty",
    r"\cup",
    r"\{",
    r"\}",
    "=",
    ",",
    "(",
    ")",
    "[",
    "]",
    "x",
    "y",
    "1",
    "2",
    "9",
    r"\pi",
    r"\cdot",
    r"\text{",
    r"\boxed{",
    "$",
    ".",
    "-",
    "+",
    "!",
    r"\sum",
    r"\int",
    r"\lim",
    "e",
    "i",
]


def pathological(n: int, seed: int = 0) -> list[tuple[Problem, str]]:
    """`n` hostile (problem, completion) pairs, cycling through the kinds of input that break parsers."""
    rng = random.Random(seed)

    def deep() -> str:
        d = rng.choice([50, 200, 1000, 3000])
        return rng.choice(
            [
                r"\frac{" * d + "1" + "}{2}" * d,
                "(" * d + "1" + ")" * d,
                r"\sqrt{" * d + "2" + "}" * d,
                "{" * d + "x" + "}" * d,
                "-" * d + "1",
            ]
        )

    def huge() -> str:
        return rng.choice(
            [
                r"2^{2^{2^{100}}}",
                r"10^{10^{10}}",
                r"9^{9^{9^{9}}}",
                r"(10^{100})!",
                r"1000000!",
                r"x^{10^{9}} - x^{10^{9}-1}",
                r"\binom{10^{9}}{10^{5}}",
                r"\sum_{n=1}^{10^{10}} n",
                r"e^{e^{e^{e^{10}}}}",
                r"10^{-10^{10}}",
                f"{rng.randint(1, 9)}" * 5000,
                r"\prod_{k=1}^{10^{6}} k",
                r"(2^{1000000})^{1000000}",
                r"\frac{1}{0}",
                r"0^0",
                r"\tan(\pi/2)",
                r"\log(0)",
                r"\sqrt{-1}^{10^{9}}",
            ]
        )

    def unbalanced() -> str:
        return rng.choice(
            [
                r"\frac{1}{2",
                r"}{}{",
                r"\left( 1, 2 \right]",
                r"\boxed{\frac{1}{2}",
                r"\sqrt{",
                r"\begin{pmatrix} 1 & 2",
                r"\end{pmatrix}",
                "$1$$",
                r"\text{",
                r"\frac{}{}",
                "{" * rng.randint(1, 50),
                "}" * rng.randint(1, 50),
                r"^^^___",
                r"\\\\\\",
            ]
        )

    def big() -> str:
        k = rng.choice([10**5, 10**6])
        return rng.choice(
            [
                "1" * k,
                "x+" * (k // 2) + "1",
                "a" * k,
                r"\frac{1}{2}" * (k // 11),
                "".join(rng.choices("0123456789+-*/^()", k=k)),
            ]
        )

    def soup() -> str:
        return " ".join(rng.choice(_SOUP) for _ in range(rng.randint(1, 300)))

    def odd() -> str:
        return rng.choice(
            [
                "\x00\x01\x02",
                "\u202e12",
                "١٢٣",
                "∞",
                "½",
                "\ud800",
                "NaN",
                "inf",
                "-0",
                "1e309",
                "0x1F",
                "1_000",
                "\t\n\r",
                "ℵ_0",
                "\\" * 1001,
                "$" * 999,
                "🙂",
            ]
        )

    kinds = [deep, huge, unbalanced, big, soup, odd]
    items = []
    for i in range(n):
        answer = (
            rng.choice(kinds)() if rng.random() < 0.5 else rng.choice(["2", r"\frac{1}{2}", "x+1", "(1,2)"])
        )
        inner = rng.choice(kinds)()
        completion = rng.choice(
            [
                f"\\boxed{{{inner}}}",
                f"The answer is ${inner}$.",
                inner,
                f"Some text. {inner} \\boxed{{{inner}}}",
            ]
        )
        items.append((Problem(id=f"fuzz-{i}", prompt="", answer=answer), completion))
    return items


def timed_map(pool: VerifierPool, items: list[tuple[Problem, str]]) -> tuple[list[Verdict], float]:
    start = time.perf_counter()
    verdicts = pool.map(items)
    return verdicts, time.perf_counter() - start


def run(
    data: Path,
    workers: int = 2,
    timeout_s: float = 10.0,
    fuzz_n: int = 1000,
    fuzz_timeout_s: float = 2.0,
    limit: int | None = None,
    seed: int = 0,
    workload_name: str = "short",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(workload, figures) of both measurements; `workload_name`: short (solutions as written) or long."""
    import json

    rows = [json.loads(line) for line in data.read_text().splitlines() if line.strip()][:limit]
    load_start = round(os.getloadavg()[0], 2)
    items = math_items(rows, long=workload_name == "long", seed=seed)
    lengths = sorted(len(c) for _, c in items)
    start = time.perf_counter()
    with VerifierPool("math", workers, timeout_s) as pool:
        pool.map(items[: 2 * workers])  # start-up: workers import sympy/antlr and judge a first item
        startup = time.perf_counter() - start
        verdicts, wall = timed_map(pool, items)
        overrun, timeouts = pool.max_overrun_s, pool.timeouts
    counts = {k: sum(v.correct is k for v in verdicts) for k in (True, False, None)}
    fuzz = pathological(fuzz_n, seed)
    with VerifierPool("math", workers, fuzz_timeout_s) as pool:
        fverdicts, fwall = timed_map(pool, fuzz)
        fuzz_figures = {
            "fuzz_items": len(fuzz),
            "fuzz_wall_s": round(fwall, 1),
            "fuzz_crashes": pool.crashes,
            "fuzz_timeouts": pool.timeouts,
            "fuzz_max_overrun_s": round(pool.max_overrun_s, 3),
            "fuzz_non_verdicts": sum(not isinstance(v, Verdict) for v in fverdicts),
            "fuzz_cannot_judge": sum(v.correct is None for v in fverdicts),
        }
    workload = {
        "data": str(data),
        "workload": workload_name,
        "problems": len(rows),
        "items": len(items),
        "workers": workers,
        "completion_chars": {"min": lengths[0], "median": lengths[len(lengths) // 2], "max": lengths[-1]},
        "load_average_1min_at_start": load_start,  # other work on the machine
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "timeout_s": timeout_s,
        "fuzz_timeout_s": fuzz_timeout_s,
        "fuzz_seed": seed,
        "items_per_problem": "reference solution, wrong box, 'final answer is' phrase, decimal form",
    }
    figures = {
        "verdicts_per_s": round(len(items) / wall, 1),
        "wall_s": round(wall, 2),
        "startup_s": round(startup, 2),
        "max_overrun_s": round(max(overrun, pool.max_overrun_s), 3),
        "timeouts": timeouts,
        "correct": counts[True],
        "incorrect": counts[False],
        "cannot_judge": counts[None],
        **fuzz_figures,
    }
    return workload, figures


# --- code: the two-process verifier against the one-process baseline, and the reward hacks -------------

CODE_TASKS = ("humaneval", "mbpp")


def code_problems(task: str, data: Path) -> list[Problem]:
    """The test split of HumanEval or MBPP from `data` (HumanEval.jsonl[.gz], mbpp.jsonl)."""
    from secondtry.config import TaskConfig
    from secondtry.tasks.code import load_humaneval, load_mbpp

    load = {"humaneval": load_humaneval, "mbpp": load_mbpp}[task]
    return load(TaskConfig(name=task, path=str(data), split="test"), 0)


def run_code(
    task: str,
    data: Path,
    workers: int = 2,
    timeout_s: float = 30.0,
    rounds: int = 3,
    limit: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verdicts/s on the canonical solutions: the two-process `code` verifier and the one-process
    baseline (`verify_one_process`), each through a warm pool, alternating in `rounds` passes."""
    from secondtry.verifiers.code import verify_one_process
    from secondtry.verifiers.sandbox import protections

    problems = code_problems(task, data)[:limit]
    items = [(p, f"```python\n{p.solution}\n```") for p in problems]
    load_at_start = round(os.getloadavg()[0], 2)  # other work on the machine shares its cores
    walls: dict[str, list[float]] = {"two_process": [], "one_process": []}
    outcomes: dict[str, dict[str, int]] = {}
    with (
        VerifierPool("code", workers, timeout_s) as new,
        VerifierPool(fn=verify_one_process, workers=workers, timeout_s=timeout_s) as old,
    ):
        pools = {"two_process": new, "one_process": old}
        for pool in pools.values():  # start-up: the workers' first sandbox (the bwrap probe)
            pool.map(items[: 2 * workers])
        for r in range(rounds):
            order = list(pools) if r % 2 == 0 else list(pools)[::-1]  # neither always runs first
            for name in order:
                verdicts, wall = timed_map(pools[name], items)
                walls[name].append(wall)
                outcomes[name] = {
                    key: sum(v.correct is value for v in verdicts)
                    for key, value in (("correct", True), ("incorrect", False), ("cannot_judge", None))
                }
    per = {name: sum(w) / (rounds * len(items)) for name, w in walls.items()}
    workload = {
        "task": task,
        "data": str(data),
        "problems": len(problems),
        "items": len(items),
        "completions": "the canonical solution of each test problem, in a ```python block",
        "baseline": "one_process: code, tests and nonce in one program (verify_one_process), in the "
        "same sandbox as the two-process verifier; cost_ratio: two-process time per "
        "verdict / one-process time per verdict",
        "workers": workers,
        "rounds": rounds,
        "timeout_s": timeout_s,
        **protections(),
        "load_average_1min_at_start": load_at_start,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    figures = {f"{name}_verdicts_per_s": round(1 / per[name], 1) for name in per}
    figures |= {f"{name}_wall_s": [round(w, 2) for w in walls[name]] for name in walls}
    figures["cost_ratio"] = round(per["two_process"] / per["one_process"], 2)  # per verdict, new / old
    figures["outcomes"] = outcomes
    return workload, figures


def run_hacks(
    task: str,
    data: Path,
    workers: int = 2,
    timeout_s: float = 30.0,
    old_every: int = 8,
    limit: int | None = None,
    names: list[str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every reward hack (bench/hacks.py) on every problem through the `code` verifier: how many pass
    (must be 0), and on every `old_every`-th problem through the one-process baseline as well."""
    from secondtry.bench.hacks import HACKS, build
    from secondtry.verifiers.code import verify_one_process

    problems = code_problems(task, data)[:limit]
    names = names or list(HACKS)
    sample = problems[::old_every] if old_every else []
    table: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    with (
        VerifierPool("code", workers, timeout_s) as new,
        VerifierPool(fn=verify_one_process, workers=workers, timeout_s=timeout_s) as old,
    ):
        for name in names:
            verdicts = new.map([(p, build(name, p)) for p in problems])
            passed = [p.id for p, v in zip(problems, verdicts) if v.correct is True]
            unjudged = [p.id for p, v in zip(problems, verdicts) if v.correct is None]
            reasons: dict[str, int] = {}
            for v in verdicts:
                key = re.sub(r"\(line \d+ of the (tests|code)\)", "(line N of the \\1)", v.reason)[:80]
                reasons[key] = reasons.get(key, 0) + 1
            row = {
                "passes": len(passed),
                "problems": len(problems),
                "passed_ids": passed[:20],
                "cannot_judge": len(unjudged),
                "top_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:3]),
            }
            if sample:
                old_verdicts = old.map([(p, build(name, p)) for p in sample])
                row["one_process_passes"] = sum(v.correct is True for v in old_verdicts)
                row["one_process_problems"] = len(sample)
            table[name] = row
    workload = {
        "task": task,
        "data": str(data),
        "problems": len(problems),
        "hacks": len(names),
        "workers": workers,
        "timeout_s": timeout_s,
        "one_process_sample": f"every {old_every}th problem",
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    figures = {
        "total_passes": sum(r["passes"] for r in table.values()),
        "wall_s": round(time.perf_counter() - start),
        "table": table,
    }
    return workload, figures
