"""math verifier: extraction, math-verify comparison, and every MATH reference solution."""

from __future__ import annotations

import doctest
import json
import threading
from pathlib import Path

import pytest

import secondtry.verifiers.math as vmath
from secondtry.types import Problem, Verdict
from secondtry.verifiers.math import extract_answer, last_boxed, verify

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "math").is_dir(), reason=f"no MATH data at {DATA / 'math'}")


def _p(answer: str) -> Problem:
    return Problem(id="t", prompt="", answer=answer)


def _rows(split: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / "math" / f"{split}.jsonl").open()]


CASES = [  # (gold, completion, expected correct)
    (r"\frac{1}{2}", r"\boxed{\frac12}", True),
    (r"\frac{1}{2}", r"\boxed{0.5}", True),
    (r"\frac{1}{2}", r"\boxed{1/2}", True),
    (r"\frac{1}{2}", r"$\boxed{\dfrac{1}{2}}$", True),
    (r"0.5", r"\boxed{\tfrac{1}{2}}", True),
    (r"\frac{1}{2}", r"\boxed{\frac{1}{3}}", False),
    (r"\frac{1}{2}", r"\boxed{2}", False),
    (r"-\frac{1}{2}", r"\boxed{\frac{1}{2}}", False),
    (r"(1,2]", r"\boxed{(1, 2]}", True),
    (r"(1,2]", r"\boxed{(1,2)}", False),
    (r"[-2, \infty)", r"\boxed{[-2,\infty)}", True),
    (r"(-\infty,0)\cup(1,\infty)", r"\boxed{(-\infty, 0) \cup (1, \infty)}", True),
    (r"\left( 3, \frac{\pi}{2} \right)", r"\boxed{(3,\pi/2)}", True),
    (r"(3, 4)", r"\boxed{(4, 3)}", False),
    (r"\{1,2\}", r"\boxed{\{2, 1\}}", True),
    (r"1, 2, 3", r"\boxed{3, 2, 1}", True),
    (r"1, 2, 3", r"\boxed{1, 2}", False),
    (r"5\text{ cm}", r"\boxed{5}", True),
    (r"5", r"\boxed{5 \text{ cm}}", True),
    (r"90^\circ", r"\boxed{90}", True),
    (r"90", r"\boxed{90^{\circ}}", True),
    (r"10\%", r"\boxed{10}", True),
    (r"10\%", r"\boxed{10\%}", True),
    (r"10\%", r"\boxed{20\%}", False),
    (r"3", r"\boxed{x=3}", True),
    (r"x=3", r"\boxed{3}", True),
    (r"3", r"\boxed{x=4}", False),
    (r"\sqrt{2}/2", r"\boxed{\frac{\sqrt{2}}{2}}", True),
    (r"2\sqrt{2}", r"\boxed{\sqrt{8}}", True),
    (r"x^2+2x+1", r"\boxed{(x+1)^2}", True),
    (r"10,\!000", r"\boxed{10000}", True),
    (r"\text{(C)}", r"\boxed{C}", True),
    (r"\text{(C)}", r"\boxed{\text{(D)}}", False),
    (r"\$18.90", r"\boxed{18.90}", True),
    (r"\pi", r"\boxed{3.14}", False),
    (r"7", r"First \boxed{5}, but that is wrong; fixed: \boxed{7}.", True),
    (r"5", r"First \boxed{5}, but that is wrong; fixed: \boxed{7}.", False),
    (r"7", r"\fbox{7}", True),
    (r"7", r"so the result is $\boxed 7$.", True),
    (r"7", r"The final answer is $7$. I hope it is correct.", True),
    (r"\frac{3}{4}", "Adding up, the answer is \\(\\frac{3}{4}\\).\nDone.", True),
    (r"12", "**Final Answer:** 12", True),
    (r"12", "The answer is 13.", False),
    (r"12", "I computed 13 somewhere but never said what the answer was", False),
    (r"12", "Adding them up.\n\n# Answer\n\n12", True),
    (r"2, 3", r"So $x = \boxed{2}$ or $x = \boxed{3}$.", True),
    (r"5", "The final answer is five.", True),
]


@pytest.mark.parametrize(("gold", "completion", "expected"), CASES)
def test_hand_cases(gold: str, completion: str, expected: bool) -> None:
    v = verify(_p(gold), completion)
    assert v.correct is expected, v


@pytest.mark.parametrize(
    ("text", "box"),
    [
        (r"\boxed{\frac{a}{b}}", r"\frac{a}{b}"),
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),
        (r"\boxed{\left\{ x \right.}", r"\left\{ x \right."),  # an escaped brace does not count
        (r"\boxed {12}", "12"),
        (r"\boxed{1} then \boxed{2", "1"),  # unclosed last box: the earlier complete one
        (r"\boxed{}", ""),
        ("no box at all", None),
        (r"\boxedx{3}", None),
    ],
)
def test_last_boxed(text: str, box: str | None) -> None:
    assert last_boxed(text) == box


def test_last_number_is_read_by_default_but_not_by_strict_extractors() -> None:
    text = "I computed 12 somewhere but never said what the answer was"
    v = verify(_p("12"), text)
    assert v.correct is True and v.details == {"extractor": "last_math"}
    strict = verify(_p("12"), text, extractors=["boxed", "answer_is"])
    assert strict == Verdict(correct=False, extracted=None, reason="no final answer found")


def test_whole_text_is_the_last_resort() -> None:
    v = verify(_p(r"\frac{3}{4}"), "We conclude with the value \\frac{3}{4} for it")
    assert v.details == {"extractor": "math_verify"} and v.correct is True


