"""The step checker for word problems (`numeric_steps`): every stated calculation recomputed exactly.

Measured on GSM8K: its reference solutions (right, with a few known exceptions) must pass, and solutions with
one planted error (the final answer left right) must fail. `pytest
tests/verifiers/test_verify_numeric_steps.py -s -k figures` prints the figures docs/verifiers.md states.
"""

from __future__ import annotations

import ast
import doctest
import json
import random
import re
from fractions import Fraction
from pathlib import Path

import pytest

import secondtry.verifiers.arithmetic as module
from secondtry.types import Problem
from secondtry.verifiers import CHECKS_STEPS, VERIFIERS, check_options
from secondtry.verifiers.arithmetic import stated_steps, verify

EXCEPTIONS = Path(__file__).with_name("gsm8k_steps_exceptions.json")


def test_doctests():
    assert doctest.testmod(module).failed == 0


def test_registered_as_a_step_checking_verifier():
    assert VERIFIERS["numeric_steps"] is verify and "numeric_steps" in CHECKS_STEPS
    options = {"extractors": ["hashes", "boxed"]}
    assert check_options("numeric_steps", options) == options
    with pytest.raises(ValueError, match="unknown extractor"):
        check_options("numeric_steps", {"extractors": ["nope"]})


def test_check_names_accepts_the_steps_filter_with_it():
    from secondtry.config import ConfigError, build_config
    from secondtry.loop import check_names

    base = {
        "name": "t",
        "model": {"path": "m/x"},
        "train_task": {"name": "gsm8k", "path": "x.jsonl"},
        "eval_task": {"name": "gsm8k", "path": "x.jsonl"},
        "evaluation": {"select_on": "test"},
        "filter": {"require": "steps"},
    }
    check_names(build_config({**base, "verifier": {"name": "numeric_steps"}}))
    with pytest.raises(ConfigError, match="needs a verifier that checks steps"):
        check_names(build_config({**base, "verifier": {"name": "numeric"}}))


def steps_of(text):
    return [(s.text, s.ok) for s in stated_steps(text)]


@pytest.mark.parametrize(
    "text, values",
    [
        ("She earns 12/60 = $0.2 a minute, so 0.2 x 50 = $10.", [True, True]),
        ("It costs 1,200 + 300 = $1,500 in all.", [True]),
        ("20% of 50 = 10 and 30 * 20% = 6, so 15/60 * 100 = 25%.", [True, True, True]),
        ("Each gets 100/3 = 33.33 dollars", [True]),  # a stated decimal, rounded to its places
        ("He needs 3/4 * 2 = 1 1/2 cups, then 2 + 1 1/2 = 3 1/2 cups.", [True, True]),
        ("Female:44(.50)=22", [True]),  # an implicit product
        ("5 + 3 = 8 * 2 = 16", [True, True]),  # a sloppy chain carries 8 on
        ("10 miles per hour * 0.5 hours = 5 miles", [True]),  # units between numbers
        (r"So \(3 \times 4 = 12\) and \(\frac{12}{4} = 3\)", [True, True]),  # LaTeX
        ("Natalia sold 48/2 = <<48/2=24>>24 clips.", [True]),  # an annotation and its prose count once
        ("She has 48 - 24 = 25 clips left.", [False]),
        ("The box holds 2 * 3 * 4 = 20 toys.", [False]),
        ("The total is 25 / 1/5 = 125.", [True]),  # dividing by a fraction written b/c
        # one variable: equations after the set-up that keep its solution are steps; another solution starts a
        # new set-up
        ("Let x be her age. Then 2x + 3 = 11, so 2x = 8 and x = 4.", [True, True]),
        ("Let x be her age. Then 2x + 3 = 11, so x = 5.", []),
        ("p + m = 27 and p = 8m, so 8m + m = 27", []),  # two unknowns
        ("It takes 1 hour = 60 minutes.", []),  # no operator: a statement, not a calculation
        ("He left at 7:50 + 30 minutes = 8:20 a.m.", []),  # clock times are not numbers
    ],
)
def test_what_is_read_as_a_step(text, values):
    assert [ok for _, ok in steps_of(text)] == values


