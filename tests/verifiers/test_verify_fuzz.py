"""Pathological inputs: no crash, no hang, every answer a Verdict (the long version: `secondtry bench verify`)."""

from __future__ import annotations

import doctest
import time

import pytest

import secondtry.bench.verify as bench_verify
from secondtry.bench.verify import pathological
from secondtry.types import Problem, Verdict
from secondtry.verifiers.math import verify
from secondtry.verifiers.pool import VerifierPool

pytestmark = pytest.mark.timeout(300)


@pytest.mark.integration
def test_fuzz_through_the_pool() -> None:
    items = pathological(150, seed=7)
    limit = 1.5
    with VerifierPool("math", workers=2, timeout_s=limit) as pool:
        start = time.monotonic()
        out = pool.map(items)
        wall = time.monotonic() - start
        assert pool.crashes == 0  # a worker that died on its own, not killed by the hard limit
        assert pool.max_overrun_s < 1.0  # every cut-off verdict came within a second of its limit
        assert all(isinstance(v, Verdict) for v in out) and len(out) == len(items)
        assert wall < len(items) * limit / 2 + 30  # the pool kept moving
        assert None not in [
            v.correct for v in pool.map([(Problem(id="ok", prompt="", answer="2"), r"\boxed{2}")])
        ]


@pytest.mark.parametrize(
    ("gold", "pred", "correct", "reason"),
    [
        ("2", "1" * 5000, False, "answer too long (5,000 characters)"),
        ("2", "(" * 20 + "2" + ")" * 20, False, "answer nested too deeply (20 levels)"),
        ("x" * 2000, "2", None, "cannot judge: gold answer too long (2,000 characters)"),
        ("x" * 2000, "x" * 2000, True, "match"),  # the same string: no parse needed
        ("4", "2^{2^{2^{100}}}", None, "cannot judge: too large to evaluate"),
        ("4", "10^{100000}", None, "cannot judge: too large to evaluate"),
        ("4", "(10^{100})!", None, "cannot judge: too large to evaluate"),
        ("4", r"\binom{10^{9}}{10^{5}}", None, "cannot judge: too large to evaluate"),
        (r"\frac{1}{2004!}", r"\frac{1}{2004!}", True, "match"),  # a MATH train answer: not too large
        ("2^{10}", "1024", True, "match"),
    ],
)
def test_guards_before_parsing(gold: str, pred: str, correct: bool | None, reason: str) -> None:
    start = time.monotonic()
    v = verify(Problem(id="g", prompt="", answer=gold), f"\\boxed{{{pred}}}")
    assert (v.correct, v.reason) == (correct, reason)
    assert time.monotonic() - start < 2.0


def test_math_items_are_right_and_wrong() -> None:
    rows = [
        {"problem": "p", "solution": r"So $\boxed{\frac{1}{4}}$, i.e. \frac{1}{4}.", "answer": r"\frac{1}{4}"}
    ]
    items = bench_verify.math_items(rows)
    assert [verify(p, c).correct for p, c in items] == [True, False, True, True]
    assert r"\boxed{0.25}" in items[3][1]


def test_doctests() -> None:
    assert doctest.testmod(bench_verify).failed == 0
