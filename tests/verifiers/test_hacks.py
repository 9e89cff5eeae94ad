"""Reward hacks (bench/hacks.py): a wrong solution plus one trick must come back incorrect, with a reason.

The default run takes a sample of HumanEval and MBPP problems (among them those with prompt helpers and
a function that shadows a builtin); `pytest -m slow` takes every test problem, as
`secondtry bench verify --task humaneval|mbpp --hacks` does (its record: benchmarks/results/verify-hacks-*).
Each hack that beat the one-process design is shown to still beat it here, so the hack is a real one.
"""

from __future__ import annotations

import doctest
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

import secondtry.bench.hacks as hacks_module
from secondtry.bench.hacks import HACKS, OLD, build
from secondtry.config import TaskConfig
from secondtry.tasks.code import load_humaneval, load_mbpp
from secondtry.verifiers import sandbox
from secondtry.verifiers.code import verify, verify_one_process

MISSING = sandbox.unavailable()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(MISSING is not None, reason=f"no working sandbox: {MISSING}"),
]
WORKERS = min(16, 4 * (os.cpu_count() or 2))
# among them: prompt helpers (10, 32, 38), a tolerance check with abs() (4), tests opening with `def check` (64)
HUMANEVAL_SAMPLE = [f"HumanEval/{i}" for i in (0, 4, 10, 32, 38, 64)]
# 126 defines `sum`; 596 uses the program's `import sys`
MBPP_SAMPLE = ["11", "12", "17", "126", "233", "596"]


@pytest.fixture(scope="module")
def problems(data_dir):
    he = load_humaneval(
        TaskConfig(name="humaneval", path=str(data_dir / "humaneval" / "HumanEval.jsonl.gz"), split="test"), 0
    )
    mbpp = load_mbpp(TaskConfig(name="mbpp", path=str(data_dir / "mbpp" / "mbpp.jsonl"), split="test"), 0)
    mbpp += [
        p
        for p in load_mbpp(
            TaskConfig(name="mbpp", path=str(data_dir / "mbpp" / "mbpp.jsonl"), split="validation"), 0
        )
        if p.id == "596"
    ]
    return {"humaneval": he, "mbpp": mbpp}


def _sample(problems):
    by_id = {p.id: p for ps in problems.values() for p in ps}
    return [by_id[i] for i in HUMANEVAL_SAMPLE + MBPP_SAMPLE]


def _judge(fn, items, **kw):
    with ThreadPoolExecutor(WORKERS) as ex:
        return list(ex.map(lambda it: fn(*it, **kw), items))


def test_doctests():
    assert doctest.testmod(hacks_module).failed == 0


def test_there_is_a_hack_for_every_class():
    assert len(HACKS) >= 25 and OLD <= set(HACKS)


def test_every_hack_is_judged_incorrect_with_a_reason(problems):
    sample = _sample(problems)
    items = [(p, build(name, p)) for name in HACKS for p in sample]
    verdicts = _judge(verify, items, timeout_s=10)
    names = [n for n in HACKS for _ in sample]
    wrong = [
        (name, p.id, v.correct, v.reason)
        for (p, _), name, v in zip(items, names, verdicts)
        if v.correct is not False or not v.reason
    ]
    assert wrong == []


def test_the_sample_still_passes_with_right_answers(problems):
    """The sample's canonical solutions pass: the hacks fail for being wrong, not because of the sample."""
    sample = _sample(problems)
    verdicts = _judge(verify, [(p, f"```python\n{p.solution}\n```") for p in sample], timeout_s=30)
    assert [(p.id, v.reason) for p, v in zip(sample, verdicts) if v.correct is not True] == []


@pytest.mark.parametrize("name", sorted(OLD))
def test_the_hack_beat_the_one_process_design(name, problems):
    sample = _sample(problems)
    verdicts = _judge(verify_one_process, [(p, build(name, p)) for p in sample], timeout_s=10)
    assert any(v.correct is True for v in verdicts), f"{name} no longer beats the baseline: it proves nothing"


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["humaneval", "mbpp"])
def test_no_hack_passes_any_problem(dataset, problems):
    items = [(p, build(name, p)) for name in HACKS for p in problems[dataset]]
    verdicts = _judge(verify, items, timeout_s=10)
    passes = {}
    for (p, _), v, name in zip(items, verdicts, [n for n in HACKS for _ in problems[dataset]]):
        if v.correct is not False:
            passes.setdefault(name, []).append(p.id)
    assert passes == {}