def test_exact_arithmetic_not_floats():
    assert steps_of("0.1 + 0.2 = 0.3") == [("0.1 + 0.2 = 0.3", True)]  # 0.30000000000000004 in floats
    assert [ok for _, ok in steps_of("10/3 * 3 = 10")] == [True]
    assert [ok for _, ok in steps_of("1/3 + 1/3 = 0.67")] == [True] and [
        ok for _, ok in steps_of("1/3 + 1/3 = 0.6")
    ] == [True]
    assert [ok for _, ok in steps_of("1/3 + 1/3 = 0.7")] == [True]  # rounded
    assert [ok for _, ok in steps_of("1/3 + 1/3 = 0.8")] == [False]


P = Problem("p", "A shop sells 12 pens a day for 5 days. How many pens?", "60")


@pytest.mark.parametrize(
    "completion, steps, lucky",
    [
        ("It sells 12 * 5 = 60 pens. The answer is 60.", (True, True), False),
        (
            "It sells 12 * 5 = 70 pens. The answer is 60.",
            (False, False),
            True,
        ),  # wrong step, answer by chance
        # the step does not reach the answer
        ("It sells 12 * 4 = 48 pens, about 60. The answer is 60.", (True, False), True),
        ("The answer is 60.", (False,), True),  # no checkable step
        ("60 * 1 = 60. The answer is 60.", (True, False), True),  # a step that does nothing derives nothing
        (
            "I think 30 + 30 = 60. The answer is 60.",
            (True, False),
            True,
        ),  # true arithmetic on made-up numbers
        ("12 + 5 = 17 and 17 - 5 = 12, so 12 * 5 = 60.\n#### 60", (True, True, True, True), False),
    ],
)
def test_lucky_when_a_step_is_wrong_or_the_answer_does_not_follow(completion, steps, lucky):
    v = verify(P, completion)
    assert v.correct is True and v.steps == steps and v.lucky is lucky, v.details


def test_a_wrong_answer_is_wrong_whatever_its_steps():
    v = verify(P, "It sells 12 * 5 = 60 pens.\n#### 50")
    assert v.correct is False and not v.lucky and v.steps == (True, False)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "=====",
        "((((((((((((1" * 200,
        "1" * 5000 + "=1",
        "2^2^2^2^2^2^2 = 4",
        "(" * 3000 + "1+1=2",
        "9" * 60 + " * 9 = 1",
        "1/0 = 5",
        "<<1/0=5>>5",
        "x" * 10000,
        "1 = " * 3000,
    ],
)
def test_garbage_never_raises(garbage):
    v = verify(P, garbage)
    assert v.correct in (False, None) and v.steps is not None


# ----------------------------------------------------------------------------- GSM8K's reference solutions


def _rows(data_dir, split):
    path = data_dir / "gsm8k" / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _reference(row, split, i):
    question, worked = row["question"], row["answer"]
    gold = worked.rpartition("####")[2].strip().replace(",", "")
    return Problem(f"gsm8k-{split}-{i}", question, gold), worked


def _failures(data_dir):
    out = {}
    for split in ("train", "test"):
        for i, row in enumerate(_rows(data_dir, split)):
            problem, worked = _reference(row, split, i)
            v = verify(problem, worked)
            assert v.correct is True, (split, i, v)
            if v.lucky:
                out[f"{split}:{i}"] = v
    return out


