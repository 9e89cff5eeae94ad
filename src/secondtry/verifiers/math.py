r"""Competition-math verifier: read the final answer, compare it with the gold via math-verify.

>>> from secondtry.types import Problem
>>> p = Problem(id="t", prompt="", answer=r"\frac{1}{2}")
>>> verify(p, r"Halving gives $\boxed{0.5}$.")
Verdict(correct=True, extracted='0.5', reason='match', steps=None, details={'extractor': 'boxed'})
>>> verify(p, r"First \boxed{1/2}, then I changed my mind: \boxed{\dfrac{1}{3}}").correct
False
>>> verify(p, "The final answer is $1/2$.").extracted
'1/2'
>>> verify(p, "Halving it.\n\n# Answer\n\n0.5").details
{'extractor': 'answer_header'}
>>> verify(Problem(id="t", prompt="", answer="2, 3"), r"So $x = \boxed{2}$ or $x = \boxed{3}$.").details
{'extractor': 'boxed', 'boxes': 2}
>>> verify(Problem(id="t", prompt="", answer="5"), "The final answer is five.").extracted
'5'
>>> verify(p, "I am not sure.")
Verdict(correct=False, extracted=None, reason='no final answer found', steps=None, details=None)
>>> verify(p, r"\boxed{.5}", compare="hendrycks").details
{'extractor': 'boxed', 'grader': 'hendrycks', 'grader_correct': True, 'disagree': False}
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import threading
from collections.abc import Sequence
from fractions import Fraction
from typing import Literal

from secondtry.tasks.math import boxes, last_boxed  # noqa: F401  (re-exported: callers read boxes from here)
from secondtry.types import Problem, Verdict
from secondtry.verifiers.extract import CHAIN, extract, spelled_number
from secondtry.verifiers.extract import get as get_extractor
from secondtry.verifiers.graders import GRADERS

_TIMEOUT_S = 5  # math-verify's own SIGALRM limit, per parse / per comparison
_THOUSANDS = re.compile(r"(?<=\d),\\!(?=\d{3}(?!\d))")
_NUMBER = re.compile(r"-?(?:\d{1,50}(?:\.\d{0,50})?|\.\d{1,50})")  # a plain integer or decimal
_FRACTION = re.compile(
    r"(?P<sign>-?)\\[dt]?frac\{(?P<num>-?\d{1,50})\}\{(?P<den>-?\d{1,50})\}"
    r"|(?P<num2>-?\d{1,50})/(?P<den2>\d{1,50})"
)
_PERCENT = re.compile(r"\s*\\?%\s*$")
_BASE = re.compile(r"(\d[0-9A-Za-z]*)(?:_\{?(\d+)\}?)?")  # "1011_2", "4A_{16}": digits in a base
_CHOICES = re.compile(
    r"\\(?:text|textbf|mathrm|mathbf)\b|[{}\s]|\((?=[A-Z]\))|(?<=[A-Z])\)"
)  # "\text{(A), C}"
_CHOICE_SEP = re.compile(r"(?:,|and)+")
_UNIT_LETTER = (
    r"(?:[cdghlmost]|ab|bc)"  # what math-verify strips from the end as a unit, when it is a variable
)
_LAST_VARIABLE = (  # so "4t" and "1 + t" do not read as 4 and 1, and "\sin t" parses
    (re.compile(rf"(\\[A-Za-z]+(?:\^\{{?\w+\}}?)?)\s+({_UNIT_LETTER})\s*$"), r"\1{\2}"),  # "\sin^2 t"
    (re.compile(rf"([^\s\d])\s+({_UNIT_LETTER})\s*$"), r"\1\2"),  # "1 + t", "\pi r h"; "5 m" stays a unit
    (re.compile(rf"([\d}}])({_UNIT_LETTER})\s*$"), r"\1{\2}"),  # "4t", "2ab": products; "9th" stays ordinal
)
_SPACES = re.compile(r"\\[,!;:> ]|\\left|\\right|\s+")
DEFAULT_EXTRACTORS = CHAIN
Equations = Literal["same_sides", "equivalent"]
_OUTER = (("\\{", "\\}"), ("(", ")"), ("[", "]"))  # around a set or tuple, once \left and \right are gone
_MAX_CHARS, _MAX_DEPTH = 1000, 12
_TOWER = re.compile(r"\^\s*\{[^{}]*(?:\^|\{[^{}]*\^)")  # 2^{2^{...}}, 10^{10^{10}}
_BIG_POWER = re.compile(r"\^\s*\{?\s*\d{5,}")  # x^{100000} and beyond
_BIG_FACTORIAL = re.compile(
    r"(?:\d{5,}|[)}])\s*!|\\binom\s*\{[^{}]*(?:\^|\d{5,})"
)  # 10000!, (10^{100})!, \binom{10^9}{k}

# math-verify warns once per process that its timeouts are off; off is deliberate off the main thread
logging.getLogger("math_verify").setLevel(logging.ERROR)


def _unreasonable(answer: str) -> str | None:
    """Why an answer is beyond any real one (MATH's longest is 159 characters, nested 3 deep), or None."""
    if len(answer) > _MAX_CHARS:
        return f"too long ({len(answer):,} characters)"
    depth = deepest = 0
    for c in answer:
        if c in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "})]":
            depth -= 1
    return f"nested too deeply ({deepest} levels)" if deepest > _MAX_DEPTH else None


def _explosive(answer: str) -> bool:
    """An exponent tower, a huge exponent or a large factorial: sympy would evaluate it for minutes."""
    return bool(_TOWER.search(answer) or _BIG_POWER.search(answer) or _BIG_FACTORIAL.search(answer))


def _out_of_reach(gold: str, pred: str) -> Verdict | None:
    """A verdict without parsing for answers no real one resembles; only the string match is tried on them."""
    if too := _unreasonable(gold):
        return Verdict(correct=None, extracted=pred, reason=f"cannot judge: gold answer {too}")
    if too := _unreasonable(pred):  # parsing it could take minutes, and no MATH answer comes close
        return Verdict(correct=False, extracted=pred, reason=f"answer {too}")
    if _explosive(gold) or _explosive(pred):
        return Verdict(correct=None, extracted=pred, reason="cannot judge: too large to evaluate")
    return None


def extract_answer(completion: str, extractors: Sequence[str] = DEFAULT_EXTRACTORS) -> str | None:
    """The final answer a completion states, by the first of `extractors` whose marker is present."""
    return extract(completion, extractors)[0]


def parts(answer: str) -> int:
    r"""How many answers a gold lists: the top-level commas of ``2, 3``, ``(1,2)``, ``\{1,2,3\}``.

    A thousands separator (``10,000``, ``10,\!000``) is not a comma between answers.
    """
    s = _THOUSANDS.sub("", _SPACES.sub("", answer))
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)
    count, closes_at = _top_level(s)
    for open_, close in _OUTER:  # one pair around it all: count inside
        if count == 1 and s.startswith(open_) and s.endswith(close) and closes_at == len(s) - 1:
            return _top_level(s[len(open_) : -len(close)])[0]
    return count


