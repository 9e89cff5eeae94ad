"""Second graders (hendrycks, minerva): normalised string matches, never raising, None without a gold."""

from __future__ import annotations

import doctest

import pytest

import secondtry.verifiers.graders as graders
from secondtry.types import Problem
from secondtry.verifiers.graders import GRADERS, hendrycks, minerva
from secondtry.verifiers.math import verify


@pytest.mark.parametrize(
    ("gold", "pred", "expected"),
    [
        (r"\frac{1}{2}", r"\dfrac{1}{2}", True),
        (r"\frac{1}{2}", r"\tfrac12", True),
        (r"\frac{1}{2}", "1/2", True),
        (r"\frac{1}{2}", "0.5", True),  # the one decimal MATH's grader knows
        (r"\frac{1}{2}", ".5", True),
        ("-3/4", r"-\frac{3}{4}", True),
        (r"2\sqrt3", r"2\sqrt{3}", True),
        (r"\frac\pi2", r"\frac{\pi}{2}", True),
        (r"\left[ 0, 1 \right)", "[0,1)", True),
        (r"90^\circ", "90", True),
        (r"90^{\circ}", "90", True),
        (r"10\%", "10", True),
        (r"\$18.90", "18.90", True),
        (r"5\text{ cm}", "5", True),
        (r"5\mbox{ inches}", "5", True),
        (r"10,\!000", "10,000", True),
        (r"10,\!000", "10000", False),  # MATH's grader keeps the comma
        ("x = 3", "3", True),
        ("y = 2x + 3", "2x+3", True),
        ("3", "k=3", True),
        (r"\frac{1}{2}", r"\frac{2}{4}", False),  # string match: no arithmetic
        (r"\frac{1}{3}", "0.333", False),
        ("(1,2)", "(2,1)", False),
        ("x+y = 3", "3", False),  # only a left side of two characters or fewer goes
        (r"\frac{1}{2}", r"\frac{2}{1}", False),
        ("-3", "3", False),
        (r"\text{(C)}", "C", False),
    ],
)
def test_hendrycks(gold: str, pred: str, expected: bool) -> None:
    assert hendrycks(gold, pred) is expected


@pytest.mark.parametrize(
    ("gold", "pred", "expected"),
    [
        (r"\frac{1}{2}", r"\frac12", True),
        (r"\sqrt{2}", r"\sqrt2", True),
        ("x = 3", "3", True),
        ("y = 2x+3", "2x+3", True),
        (r"10,000", "10000", True),
        (r"10{,}000", "10000", True),
        (r"10,\!000", "10000", True),
        (r"5\text{ cm}", "5", True),
        ("30 inches", "30", True),
        (r"\$5", r"5\text{ dollars}", True),
        (r"90^\circ", r"90 \text{degrees}", True),
        (r"\textbf{(B)}", r"\text{(B)}", True),
        (r"\boxed{7}", "7", True),
        ("7", "7.", True),
        ("0.50", ".5", True),  # two plain numbers compare by value
        (r"\frac{1}{2}", "0.5", False),
        ("1, 2", "12", False),
        ("1, 2", "2, 1", False),
        ("x+y=0", "0", False),
        ("(1,2)", "(2,1)", False),
        (r"\tan x", "x", False),  # unit words go only as whole words: "an" in \tan stays
        ("-3", "3", False),
    ],
)
def test_minerva(gold: str, pred: str, expected: bool) -> None:
    assert minerva(gold, pred) is expected


@pytest.mark.parametrize("name", sorted(GRADERS))
@pytest.mark.parametrize("gold", ["", "   ", None, 3])
def test_no_gold_cannot_judge(name: str, gold: object) -> None:
    assert GRADERS[name](gold, "3") is None  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(GRADERS))
@pytest.mark.parametrize(
    "pred",
    ["", None, 7, r"\frac{", r"\frac", r"\sqrt", "}{", r"\boxed{\text{", "$$", "=", "," * 50, "9" * 5000],
)
def test_odd_predictions_never_raise(name: str, pred: object) -> None:
    assert GRADERS[name](r"\frac{1}{2}", pred) in (False, None)  # type: ignore[arg-type]


def test_compare_mode_records_disagreement() -> None:
    v = verify(Problem(id="t", prompt="", answer=r"\frac{1}{2}"), r"\boxed{\frac{2}{4}}", compare="hendrycks")
    assert v.correct is True
    assert v.details is not None and v.details["grader_correct"] is False and v.details["disagree"] is True


def test_doctests() -> None:
    assert doctest.testmod(graders).failed == 0
