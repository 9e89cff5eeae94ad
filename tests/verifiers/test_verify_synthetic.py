import doctest

import pytest

import secondtry.verifiers.synthetic as module
from secondtry.tasks.synthetic import generate
from secondtry.types import Problem
from secondtry.verifiers.synthetic import verify

P = Problem(
    "p",
    "4+5+2-9",
    "2",
    solution="4+5=9|9+2=11|11-9=2|Answer: 2",
    meta={"operands": [4, 5, 2, 9], "ops": ["+", "+", "-"], "level": 3},
)


def test_doctests():
    assert doctest.testmod(module).failed == 0


def test_correct_solution():
    v = verify(P, "4+5=9|9+2=11|11-9=2|Answer: 2")
    assert (v.correct, v.extracted, v.steps, v.lucky, v.steps_ok) == (
        True,
        "2",
        (True, True, True),
        False,
        True,
    )
    for p in generate(50, [2, 3, 4], 0, "test"):
        assert verify(p, p.solution).steps_ok


def test_wrong_answer_with_carried_error():
    v = verify(P, "4+5=9|9+2=12|12-9=3|Answer: 3")  # step 2 wrong, step 3 right on its own terms
    assert (v.correct, v.extracted, v.steps, v.lucky) == (False, "3", (True, False, True), False)


def test_lucky():
    v = verify(P, "4+5=10|10+2=12|12-9=2|Answer: 2")  # last step wrong, answer right by accident
    assert v.correct and v.steps == (False, True, False) and v.lucky


def test_last_answer_counts_and_step_count():
    assert verify(P, "Answer: 5 no wait 4+5=9|9+2=11|11-9=2|Answer: 2").correct
    assert verify(P, "4+5=9|9+2=11|Answer: 2").steps == (True, True, False)  # missing step
    v = verify(P, "4+5=9|9+2=11|11-9=2|2+0=2|Answer: 2")  # extra step
    assert v.correct and v.steps == (True, True, True, False) and v.lucky
    assert verify(P, "4+5=9|9-2=7|7-9=-2|Answer: -2").steps == (
        True,
        False,
        True,
    )  # wrong op, negatives parse


def test_without_meta_parses_the_prompt():
    p = Problem("q", "4+5+2-9", "2")
    assert verify(p, "4+5=9|9+2=11|11-9=2|Answer: 2").steps == (True, True, True)
    assert verify(Problem("r", "what?", "2"), "Answer: 2").steps is None


@pytest.mark.parametrize(
    "garbage", ["", "<|end|>", "Answer:", "|||", "=|=|=", "4+5=|Answer: x", "\x00" * 5, "Ответ: 2"]
)
def test_garbage_never_raises(garbage):
    v = verify(P, garbage)
    assert v.correct is False and v.extracted is None and v.steps == (False, False, False)


def test_odd_inputs_return_a_verdict():
    assert verify(P, None).correct is False  # type: ignore[arg-type]
    assert verify(Problem("x", "1+1", "two"), "Answer: 2").correct is None
    v = verify(Problem("y", "1+1", "2", meta={"operands": "bad", "ops": 5}), "Answer: 2")
    assert v.correct is True and v.steps is None  # unreadable meta: judge the answer only
