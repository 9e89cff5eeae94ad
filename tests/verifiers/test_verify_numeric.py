"""numeric verifier: GSM8K-style number extraction and exact comparison."""

from __future__ import annotations

import doctest
import json
from fractions import Fraction
from pathlib import Path

import pytest

import secondtry.verifiers.numeric as vnum
from secondtry.types import Problem
from secondtry.verifiers.numeric import extract_answer, to_number, verify

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "gsm8k").is_dir(), reason=f"no GSM8K data at {DATA / 'gsm8k'}")


def _p(answer: str) -> Problem:
    return Problem(id="t", prompt="", answer=answer)


CASES = [  # (gold, completion, expected correct)
    ("18", "#### 18", True),
    ("18", "#### 18.00", True),
    ("18", "She makes $18.", True),
    ("18", "She makes $18.50.", False),
    ("18", "#### $18", True),
    ("18", "#### 17", False),
    ("1,000", "The total is 1000", True),
    ("1000", "The total is $1,000.", True),
    ("$18", "The answer is 18 dollars.", True),
    ("1000000", "#### 1,000,000", True),
    ("50", "That is 50% of the class.", True),
    ("0.5", r"\boxed{\frac{1}{2}}", True),
    ("0.5", "The answer is 1/2", True),
    ("-3", "The temperature drops to -3 degrees.", True),
    ("3", "The temperature drops to -3 degrees.", False),
    ("-5", "He is left with - $5", True),
    ("5", r"So he pays \boxed{\$5} in total.", True),
    ("5", r"\boxed{5} ... actually \boxed{6}", False),
    ("42", "The answer is 42, since 6 * 7 = 42 and 1 + 1 = 2.", True),
    ("7", "3 + 4 = 7 apples\n#### 7", True),
    ("7", "The answer is 7 apples. Check: 7 - 3 = 4.", True),
    ("7", "3 + 4 = 7 apples. Then I ate 2, leaving 5.", False),  # the last number counts
    ("12", "12 \u2212 0 = 12", True),
    ("12", "#### twelve", True),  # number words: zero to twenty, the tens, halves
    ("12", r"\boxed{\text{twelve}}", True),
    ("12", "#### thirteen", False),
    ("21", "The final answer is twenty-one.", True),
    ("0.5", "The answer is a half.", True),
    ("5", "The answer is five or six.", False),
    ("12", "I do not know.", False),
    ("3.75", "#### 3.750", True),
    ("0.25", "It costs .25 dollars", True),
    ("7", "Answer: 7", True),
    ("1200", "So 1,200 people came.", True),
]


@pytest.mark.parametrize(("gold", "completion", "expected"), CASES)
def test_hand_cases(gold: str, completion: str, expected: bool) -> None:
    v = verify(_p(gold), completion)
    assert v.correct is expected, v


def test_to_number() -> None:
    assert to_number("1,000") == 1000
    assert to_number("18.00") == to_number("18") == Fraction(18)
    assert to_number("7/2") == Fraction(7, 2)
    assert to_number("1/0") is None and to_number("abc") is None


def test_extract_order() -> None:
    assert extract_answer("The answer is 3. \\boxed{4}\n#### 5") == ("5", "hashes")
    assert extract_answer("The answer is 3. \\boxed{4} then 9") == ("4", "boxed")
    assert extract_answer("The answer is 3. Later 9") == ("3", "answer_is")
    assert extract_answer("Later 9 and 10.") == ("10", "last_number")
    assert extract_answer("#### none\nLater 9") == (None, "hashes")  # '####' is decisive when present
    assert extract_answer("The answer is 3. Later 9", ["last_number"]) == ("9", "last_number")
    assert extract_answer("Later 9", ["hashes", "boxed"]) == (None, "")


def test_extractors_option() -> None:
    p = _p("3")
    assert verify(p, "The answer is 3. Later 9").correct is True
    assert verify(p, "The answer is 3. Later 9", extractors=["last_number"]).correct is False
    v = verify(p, "no marker 3", extractors=["hashes"])
    assert v.correct is False and v.reason == "no number found"
    with pytest.raises(ValueError, match="unknown extractor"):
        verify(p, "3", extractors=["nope"])


@pytest.mark.parametrize("completion", ["", "  ", None, 7])
def test_empty_or_non_string_completion_is_incorrect(completion: object) -> None:
    v = verify(_p("7"), completion)  # type: ignore[arg-type]
    assert v.correct is False and v.reason


@pytest.mark.parametrize("gold", ["", "seven", "1 or 2"])
def test_unparsable_gold_cannot_judge(gold: str) -> None:
    v = verify(_p(gold), "#### 7")
    assert v.correct is None and v.reason.startswith("cannot judge")


def test_reason() -> None:
    v = verify(_p("4"), "#### 3")
    assert (v.correct, v.extracted, v.reason) == (False, "3", "mismatch: 3 vs 4")


def test_doctests() -> None:
    assert doctest.testmod(vnum).failed == 0


@needs_data
def test_every_gsm8k_reference_answer_verifies() -> None:
    rows = [json.loads(line) for line in (DATA / "gsm8k" / "test.jsonl").open()]
    assert len(rows) == 1319
    bad = []
    for r in rows:
        gold = r["answer"].rsplit("####", 1)[1].strip()
        body = r["answer"].rsplit("####", 1)[0]
        for text in (r["answer"], body + f"The answer is {gold}.", body + f"So it is $\\boxed{{{gold}}}$."):
            if verify(_p(gold), text).correct is not True:
                bad.append((gold, text[-60:]))
        if verify(_p(gold), body + "#### 123456789").correct is not False:
            bad.append((gold, "wrong answer accepted"))
    assert not bad, bad[:5]
