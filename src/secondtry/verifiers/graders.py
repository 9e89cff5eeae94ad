r"""Second graders for the math verifier: the normalised string matches that published MATH results use.

`verify(..., compare=NAME)` runs `GRADERS[NAME](gold, pred)` next to math-verify and records where
they disagree. Each grader normalises both strings and compares them exactly, so it is stricter
than math-verify on equivalent forms and serves as a reference point, not as a verdict. A grader
returns True / False, or None when it cannot judge (an empty gold); it never raises.

>>> hendrycks(r"\dfrac12", "1/2"), hendrycks("0.5", r"\frac{1}{2}"), hendrycks("x = 3", "3")
(True, True, True)
>>> minerva(r"10,000 \text{ dollars}", "10000"), minerva(r"\textbf{(B)}", "(B)")
(True, True)
>>> hendrycks("", "3") is None and minerva("  ", "3") is None
True
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction

Grader = Callable[[str, str], "bool | None"]

_TRAILING_UNIT = re.compile(
    r"\\(?:text|mbox)\{\s[^{}]*\}(?:\^\{?[23]\}?)?\s*$"
)  # "5\text{ cm}^2": a space, a unit
_INT_SLASH = re.compile(r"(-?)(\d+)/(\d+)")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_NAME_EQ = re.compile(r"^\s*(?:[A-Za-z](?:_\{?\w+\}?)?(?:\([a-z]\))?|\\[A-Za-z]+)\s*=")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)")
_UNIT_WORDS = re.compile(
    r"(?<![A-Za-z\\])(?:square|ways|integers|dollars|mph|inches|ft|hours|km|units|points|feet|minutes"
    r"|digits|cents|degrees|cm|gm|pounds|meters|meals|edges|students|childrentickets|multiples)(?![A-Za-z])"
)
_MINERVA_DROP = (
    r"\text{s}",
    r"\text{.}",
    r"\text{}^2",
    r"\text{}^3",
    r"\text{}",
    r"\mathrm{th}",
    r"^\circ",
    r"^{\circ}",
    r"\;",
    r",\!",
    "{,}",
    '"',
    r"\ldots",
    r"\dots",
)
_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|overline|boxed)\{")


def _group_end(s: str, i: int) -> int:
    """The index just past the brace group opening at s[i] (the end of s if it never closes)."""
    depth = 0
    for k in range(i, len(s)):
        depth += {"{": 1, "}": -1}.get(s[k], 0)
        if depth == 0:
            return k + 1
    return len(s)


def _unwrap(s: str) -> str:
    r"""``\boxed{\text{(B)}}`` -> ``(B)``: drop wrapper commands, keep what they wrap."""
    while m := _WRAPPER.search(s):
        end = _group_end(s, m.end() - 1)
        closed = s[end - 1 : end] == "}"
        s = s[: m.start()] + s[m.end() : end - 1 if closed else end] + s[end:]
    return s


def _shorthand(s: str, command: str, n_args: int) -> str:
    r"""Brace the arguments of `command` written without braces: ``\frac12`` -> ``\frac{1}{2}``."""
    out, i = [], 0
    while (j := s.find(command, i)) >= 0:
        out.append(s[i : j + len(command)])
        i = j + len(command)
        if i < len(s) and s[i].isalpha():  # "\fraction" or "\sqrtx"-like macro names are not ours
            continue
        for _ in range(n_args):
            if i >= len(s) or s[i] == "[":  # "\sqrt[3]{x}": leave roots with an index alone
                break
            if s[i] == "{":
                k = _group_end(s, i)
                out.append(s[i:k])
                i = k
            else:  # one token: a character, or a whole command such as \pi
                tok = re.match(r"\\[A-Za-z]+|.", s[i:], re.DOTALL)[0]
                out.append("{" + tok + "}")
                i += len(tok)
    out.append(s[i:])
    return "".join(out)


def _hendrycks_norm(s: str) -> str:
    s = s.replace("\n", "").replace(r"\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac").replace(r"\left", "").replace(r"\right", "")
    s = s.replace(r"^{\circ}", "").replace(r"^\circ", "").replace(r"\$", "").replace("$", "")
    s = _TRAILING_UNIT.sub("", s).replace(r"\%", "").replace("%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.").strip()
    if s.startswith("."):
        s = "0" + s
    left, eq, right = s.partition("=")
    if eq and "=" not in right and len(left.strip()) <= 2:  # "x = 3", "k=7": drop the short left side
        s = right
    s = _shorthand(s.replace(" ", ""), r"\sqrt", 1)
    s = _shorthand(s, r"\frac", 2)
    if s == "0.5":
        return r"\frac{1}{2}"
    m = _INT_SLASH.fullmatch(s)
    return rf"{m[1]}\frac{{{m[2]}}}{{{m[3]}}}" if m else s


def hendrycks(gold: str, pred: str) -> bool | None:
    r"""MATH's own grader (PRM800K reuses its normalisation): strip formatting, compare exactly.

    >>> hendrycks(r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})")
    True
    >>> hendrycks(r"90^\circ", "90"), hendrycks(r"5\text{ cm}^2", "5"), hendrycks(r"\$18.90", "18.90")
    (True, True, True)
    >>> hendrycks(".5", "0.5"), hendrycks(r"\sqrt2", r"\sqrt{2}"), hendrycks("-3/4", r"-\frac34")
    (True, True, True)
    >>> hendrycks(r"\frac{1}{2}", "0.50")  # no arithmetic: only the literal 0.5 is special
    False
    >>> hendrycks("3", "4"), hendrycks("3", "")
    (False, False)
    """
    try:
        if not isinstance(gold, str) or not gold.strip():
            return None
        if not isinstance(pred, str):
            return False
        g, p = _hendrycks_norm(gold), _hendrycks_norm(pred)
        return bool(g) and g == p
    except Exception:  # a grader is a second opinion: odd input must not stop the verifier
        return None


def _minerva_norm(s: str) -> str:
    s = _NAME_EQ.sub("", s)  # "x = 3", "f(x) = 2x+3": the right side; "x+y=0" stays an equation
    for before, after in (
        (r"\$", ""),
        (r"\ ", ""),
        (" ", ""),
        ("mbox", "text"),
        (r",\text{and}", ","),
        (r"\text{and}", ","),
        (r"\text{m}", r"\text{}"),
    ):
        s = s.replace(before, after)
    s = _UNIT_WORDS.sub("", s)
    for expr in _MINERVA_DROP:
        s = s.replace(expr, "")
    m = re.search(r"\$(.*?)\$", s)
    if m:  # text around an inline formula is prose; the formula is the answer
        s = m[1]
    s = _shorthand(_shorthand(_unwrap(s), r"\frac", 2), r"\sqrt", 1)
    s = s.replace("$", "").rstrip(".")
    if _THOUSANDS.fullmatch(s):  # "100,000" -> "100000"; "1,2" stays a list
        s = s.replace(",", "")
    return s


def minerva(gold: str, pred: str) -> bool | None:
    r"""Minerva's grader: drop units, wrappers and `x=`, brace shorthand, then compare exactly.

    Two plain decimal numbers are also compared by value ("0.50" and ".5"): exact, and cheap.

    >>> minerva(r"\boxed{\frac{1}{2}}", r"\frac12"), minerva("x=5", r"5\text{ inches}")
    (True, True)
    >>> minerva("0.50", ".5"), minerva(r"\text{(C)}", "C")
    (True, False)
    >>> minerva(r"\frac{1}{2}", "0.5"), minerva("(1,2)", "(2,1)"), minerva("1, 2", "12")
    (False, False, False)
    >>> minerva("f(x) = 2x+3", "2x+3"), minerva(r"\theta=1", "1"), minerva("x+y=0", "0")
    (True, True, False)
    """
    try:
        if not isinstance(gold, str) or not gold.strip():
            return None
        if not isinstance(pred, str):
            return False
        g, p = _minerva_norm(gold), _minerva_norm(pred)
        if _NUMBER.fullmatch(g) and _NUMBER.fullmatch(p):
            return Fraction(g) == Fraction(p)
        return bool(g) and g == p
    except Exception:  # a grader is a second opinion: odd input must not stop the verifier
        return None


GRADERS: dict[str, Grader] = {"hendrycks": hendrycks, "minerva": minerva}
