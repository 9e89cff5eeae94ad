r"""Competition-math verifier: read the final answer, compare it with the gold via math-verify.

>>> from secondtry.types import Problem
>>> p = Problem(id="t", prompt="", answer=r"\frac{1}{2}")
>>> verify(p, r"Halving gives $\boxed{0.5}$.")
Verdict(correct=True, extracted='0.5', reason='match', steps=None)
>>> verify(p, r"First \boxed{1/2}, then I changed my mind: \boxed{\dfrac{1}{3}}").correct
False
>>> verify(p, "The final answer is $1/2$.").extracted
'1/2'
>>> verify(p, "I am not sure.")
Verdict(correct=False, extracted=None, reason='no final answer found', steps=None)
"""

from __future__ import annotations

import functools
import logging
import re
import threading

from secondtry.tasks.math import last_boxed
from secondtry.types import Problem, Verdict

_TIMEOUT_S = 5  # math-verify's own SIGALRM limit, per parse / per comparison
_ANSWER_IS = re.compile(r"\banswer\s*(?:is\b\s*:?|:)", re.IGNORECASE)
_DELIMS = (("$$", "$$"), ("$", "$"), (r"\(", r"\)"), (r"\[", r"\]"))
_THOUSANDS = re.compile(r"(?<=\d),\\!(?=\d{3}(?!\d))")
_INT = re.compile(r"-?\d{1,50}")
_SPACES = re.compile(r"\\[,!;:> ]|\\left|\\right|\s+")

# math-verify warns once per process that its timeouts are off; off is deliberate off the main thread
logging.getLogger("math_verify").setLevel(logging.ERROR)


def _answer_is(text: str) -> str | None:
    """X from the last 'final answer is X' / 'The answer is X' / 'Answer: X'."""
    matches = list(_ANSWER_IS.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end() :].replace("**", "").strip()
    for open_, close in _DELIMS:
        if rest.startswith(open_):
            end = rest.find(close, len(open_))
            if end > 0:
                return rest[len(open_) : end].strip() or None
            rest = rest[len(open_) :]
            break
    rest = rest.split("\n", 1)[0]
    rest = re.split(r"\.(?:\s|$)", rest, maxsplit=1)[0]  # sentence end, not a decimal point
    return rest.strip().rstrip(".,;").strip("$ ") or None


def extract_answer(completion: str) -> str | None:
    """The final answer a completion states: the last box, else an 'answer is X' phrase."""
    boxed = last_boxed(completion)
    return boxed if boxed is not None else _answer_is(completion)


def _same_string(a: str, b: str) -> bool:
    a, b = _SPACES.sub("", a).replace("dfrac", "frac"), _SPACES.sub("", b).replace("dfrac", "frac")
    return bool(a) and a == b


def _short(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def verify(problem: Problem, completion: str) -> Verdict:
    """Judge `completion` against `problem.answer`; never raises for bad input."""
    if not isinstance(completion, str) or not completion.strip():
        return Verdict(correct=False, reason="empty completion")
    pred = extract_answer(completion)
    if pred is None:
        return Verdict(correct=False, reason="no final answer found")
    gold = getattr(problem, "answer", None)
    gold = "" if gold is None else str(gold)
    if not gold.strip():
        return Verdict(correct=None, extracted=pred, reason="cannot judge: gold answer empty")
    if not pred:
        return Verdict(correct=False, extracted=pred, reason="empty answer")
    verdict = _integers(gold, pred) or _math_verify(gold, pred)
    if verdict.correct is not True and _same_string(gold, pred):
        return Verdict(correct=True, extracted=pred, reason="match (string)")
    return verdict


def _integers(gold: str, pred: str) -> Verdict | None:
    """Fast path for two plain integers (about half of MATH answers): exact, and no parsing."""
    g, p = gold.strip(), pred.strip()
    if not (_INT.fullmatch(g) and _INT.fullmatch(p)):
        return None
    if int(g) == int(p):
        return Verdict(correct=True, extracted=pred, reason="match")
    return Verdict(correct=False, extracted=pred, reason=f"mismatch: {_short(pred)} vs {_short(gold)}")


@functools.lru_cache(maxsize=4096)  # golds and common answers repeat across samples; parses are immutable
def _parse(latex: str, timeout_s: int | None) -> list:
    from math_verify import parse  # lazy: ~1 s of sympy/antlr imports

    latex = latex.strip().rstrip(".,;").strip() or latex  # "-\frac{5}{3}." only parses without the dot
    latex = _THOUSANDS.sub("", latex)  # "5,\!525": math-verify reads that comma as a tuple
    return parse(f"${latex}$", parsing_timeout=timeout_s, raise_on_error=True)


def _math_verify(gold: str, pred: str) -> Verdict:
    try:
        from math_verify import verify as mv_verify
        from math_verify.errors import TimeoutException

        # math-verify's timeouts use signal.alarm, which only works on the main thread
        t = _TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
        try:
            gold_p = _parse(gold, t)
            if all(isinstance(g, str) for g in gold_p):  # [] or only math-verify's raw-string fallback
                return Verdict(correct=None, extracted=pred, reason="cannot judge: gold answer unparsable")
            pred_p = _parse(pred, t)
            ok = bool(pred_p) and mv_verify(gold_p, pred_p, timeout_seconds=t, raise_on_error=True)
        except TimeoutException:  # a BaseException, so caught apart
            return Verdict(correct=None, extracted=pred, reason=f"cannot judge: math-verify timed out ({t}s)")
    except Exception as e:  # sympy/antlr errors on odd LaTeX: not the model's fault
        return Verdict(correct=None, extracted=pred, reason=f"cannot judge: {type(e).__name__}: {_short(str(e), 80)}")
    if ok:
        return Verdict(correct=True, extracted=pred, reason="match")
    return Verdict(correct=False, extracted=pred, reason=f"mismatch: {_short(pred)} vs {_short(gold)}")
