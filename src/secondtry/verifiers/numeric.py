r"""Numeric-answer verifier (GSM8K style): read one number, compare it exactly with the gold.

>>> from secondtry.types import Problem
>>> p = Problem(id="t", prompt="", answer="1,000")
>>> verify(p, "She earns $1000.00 in total.")
Verdict(correct=True, extracted='1000.00', reason='match', steps=None, details={'extractor': 'last_number'})
>>> verify(p, r"... so \boxed{\$999}")
Verdict(correct=False, extracted='999', reason='mismatch: 999 vs 1,000', steps=None, details={'extractor': 'boxed'})
>>> verify(Problem(id="t", prompt="", answer="18"), "3 * 6 = 18 dollars\n#### $18.")
Verdict(correct=True, extracted='18', reason='match', steps=None, details={'extractor': 'hashes'})
>>> verify(Problem(id="t", prompt="", answer="5"), "She keeps the rest. The final answer is five.").extracted
'5'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

from secondtry.types import Problem, Verdict
from secondtry.verifiers.extract import get as get_extractor
from secondtry.verifiers.extract import spelled_number

# a number: optional sign, thousands commas, decimals, or a simple fraction a/b
_NUM = re.compile(
    r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?|(?<![\w.])-?\.\d+"
)
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")


def _clean(s: str) -> str:
    """Drop currency, LaTeX wrappers and unicode minus so the number regex sees plain digits."""
    s = _FRAC.sub(r"\1/\2", s)
    s = (
        s.replace("\u2212", "-")
        .replace("\\$", " ")
        .replace("\\%", "%")
        .replace("\\!", "")
        .replace("{,}", ",")
    )
    s = re.sub(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}", r" \1 ", s)
    s = re.sub(r"[$€£]", " ", s)
    return re.sub(r"-\s+(?=\d)", "-", s)  # "- $5" -> "-5" once the $ is gone


def _numbers(s: str) -> list[str]:
    return [m.group(0) for m in _NUM.finditer(_clean(s))]


def to_number(s: str) -> Fraction | None:
    """The value of a number string like "1,000", "-3.50", "7/2"; None if it is not one.

    >>> to_number("1,000"), to_number("18.00"), to_number("7 / 2"), to_number("x")
    (Fraction(1000, 1), Fraction(18, 1), Fraction(7, 2), None)
    """
    s = s.replace(",", "").replace(" ", "")
    try:
        if "/" in s:
            a, b = s.split("/")
            return Fraction(a) / Fraction(b)
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


DEFAULT_EXTRACTORS = ("hashes", "boxed", "answer_is", "last_number")
_DECISIVE = {"hashes", "boxed"}  # when present, their content is the answer even if it holds no number


def extract_answer(completion: str, extractors: Sequence[str] = DEFAULT_EXTRACTORS) -> tuple[str | None, str]:
    """(number string or None, the extractor it came from). '#### N' and a box are decisive when present."""
    for name in extractors:
        if name == "last_number":  # this module's own number reading: currency, "- $5", \frac{a}{b}
            nums = _numbers(completion)[-1:]
        else:
            found = get_extractor(name)(completion)
            if found is None:
                continue
            spelled = spelled_number(_clean(found))  # "the answer is five"
            nums = _numbers(found) or ([spelled] if spelled else [])
        if nums:
            return nums[0], name
        if name in _DECISIVE:
            return None, name
    return None, ""


def verify(problem: Problem, completion: str, *, extractors: Sequence[str] = DEFAULT_EXTRACTORS) -> Verdict:
    """Judge the number a completion states against the number in `problem.answer`; never raises for bad input.

    `extractors`: named extractors tried in order (see verifiers/extract.py).
    """
    for name in extractors:
        get_extractor(name)  # a bad name is a config error, raised before anything is judged
    if not isinstance(completion, str) or not completion.strip():
        return Verdict(correct=False, reason="empty completion")
    gold_nums = _numbers(str(problem.answer))
    gold = to_number(gold_nums[0]) if len(gold_nums) == 1 else None
    pred, source = extract_answer(completion, extractors)
    details = {"extractor": source or None}
    if pred is None:
        reason = f"no number in the {source} answer" if source else "no number found"
        return Verdict(correct=False, reason=reason, details=details)
    if gold is None:
        return Verdict(
            correct=None,
            extracted=pred,
            reason=f"cannot judge: gold not a number: {problem.answer!r}",
            details=details,
        )
    value = to_number(pred)
    if value is None:  # e.g. "1/0"
        return Verdict(correct=False, extracted=pred, reason="answer not a number", details=details)
    if value == gold:
        return Verdict(correct=True, extracted=pred, reason="match", details=details)
    return Verdict(
        correct=False, extracted=pred, reason=f"mismatch: {pred} vs {problem.answer}", details=details
    )