def test_extract_answer_patterns() -> None:
    assert extract_answer(r"The answer is $\frac{1}{2}$. Because...") == r"\frac{1}{2}"
    assert extract_answer("The final answer is 3.5.") == "3.5"
    assert extract_answer(r"answer is: \(x=2\)") == "x=2"
    assert extract_answer(r"The answer is 4, but \boxed{5}") == "5"  # a box wins over the phrase
    assert extract_answer("nothing here") is None


@pytest.mark.parametrize("completion", ["", "   \n", None, 42, b"\\boxed{1}"])
def test_empty_or_non_string_completion_is_incorrect(completion: object) -> None:
    v = verify(_p("1"), completion)  # type: ignore[arg-type]
    assert v.correct is False and v.reason


def test_no_answer_found() -> None:
    assert verify(_p("1"), "Let me think about it.") == Verdict(
        correct=False, extracted=None, reason="no final answer found"
    )


def test_empty_box_is_incorrect() -> None:
    v = verify(_p("1"), r"\boxed{}")
    assert v.correct is False and v.extracted == ""


@pytest.mark.parametrize("gold", ["", r"\text{}"])
def test_unparsable_gold_cannot_judge(gold: str) -> None:
    v = verify(_p(gold), r"\boxed{3}")
    assert v.correct is None and v.reason.startswith("cannot judge")


def test_unparsable_gold_still_matches_the_same_string() -> None:
    assert verify(_p(r"05\!:\!00"), r"\boxed{05\!:\!00}").correct is True


def test_integer_fast_path_agrees_with_math_verify() -> None:
    from math_verify import parse
    from math_verify import verify as mv_verify

    for g, p in [("12", "12"), ("12", "012"), ("-0", "0"), ("12", "13"), ("-3", "3")]:
        mv = mv_verify(parse(f"${g}$"), parse(f"${p}$"))
        assert verify(_p(g), rf"\boxed{{{p}}}").correct is mv


def test_reason_and_extracted() -> None:
    v = verify(_p("4"), r"\boxed{3}")
    assert (v.correct, v.extracted, v.reason) == (False, "3", "mismatch: 3 vs 4")
    assert verify(_p("4"), r"\boxed{4}").reason == "match"


def test_math_verify_exception_cannot_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    import math_verify

    def boom(*a: object, **k: object) -> bool:
        raise RuntimeError("sympy exploded")

    monkeypatch.setattr(math_verify, "verify", boom)
    v = verify(_p(r"\sqrt{5}"), r"\boxed{\sqrt{3}}")
    assert v.correct is None and v.reason.startswith("cannot judge: RuntimeError: sympy exploded"), v


def test_math_verify_timeout_cannot_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    import math_verify
    from math_verify.errors import TimeoutException

    def slow(*a: object, **k: object) -> bool:
        raise TimeoutException("Operation timed out!")

    monkeypatch.setattr(math_verify, "verify", slow)
    v = verify(_p(r"\sqrt{5}"), r"\boxed{\sqrt{3}}")
    assert v.correct is None and "timed out" in v.reason


def test_timeouts_only_on_main_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    import math_verify

    seen: list[object] = []
    real = math_verify.verify

    def spy(gold: object, pred: object, **k: object) -> bool:
        seen.append(k.get("timeout_seconds"))
        return real(gold, pred, **k)

    monkeypatch.setattr(math_verify, "verify", spy)
    vmath._parse.cache_clear()
    out: list[Verdict] = []
    t = threading.Thread(target=lambda: out.append(verify(_p(r"2\sqrt{7}"), r"\boxed{\sqrt{28}}")))
    t.start()
    t.join()
    assert out[0].correct is True  # off the main thread: no signal.alarm, no ValueError
    assert verify(_p(r"2\sqrt{7}"), r"\boxed{\sqrt{7} \cdot 2}").correct is True
    assert seen == [None, vmath._TIMEOUT_S]


def test_doctests() -> None:
    assert doctest.testmod(vmath).failed == 0


@needs_data
def test_every_math500_reference_solution_verifies() -> None:
    bad = []
    for r in _rows("test"):
        v = verify(_p(r["answer"]), r["solution"])
        if v.correct is not True or v.reason != "match":  # judged by math-verify, not by string equality
            bad.append((r["unique_id"], r["answer"], v))
    assert not bad, bad[:5]


@pytest.mark.integration
@needs_data
def test_math500_wrong_answers_rejected() -> None:
    rows = _rows("test")[:200]
    pairs = [(rows[i], rows[i + 1]) for i in range(len(rows) - 1)]  # gold of one, solution of the next
    verdicts = [verify(_p(a["answer"]), b["solution"]) for a, b in pairs]
    accepted = [(a["answer"], b["answer"]) for (a, b), v in zip(pairs, verdicts) if v.correct is not False]
    assert accepted == [("5", "x=5"), ("7", "7")]  # the only neighbours with equal answers


@pytest.mark.slow
@needs_data
def test_every_math_train_reference_solution_verifies() -> None:
    bad = []
    for r in _rows("train"):
        v = verify(_p(r["answer"]), r["solution"])
        if v.correct is not True:
            bad.append(r["unique_id"])
    # MATH's own solutions for these two put nothing in the box
    assert bad == ["train/number_theory/7115.json", "train/number_theory/7117.json"]


@pytest.mark.parametrize(
    ("gold", "n"),
    [
        ("2, 3", 2),
        (r"\left( 1, 2 \right)", 2),
        (r"\{1,2,3\}", 3),
        ("(1,2),(3,4)", 2),
        ("10,000", 1),
        (r"10,\!000", 1),
        ("[2,5)", 1),
        (r"\frac{1}{2}", 1),
        (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", 1),
    ],
)
def test_parts_counts_the_answers_a_gold_lists(gold: str, n: int) -> None:
    assert vmath.parts(gold) == n