def _top_level(s: str) -> tuple[int, int]:
    """(the parts between top-level commas, the index where the first bracket opened closes; -1 if none)."""
    depth, count, closes_at = 0, 1, -1
    for i, c in enumerate(s):
        if c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
            if depth == 0 and closes_at < 0:
                closes_at = i
        elif c == "," and depth == 0:
            count += 1
    return count, closes_at


def _several_boxes(gold: str, pred: str, completion: str) -> list[str] | None:
    """The last boxes of a completion that boxes each of a multi-part gold's answers apart, or None."""
    n = parts(gold)
    if n < 2 or parts(pred) >= n:
        return None
    found = boxes(completion)
    return found[-n:] if len(found) >= 2 else None


def _same_string(a: str, b: str) -> bool:
    a, b = _SPACES.sub("", a).replace("dfrac", "frac"), _SPACES.sub("", b).replace("dfrac", "frac")
    return bool(a) and a == b


def _short(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def verify(
    problem: Problem,
    completion: str,
    *,
    extractors: Sequence[str] = DEFAULT_EXTRACTORS,
    compare: str | None = None,
    equations: Equations = "same_sides",
) -> Verdict:
    """Judge `completion` against `problem.answer`; never raises for bad input.

    `extractors`: named extractors tried in order (see verifiers/extract.py); details name the one that
    found the answer. When the gold lists several answers and `boxed` finds one, the last boxes are
    compared together, as a set or tuple as the gold is. `compare`: a second grader (a key of
    graders.GRADERS) run on the same answer; details record whether they disagree. `equations`:
    `same_sides` (an equation matches one with equivalent left and right sides, either way round:
    ``-a = -b`` is not ``a = b``, as a required form such as A > 0 asks) or `equivalent` (any equation
    with the same solutions, math-verify's own rule).
    """
    for name in extractors:
        get_extractor(name)  # a bad name is a config error, raised before anything is judged
    if compare is not None and compare not in GRADERS:
        raise ValueError(f"unknown grader {compare!r} for compare; valid: {', '.join(GRADERS)}")
    if equations not in ("same_sides", "equivalent"):
        raise ValueError(f"unknown equations rule {equations!r}; valid: same_sides, equivalent")
    if not isinstance(completion, str) or not completion.strip():
        return Verdict(correct=False, reason="empty completion")
    pred, source = extract(completion, extractors)
    if pred is None:
        return Verdict(correct=False, reason="no final answer found")
    details: dict = {"extractor": source}
    gold = getattr(problem, "answer", None)
    gold = "" if gold is None else str(gold)
    if not gold.strip():
        return Verdict(
            correct=None, extracted=pred, reason="cannot judge: gold answer empty", details=details
        )
    if (
        source == "boxed"
        and max(len(gold), len(pred)) <= _MAX_CHARS
        and (several := _several_boxes(gold, pred, completion))
    ):
        pred = ", ".join(several)
        details["boxes"] = len(several)
    if 0 < len(pred) < 80 and not any(c.isdigit() for c in pred) and (spelled := spelled_number(pred)):
        pred = spelled
    if not pred:
        return Verdict(correct=False, extracted=pred, reason="empty answer", details=details)
    if _same_string(gold, pred):  # the same LaTeX up to spacing: no parse needed
        verdict = Verdict(correct=True, extracted=pred, reason="match")
    else:
        verdict = _out_of_reach(gold, pred) or _integers(gold, pred) or _math_verify(gold, pred, equations)
    if compare is not None:
        second = GRADERS[compare](gold, pred)
        details.update(grader=compare, grader_correct=second, disagree=second != verdict.correct)
    return dataclasses.replace(verdict, details=details)


def _rational(s: str) -> tuple[Fraction, bool] | None:
    r"""(value, written as a decimal?) of a number, ``\frac{a}{b}`` or ``a/b`` (integer a, b), or None."""
    s = s.strip()
    if _NUMBER.fullmatch(s):
        return Fraction(s), "." in s
    m = _FRACTION.fullmatch(s.replace(" ", ""))
    if not m:
        return None
    num, den = (m["num"], m["den"]) if m["num"] else (m["num2"], m["den2"])
    if int(den) == 0:
        return None
    value = Fraction(int(num), int(den))
    return (-value if m["sign"] else value), False


def _integers(gold: str, pred: str) -> Verdict | None:
    """Fast path for two plain numbers or integer fractions (most of MATH's answers): exact, and no parsing.

    Exact also for two decimals: math-verify rounds to six places, so it equates 1e-7 and 2e-7. A
    decimal against a fraction that differ go on to math-verify, whose six-place rule accepts
    0.333333 for 1/3.
    """
    g, p = _rational(gold), _rational(pred)
    if g is None or p is None:
        return None
    if g[0] == p[0]:
        return Verdict(correct=True, extracted=pred, reason="match")
    if g[1] != p[1]:
        return None
    return Verdict(correct=False, extracted=pred, reason=f"mismatch: {_short(pred)} vs {_short(gold)}")


@functools.lru_cache(maxsize=4096)  # golds and common answers repeat across samples; parses are immutable
def _parse(latex: str, timeout_s: int | None) -> list:
    from math_verify import parse  # lazy: ~1 s of sympy/antlr imports

    latex = latex.strip().rstrip(".,;").strip() or latex  # "-\frac{5}{3}." only parses without the dot
    latex = _THOUSANDS.sub("", latex)  # "5,\!525": math-verify reads that comma as a tuple
    for pattern, repl in _LAST_VARIABLE:
        latex = pattern.sub(repl, latex)
    return parse(f"${latex}$", parsing_timeout=timeout_s, raise_on_error=True)


def _same_sides(gold: object, pred: object, timeout_s: int | None) -> bool | None:
    """For two equations: do their sides match (lhs with lhs and rhs with rhs, or crossed)? None if not."""
    from math_verify import verify as mv_verify
    from sympy import Eq

    if not (isinstance(gold, Eq) and isinstance(pred, Eq)):
        return None

    def eq(a: object, b: object) -> bool:
        return bool(mv_verify(a, b, timeout_seconds=timeout_s, raise_on_error=True))

    return (eq(gold.lhs, pred.lhs) and eq(gold.rhs, pred.rhs)) or (
        eq(gold.lhs, pred.rhs) and eq(gold.rhs, pred.lhs)
    )


def _math_verify(gold: str, pred: str, equations: Equations = "same_sides") -> Verdict:
    match = Verdict(correct=True, extracted=pred, reason="match")
    mismatch = Verdict(correct=False, extracted=pred, reason=f"mismatch: {_short(pred)} vs {_short(gold)}")
    g_base, p_base = _BASE.fullmatch(gold.strip()), _BASE.fullmatch(pred.strip())
    if g_base and g_base[2] and p_base:  # "1011_2" vs "1011_{2}" or "1011": subscripts math-verify drops
        try:
            base = int(g_base[2])
            same = int(p_base[2] or base) == base and int(p_base[1], base) == int(g_base[1], base)
            return match if same else mismatch  # so 1011_3 is not 1011_2
        except ValueError:  # "2x_3": no number in that base
            pass
    g_choices, p_choices = (sorted(_CHOICE_SEP.split(_CHOICES.sub("", s).strip())) for s in (gold, pred))
    if len(g_choices) > 1 and all(len(c) == 1 and c.isupper() for c in g_choices + p_choices):
        return match if g_choices == p_choices else mismatch  # math-verify reads "\text{A, C}" as one string
    if _PERCENT.search(gold):  # a percent gold asks for the number before the sign: 25 or 25\%, not 0.25
        gold, pred = _PERCENT.sub("", gold) or gold, _PERCENT.sub("", pred) or pred
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
            sides = _same_sides(gold_p[0], pred_p[0], t) if equations == "same_sides" and pred_p else None
            ok = (
                sides
                if sides is not None
                else (bool(pred_p) and mv_verify(gold_p, pred_p, timeout_seconds=t, raise_on_error=True))
            )
        except TimeoutException:  # a BaseException, so caught apart
            return Verdict(correct=None, extracted=pred, reason=f"cannot judge: math-verify timed out ({t}s)")
    except Exception as e:  # sympy/antlr errors on odd LaTeX: not the model's fault
        return Verdict(
            correct=None, extracted=pred, reason=f"cannot judge: {type(e).__name__}: {_short(str(e), 80)}"
        )
    return match if ok else mismatch