@pytest.mark.integration
def test_reference_solutions_pass_but_the_listed_exceptions(data_dir):
    """Every GSM8K reference solution (train and test) passes, except those listed in
    gsm8k_steps_exceptions.json, each with its reason: GSM8K's own arithmetic errors (a step wrong as
    written), solutions that state no arithmetic the checker reads (algebra in a variable, words), and answers
    the stated steps do not reach."""
    listed = json.loads(EXCEPTIONS.read_text(encoding="utf-8"))
    failing = _failures(data_dir)
    new, gone = sorted(set(failing) - set(listed)), sorted(set(listed) - set(failing))
    assert not new and not gone, (new[:20], gone)
    for key, entry in listed.items():
        v = failing[key]
        wrong = [s for s, ok in zip(v.details["steps"], v.steps) if not ok]
        kind = "wrong step" if wrong else "no checkable step" if v.steps == (False,) else "answer not derived"
        assert entry["reason"] == kind, key
    assert len(listed) / 8792 < 0.03


# ----------------------------------------------------------------------------- planted errors


def _value(expr: str) -> Fraction | None:
    """An annotation's expression (plain arithmetic: numbers, + - * / and parentheses), exactly; None
    otherwise. Independent of the checker: Python's own parser over Fractions."""

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return Fraction(str(node.value))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in OPS:
            return OPS[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError(type(node).__name__)

    try:
        return ev(ast.parse(expr.replace(",", ""), mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return None


OPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}
ANNOTATION = re.compile(r"<<([^<>=]+)=([^<>=]+)>>(-?[\d.,]+)")
KINDS = ("result", "operand", "operator", "last result")


def _number(text: str) -> Fraction | None:
    try:
        return Fraction(text.replace(",", "").rstrip("."))
    except (ValueError, ZeroDivisionError):
        return None


def _wrong(value: Fraction, rng: random.Random) -> Fraction:
    """A value that differs from `value` by a whole number (so no rounding can make it right)."""
    return value + rng.choice([1, -1, 2, 3, 10, -10, value if value else 5])


def _show(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{float(x):g}"


def plant(worked: str, kind: str, rng: random.Random, keep_annotations: bool) -> str | None:
    """One wrong step in a reference solution, its final answer left as it was; None where this reference
    offers no place for `kind`.

    GSM8K marks each calculation `<<expr=result>>result`; that marks where the calculation stands in the prose
    (`48/2 = <<48/2=24>>24 clips`). The planted error is made there, in the annotation and in the prose alike:

    - result: a step that is not the last states a result off by a whole number (1, 2, 3, 10, or double),
      later steps unchanged (they still build on the right value);
    - operand: the last number before the step's `=` is changed (in the prose and the annotation), the stated
      result kept; only where the changed expression is really wrong (checked with Python's parser on
      Fractions);
    - operator: the step's last operator swapped (+ for -, * for /, and back), the result kept; again only
      where that makes it wrong;
    - last result: the last step states a wrong result, the final `#### answer` kept (the answer then follows
      from nothing).

    The solution is then returned with its annotations removed (prose, as a model writes it) or kept.
    """
    # calculations (an operator between numbers), right as annotated
    found = [
        m
        for m in ANNOTATION.finditer(worked)
        if re.search(r"\d\s*[-+*/]", m[1])
        and _value(m[1]) is not None
        and _number(m[3]) is not None
        and _value(m[1]) == _number(m[2]) == _number(m[3])
    ]
    if not found:
        return None
    if kind in ("result", "operand", "operator"):
        candidates = found[:-1] if kind == "result" else found
    else:
        candidates = found[-1:]
    rng.shuffle(candidates := list(candidates))
    for m in candidates:
        expr, result = m[1], _number(m[3])
        prose_left = worked[: m.start()]
        eq = prose_left.rstrip().rstrip("$").rstrip()
        if kind in ("result", "last result"):
            wrong = _show(_wrong(result, rng))
            new = prose_left + f"<<{expr}={wrong}>>{wrong}" + worked[m.end() :]
        else:
            if not eq.endswith("="):
                continue  # the prose does not write the calculation out before its annotation
            if kind == "operand":
                last = list(re.finditer(r"\d[\d,]*(?:\.\d+)?", expr))
                prose_num = list(re.finditer(r"\d[\d,]*(?:\.\d+)?", eq))
                if not last or not prose_num or _number(prose_num[-1][0]) != _number(last[-1][0]):
                    continue
                changed = _show(_wrong(_number(last[-1][0]), rng))
                new_expr = expr[: last[-1].start()] + changed + expr[last[-1].end() :]
                new_eq = eq[: prose_num[-1].start()] + changed + eq[prose_num[-1].end() :]
            else:
                ops = [(i, c) for i, c in enumerate(expr) if c in "+-*/" and i > 0]
                swap = {"+": "-", "-": "+", "*": "/", "/": "*"}
                prose_ops = [(i, c) for i, c in enumerate(eq) if c in "+-*/x×" and 0 < i]
                if not ops or not prose_ops:
                    continue
                (i, c), (j, pc) = ops[-1], prose_ops[-1]
                if {"x": "*", "×": "*"}.get(pc, pc) != c:
                    continue
                new_expr = expr[:i] + swap[c] + expr[i + 1 :]
                new_eq = eq[:j] + swap[c] + eq[j + 1 :]
            if _value(new_expr) is None or _value(new_expr) == result:
                continue  # still right (2 * 2 = 2 + 2): not an error
            new = new_eq + prose_left[len(eq) :] + f"<<{new_expr}={m[2]}>>{m[3]}" + worked[m.end() :]
        return new if keep_annotations else re.sub(r"<<[^<>]*>>", "", new)
    return None


def planted_set(data_dir, size: int = 1200):
    """`size` references that pass the checker, each with one planted error: the four kinds in turn, half of
    them in prose only (annotations removed), from GSM8K's test split, then its train split."""
    listed = json.loads(EXCEPTIONS.read_text(encoding="utf-8"))
    rng = random.Random(0)
    out = []
    for split in ("test", "train"):
        for i, row in enumerate(_rows(data_dir, split)):
            if f"{split}:{i}" in listed:
                continue  # an error or an unread derivation of its own: not one planted error
            problem, worked = _reference(row, split, i)
            kind = KINDS[len(out) % len(KINDS)]
            text = plant(worked, kind, rng, keep_annotations=len(out) % 8 >= 4)
            if text is not None and text != worked:
                out.append((problem, text, kind))
            if len(out) == size:
                return out
    return out


@pytest.mark.integration
def test_planted_errors_fail(data_dir):
    planted = planted_set(data_dir)
    assert len(planted) >= 500
    caught = [verify(p, text).lucky for p, text, _ in planted]
    assert all(verify(p, text).correct for p, text, _ in planted[:50])  # the answer stays right
    assert sum(caught) / len(caught) >= 0.95
    for kind in KINDS:
        mine = [c for c, (_, _, k) in zip(caught, planted) if k == kind]
        assert sum(mine) / len(mine) >= 0.9, kind


@pytest.mark.integration
def test_figures(data_dir):
    """Prints the figures of docs/verifiers.md: run with -s."""
    failing = _failures(data_dir)
    planted = planted_set(data_dir)
    caught = {kind: [] for kind in KINDS}
    for p, text, kind in planted:
        caught[kind].append(verify(p, text).lucky)
    tp = sum(sum(c) for c in caught.values())
    fp = len(failing)  # every reference is right as its gold says: the listed ones count against the checker
    n_planted = sum(len(c) for c in caught.values())
    print(
        f"\nreferences: {8792 - fp} of 8792 pass ({(8792 - fp) / 8792:.2%}); "
        f"{fp} flagged (see gsm8k_steps_exceptions.json)"
    )
    reasons = json.loads(EXCEPTIONS.read_text(encoding="utf-8"))
    for reason in ("wrong step", "no checkable step", "answer not derived"):
        print(f"  {reason}: {sum(e['reason'] == reason for e in reasons.values())}")
    print(f"planted errors: {tp} of {n_planted} caught ({tp / n_planted:.2%})")
    for kind, c in caught.items():
        print(f"  {kind}: {sum(c)} of {len(c)} ({sum(c) / len(c):.1%})")
    print(f"on references + planted: precision {tp / (tp + fp):.3f}, recall {tp / n_planted:.3f}")
    assert tp / n_planted >= 0.95
