import random

import pytest

from secondtry.config import TaskConfig
from secondtry.tasks import synthetic
from secondtry.tasks.synthetic import generate, load, running_values, solve, teacher_solution


def test_generate_is_deterministic_and_well_formed():
    a = generate(300, [2, 3, 4], seed=7, split="train")
    assert a == generate(300, [2, 3, 4], seed=7, split="train")
    assert a != generate(300, [2, 3, 4], seed=8, split="train")
    assert [p.id for p in a[:2]] == ["synthetic-train-0", "synthetic-train-1"]
    assert len({p.prompt for p in a}) == 300
    for p in a:
        operands, ops = p.meta["operands"], p.meta["ops"]
        assert p.meta["level"] == len(ops) in (2, 3, 4) and len(operands) == len(ops) + 1
        assert all(0 <= x <= 9 for x in operands)
        assert p.prompt == synthetic.expression(operands, ops)
        assert all(0 <= v <= 99 for v in running_values(operands, ops))  # intermediate range
        assert p.solution == solve(operands, ops) and p.solution.endswith(f"|Answer: {p.answer}")
    assert {p.meta["level"] for p in a} == {2, 3, 4}


def test_splits_are_disjoint():
    train = {p.prompt for p in generate(2000, [2, 3, 4], seed=1, split="train")}
    test = {p.prompt for p in generate(500, [2, 3, 4], seed=1, split="test")}
    assert not train & test
    assert {synthetic.split_of(e) for e in test} == {"test"}


def test_solve():
    assert solve([4, 5, 2, 9], ["+", "+", "-"]) == "4+5=9|9+2=11|11-9=2|Answer: 2"


@pytest.mark.parametrize("level", [2, 4])
def test_teacher_error_rate(level):
    rng, n, rate = random.Random(0), 4000, 0.06
    wrong_steps = right = 0
    for _ in range(n):
        operands, ops = synthetic.random_problem(rng, level)
        text = teacher_solution(operands, ops, rng, rate)
        right += text == solve(operands, ops)
        steps = text.split("|")[:-1]
        a = operands[0]
        for step, op, b in zip(steps, ops, operands[1:]):  # a step is wrong relative to its own stated input
            assert step.startswith(f"{a}{op}{b}=")  # errors are carried forward
            c = int(step.split("=")[1])
            assert c >= 0
            wrong_steps += c != (a + b if op == "+" else a - b)
            a = c
    p = rate * level
    assert abs(wrong_steps / (n * level) - p) < 0.02
    assert abs(right / n - (1 - p) ** level) < 0.03


def test_wrong_teacher_solution_is_wrong():
    rng = random.Random(3)
    for _ in range(200):
        operands, ops = synthetic.random_problem(rng, 2)
        text = synthetic.wrong_teacher_solution(operands, ops, rng, 0.0)
        assert text.rsplit(" ", 1)[1] != str(running_values(operands, ops)[-1])


def test_load_options_and_errors():
    cfg = TaskConfig(name="synthetic", split="test", limit=5, options={"count": 50, "levels": [3]})
    problems = load(cfg, seed=42)
    assert len(problems) == 5 and {p.meta["level"] for p in problems} == {3}
    assert problems == generate(50, [3], 42, "test")[:5]
    cfg = TaskConfig(name="synthetic", options={"count": 3, "seed": 1})
    assert load(cfg, seed=42) == generate(3, [2, 3, 4], 1, "train")
    with pytest.raises(ValueError, match="'lvls'.*count, levels, seed"):
        load(TaskConfig(name="synthetic", options={"lvls": [2]}), seed=0)
    with pytest.raises(ValueError, match="generated, not loaded"):
        load(TaskConfig(name="synthetic", path="x.jsonl"), seed=0)
    with pytest.raises(ValueError, match="split"):
        load(TaskConfig(name="synthetic", split="validation"), seed=0)
