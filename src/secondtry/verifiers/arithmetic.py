r"""The arithmetic a worked word-problem solution states, recomputed exactly (GSM8K style).

`stated_steps(text)` finds every calculation a solution writes down and recomputes it with
`fractions.Fraction` (never floats):

- GSM8K's calculator annotations `<<48/2=24>>`;
- equations in the prose: `48/2 = 24`, chains `100 - 50 - 30 - 15 = $5`, sloppy chains that carry a result on
  (`5 + 3 = 8 * 2 = 16`: 5 + 3 = 8, then 8 * 2 = 16), parentheses, implicit products (`40(.60) = 24`), powers;
- numbers as people write them: thousands separators (`1,200`), currency (`$0.2`, `€5`), decimals (`.5`),
  percentages (`20% of 50 = 10`, `15/60 * 100 = 25%`), fractions (`3/4`, `1 1/2`, LaTeX's `\frac{3}{4}`),
  units between numbers (`12 apples + 3 apples = 15 apples`), operators as symbols or words (`x`, `×`,
  `\times`, `\cdot`, `÷`, `times`, `divided by`, `plus`, `minus`).

An equality is a step when its left side computes something ("1 hour = 60 minutes" is a statement, not
arithmetic). A stated decimal may be rounded or cut to the places it shows (`100/3 = 33.33`), a whole number
stands for a fraction only where the text says why (a remainder, "full", "rounded"). Equations in one variable
are solved exactly and read against the equation that set them up. What cannot be read with certainty is not a
step: two unknowns, a side whose expression runs on past what was parsed, a relation other than `=`, clock
times and ranges. So a misreading does not fail a right solution; docs/verifiers.md states what this costs,
measured on GSM8K.

`check(text, answer, question)` adds the link to the final answer: it must be what the last step ends on, or a
result of an earlier step that the text names again, or the value of a variable the equations solve for; and
the step that reaches it must be grounded in the question (use one of its numbers, a number written before, or
an earlier grounded result). A solution with no checkable step does not pass: a policy that must show its
steps cannot pass by showing none. A step that does nothing (`72 * 1 = 72`, `0 + 72 = 72`) derives nothing by
itself, so restating the answer is not a derivation.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

from ..types import Problem, Verdict
from .numeric import DEFAULT_EXTRACTORS
from .numeric import verify as numeric_verify

MAX_DIGITS = 40  # a number longer than this is not read (no real solution states one)
MAX_EXPONENT = 64
MAX_BITS = 4096  # a power whose result would pass this many bits is not computed
MAX_CLAUSE = 300  # tokens: a longer run without a sentence break is not read (no real step is that long)
HALF_UP, DOWN = "half up", "down"
# a whole number stated for a fraction is read as rounded only where the text says why, soon after it
WHOLE_WORDS = {
    "remaining",
    "remainder",
    "remain",
    "remains",
    "left",
    "full",
    "whole",
    "complete",
    "rounded",
    "round",
    "rounding",
}

# ----------------------------------------------------------------------------- reading the text

_ANNOTATION = re.compile(r"<<([^<>]{1,200}?)>>")
_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_LATEX_TEXT = re.compile(r"\\(?:text|textbf|textit|mathrm|mbox|operatorname)\s*\{([^{}]*)\}")
_LATEX_SUBS = [
    (r"\times", "*"),
    (r"\cdot", "*"),
    (r"\div", "/"),
    (r"\left", ""),
    (r"\right", ""),
    (r"\$", "$"),
    (r"\%", "%"),
    (r"\approx", "≈"),
    (r"\neq", "≠"),
    (r"\leq", "≤"),
    (r"\geq", "≥"),
    (r"\le", "≤"),
    (r"\ge", "≥"),
    (r"\!", ""),
    (r"\,", " "),
    (r"\;", " "),
    (r"\quad", " "),
    (r"\qquad", " "),
    ("{,}", ","),
    (r"\(", " "),
    (r"\)", " "),
    (r"\[", " "),
    (r"\]", " "),
    (r"\boxed", " "),
    (r"\fbox", " "),
]
_UNICODE = {
    "×": "*",
    "✕": "*",
    "·": "*",
    "⋅": "*",
    "∙": "*",
    "÷": "/",
    "∕": "/",
    "−": "-",
    "–": "-",
    "＝": "=",
    "⁄": "/",
}

NUMBER = r"(?:\d{1,3}(?:,\d{3})+(?![\d,])|\d+)(?:\.\d+)?|\.\d+"
# "$100 000": a space as the thousands separator, after a currency sign
MONEY_SPACED = r"\d{1,3}(?: \d{3})+(?![\d,.])"
_TOKEN = re.compile(
    r"(?P<ann>\x00(?P<ann_i>\d+)\x00)"
    r"|(?P<bar>(?<![\w.:])(?:[01]?\d|2[0-3]):[0-5]\d(?![\d:])(?:\s?[ap]\.?m\b\.?)?"  # 7:50 a.m.
    r"|(?<![\w.,])0\d+(?![.\d])"  # 0130
    r"|(?<![\w.,+*/=-])(?<![+*/=-]\s)(?P<lo>\d+)-(?P<hi>\d+)(?![\w.,-])(?!\s*[-+*/=(\d]))"  # a range "1-2"
    r"|(?P<mixed>(?<![\w.,/])(?:[$€£]\s?)?(?P<whole>\d+)(?: |\s+and\s+)(?P<open>\()?(?P<fn>\d+)/(?P<fd>\d+)"
    r"(?(open)\))(?![\d.,/]))"
    rf"|(?P<num>(?<![\w.])(?:(?P<cur>[$€£]\s?)(?P<spaced>{MONEY_SPACED})"
    rf"|(?P<cur2>[$€£]\s?)?(?P<digits>{NUMBER}))"
    r"(?P<dots>\.\.\.|…)?(?P<pct>\s?%|\s?percent\b)?(?P<glued>[A-Za-z]+)?)"
    r"|(?<=\))(?P<pctsign>%)|(?P<op>[-+*/^√])|(?P<lp>\()|(?P<rp>\))|(?P<eq>=)"
    r"|(?P<word>[A-Za-z]+(?:'[A-Za-z]+)?)"
    r"|(?P<brk>[.;:?!\n,#≈~<>≤≥≠—|])"
    r"|(?P<skip>\s+|\S)"
)
# units written straight after a number ("5kg"); any other glued letters make it unreadable ("2x", "5th")
# (single letters are too often a variable: "2x", "4S")
_UNIT_SUFFIXES = {
    "kg",
    "mg",
    "lb",
    "lbs",
    "oz",
    "km",
    "cm",
    "mm",
    "mi",
    "ft",
    "hr",
    "hrs",
    "min",
    "mins",
    "sec",
    "ml",
    "gal",
    "mph",
    "kph",
}
MAX_UNIT_WORDS = 3  # "10 miles per hour * 0.5"
# words that end a run of units: a clause goes on ("25% off so that's a savings of 60*.25")
_NOT_UNITS = {
    "so",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "and",
    "or",
    "then",
    "that",
    "that's",
    "which",
    "it",
    "he",
    "she",
    "they",
    "we",
    "you",
    "i",
    "would",
    "will",
    "can",
    "could",
    "has",
    "have",
    "had",
    "for",
    "to",
    "if",
    "but",
    "because",
    "since",
    "there",
    "this",
    "these",
    "those",
    "thus",
    "hence",
    "means",
    "gives",
    "makes",
    "equals",
    "by",
    "of",
    "the",
    "a",
    "an",
    "in",
    "on",
    "at",
    "from",
    "with",
}
WORD_OPS = {"x": "*", "times": "*", "plus": "+", "minus": "-", "multiplied": "*", "divided": "/"}
_BLOCKING_WORDS = {"x", "times", "plus", "minus", "by"}  # a left side right after one is a fragment


@dataclass(frozen=True)
class Token:
    kind: str  # num, op, lp, rp, eq, word, brk, bar
    text: str
    pos: int
    value: Fraction | None = None
    pct: bool = False  # a percentage: value is the share (20% -> 1/5)
    places: int = 0  # decimal places as written


def _normalise(text: str, annotations: list[str]) -> str:
    def keep(m: re.Match[str]) -> str:
        annotations.append(m[1])
        return f"\x00{len(annotations) - 1}\x00"

    text = _ANNOTATION.sub(keep, text)
    text = _LATEX_FRAC.sub(r"(\1)/(\2)", text)
    text = _LATEX_TEXT.sub(r" \1 ", text)
    for a, b in _LATEX_SUBS:
        text = text.replace(a, b)
    text = "".join(_UNICODE.get(c, c) for c in text)
    text = re.sub(r"(?<=[A-Za-z0-9])-(?=[A-Za-z])", " ", text)  # one-third, 5-minute: not a minus
    for a, b in (("//", "/"), ("**", " "), ("{", "("), ("}", ")"), ("[", "("), ("]", ")")):
        text = text.replace(a, b)
    text = re.sub(r"\\[A-Za-z]+", " ", text)  # other LaTeX commands
    return text.replace("$", "$ ").replace("$ ", "$")  # a lone $ (math delimiter) is a space below


def _number(digits: str) -> tuple[Fraction, int] | None:
    digits = digits.replace(",", "")
    if len(digits) > MAX_DIGITS:
        return None
    places = len(digits.split(".")[1]) if "." in digits else 0
    return Fraction(digits), places


def tokens(text: str, ranges: bool = True) -> list[Token]:
    """The text as tokens: numbers (with value, percentage, decimal places), operators, parentheses, `=`,
    words, breaks (sentence ends, commas, colons, other relations) and annotation markers."""
    out: list[Token] = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if m["ann"]:
            out.append(Token("ann", m["ann_i"], m.start()))
        elif m["mixed"]:
            whole, n, d = int(m["whole"]), int(m["fn"]), int(m["fd"])
            if 0 < n < d and len(m["mixed"]) <= MAX_DIGITS:
                out.append(Token("num", m["mixed"], m.start(), Fraction(whole) + Fraction(n, d), places=-1))
            else:  # not a proper fraction after a whole number: read the parts on their own
                cut = m.end("whole")  # read the parts on their own
                out += [
                    dataclasses.replace(t, pos=t.pos + at)
                    for at, part in ((m.start(), text[m.start() : cut]), (cut, text[cut : m.end()]))
                    for t in tokens(part)
                ]
        elif m["num"]:
            read = _number(m["digits"] or m["spaced"].replace(" ", ""))
            glued = m["glued"] or ""
            if read is None or (glued and glued not in _UNIT_SUFFIXES):
                out.append(Token("bar", m["num"], m.start()))
                continue
            value, places = read
            if m["dots"]:  # 8.333...% : a repeating decimal, cut where it was written
                places = max(places, 1)
            share = value / 100 if m["pct"] else value
            out.append(Token("num", m["num"], m.start(), share, bool(m["pct"]), places))
        elif m["bar"] and m["lo"] and (not ranges or int(m["lo"]) >= int(m["hi"])):  # "5-3": a subtraction
            cut = m.start("hi") - 1
            out += [
                dataclasses.replace(t, pos=t.pos + at)
                for at, part in ((m.start(), text[m.start() : cut]), (cut, text[cut : m.end()]))
                for t in tokens(part)
            ]
        elif m["bar"]:
            out.append(Token("bar", m["bar"], m.start()))
        elif kind == "word" and len(m[0]) == 1 and m[0] not in "aAIxX":
            out.append(Token("bar", m[0], m.start()))  # a single letter is a variable: "4 W^2", "S + 143"
        elif kind == "word" and out and out[-1].kind == "rp" and out[-1].pos + 1 == m.start():
            out.append(Token("bar", m[0], m.start()))  # "(3/4)e": a variable
        elif kind == "word" and m[0].lower() == "equals":
            out.append(Token("eq", m[0], m.start()))  # "150 divided by 5 equals 30"
        elif kind == "skip":
            if m[0] in "\"'`$€£&@":  # quotes and stray currency or math-delimiter signs: no meaning here
                continue
            if not m[0].isspace():
                out.append(Token("brk", m[0], m.start()))
        elif kind is not None:
            out.append(Token(kind, m[0], m.start()))
    return out


# ----------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Expr:
    value: Fraction | None  # None: a division by zero
    alt: Fraction | None  # the value with "a / b/c" read as a / (b/c), where that differs
    start: int  # token span [start, end)
    end: int
    ops: int  # binary operators it holds
    atoms: tuple[Token, ...]  # its numbers, in order
    lead: Fraction | None  # the value of its first number (sloppy chains carry a result on through it)


class _Unreadable(Exception):
    pass


@dataclass(frozen=True, eq=False)
class Lin:
    """a * v + b in one variable v, exactly: what an expression of a one-variable equation is worth. A product
    of two non-constant forms, or a division by one, is not linear: not read."""

    a: Fraction
    b: Fraction

    @staticmethod
    def of(x: Lin | Fraction | int) -> Lin:
        return x if isinstance(x, Lin) else Lin(Fraction(0), Fraction(x))

    def __add__(self, o):
        return Lin(self.a + Lin.of(o).a, self.b + Lin.of(o).b)  # noqa: E704

    __radd__ = __add__

    def __neg__(self):
        return Lin(-self.a, -self.b)  # noqa: E704

    def __sub__(self, o):
        return self + -Lin.of(o)  # noqa: E704

    def __rsub__(self, o):
        return Lin.of(o) + -self  # noqa: E704

    def __mul__(self, o):
        o = Lin.of(o)
        if self.a and o.a:
            raise _Unreadable("not linear")
        return Lin(self.a * o.b + o.a * self.b, self.b * o.b)

    __rmul__ = __mul__

    def __truediv__(self, o):
        o = Lin.of(o)
        if o.a:
            raise _Unreadable("division by a variable")
        if o.b == 0:
            raise ZeroDivisionError
        return Lin(self.a / o.b, self.b / o.b)

    def __rtruediv__(self, o):
        return Lin.of(o) / self  # noqa: E704

    def __eq__(self, o):
        return isinstance(o, (Lin, Fraction, int)) and (self.a, self.b) == (Lin.of(o).a, Lin.of(o).b)

    def __ne__(self, o):
        return not self == o  # noqa: E704


def _sqrt(x: Fraction) -> Fraction | None:
    """The exact square root of a non-negative rational, where it is rational."""
    if x < 0:
        return None
    n, d = math.isqrt(x.numerator), math.isqrt(x.denominator)
    return Fraction(n, d) if n * n == x.numerator and d * d == x.denominator else None


class _Parser:
    """Recursive descent over a clause's tokens: + - (left), * / x times of and implicit products,
    ^ (right)."""

    def __init__(self, toks: list[Token], fraction_divisor: bool = False):
        self.t = toks
        self.fraction_divisor = fraction_divisor  # "25 / 1/3": divide by the fraction 1/3
        self.i = 0
        self.ops = 0
        self.atoms: list[Token] = []
        self.value: Fraction | None = None

    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.t[j] if j < len(self.t) else None

    def starts_operand(self, k: int = 0) -> bool:
        tok = self.peek(k)
        if tok is None:
            return False
        if tok.kind in ("num", "lp", "var") or (tok.kind == "op" and tok.text == "√"):
            return True
        nxt = self.peek(k + 1)
        return tok.kind == "op" and tok.text in "+-" and self.starts_operand(k + 1) and nxt.kind != "op"

    def binary(self, ops: str) -> tuple[str, int] | None:
        """The operator at the cursor among `ops` (a symbol or a word), and its length in tokens, if an
        operand follows it."""
        tok = self.peek()
        if tok is None:
            return None
        if tok.kind == "op" and tok.text in ops:
            return (tok.text, 1) if self.starts_operand(1) else None
        if tok.kind != "word":
            return None
        word = tok.text.lower()
        nxt = self.peek(1)
        by = nxt is not None and nxt.kind == "word" and nxt.text.lower() == "by"
        if word in ("multiplied", "divided") and by:
            op, n = WORD_OPS[word], 2
        elif word == "of" and self.of_multiplies:
            op, n = "*", 1
        elif word in WORD_OPS and word not in ("multiplied", "divided"):
            op, n = WORD_OPS[word], 1
        else:
            return None
        after = self.peek(n)
        return (op, n) if op in ops and after is not None and after.kind in ("num", "lp", "var") else None

    of_multiplies = False  # "20% of 50", "1/2 of 50": after a percentage or a fraction

    def expr(self) -> Fraction | None:
        value = self.term()
        while (found := self.binary("+-")) is not None:
            op, n = found
            self.i += n
            self.ops += 1
            right = self.term()
            value = None if value is None or right is None else value + right if op == "+" else value - right
        return value

    def term(self) -> Fraction | None:
        value = self.factor()
        while True:
            found = self.binary("*/")
            if (
                found is None
                and self.peek() is not None
                and self.peek().kind == "lp"
                and self.i > 0
                and self.t[self.i - 1].kind in ("num", "rp", "var")
            ):
                found = ("*", 0)  # 40(.60), (2)(3)
            if found is None:
                return value
            op, n = found
            self.i += n
            self.ops += 1
            self.of_multiplies = op == "/"
            right = self.fraction() if op == "/" and self.fraction_divisor else None
            right = self.factor() if right is None else right
            if value is None or right is None:
                value = None
            elif op == "*":
                value = value * right
            else:
                value = value / right if right != 0 else None

    def fraction(self) -> Fraction | None:
        """b/c of two whole numbers at the cursor, consumed as one divisor; None (nothing consumed)
        otherwise."""
        b, slash, c = self.peek(), self.peek(1), self.peek(2)
        if b is None or slash is None or c is None:
            return None
        if not (b.kind == c.kind == "num" and slash.kind == "op" and slash.text == "/"):
            return None
        whole = all(
            t.value is not None and t.value.denominator == 1 and not t.pct and t.text[:1] not in "$€£"
            for t in (b, c)
        )
        if not whole or not 0 < b.value < c.value <= 100:
            return None  # only a proper fraction of small whole numbers ("25 / 1/3", "500/ 2/5")
        self.i += 3
        self.ops += 1
        self.atoms += [b, c]
        self.units()
        return b.value / c.value

    def factor(self) -> Fraction | None:
        base = self.unary()
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text == "^" and self.starts_operand(1):
            self.i += 1
            self.ops += 1
            exponent = self.factor()
            if base is None or exponent is None:
                return None
            if isinstance(exponent, Lin):
                raise _Unreadable("a variable exponent")
            if isinstance(base, Lin):
                if exponent == 1:
                    return base
                if base.a:
                    raise _Unreadable("not linear")
                base = base.b
            if exponent.denominator != 1 or abs(exponent) > MAX_EXPONENT or (base == 0 and exponent < 0):
                raise _Unreadable("exponent")
            bits = abs(base.numerator).bit_length() + base.denominator.bit_length()
            if bits * abs(int(exponent)) > MAX_BITS:
                raise _Unreadable("too large a power")
            return base ** int(exponent)
        return base

    def unary(self) -> Fraction | None:
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text in "+-":
            self.i += 1
            value = self.unary()
            return None if value is None else -value if tok.text == "-" else value
        return self.atom()

    def atom(self) -> Fraction | None:
        tok = self.peek()
        if tok is None:
            raise _Unreadable("end")
        if tok.kind == "op" and tok.text == "√" or tok.kind == "word" and tok.text.lower() == "sqrt":
            self.i += 1
            self.ops += 1
            value = self.atom()
            root = _sqrt(value) if value is not None else None
            if root is None:
                raise _Unreadable("a root that is not exact")
            return root
        if tok.kind == "var":
            self.i += 1
            self.of_multiplies = False
            return Lin(Fraction(1), Fraction(0))
        if tok.kind == "num":
            self.i += 1
            self.atoms.append(tok)
            self.of_multiplies = tok.pct
            self.units()
            return tok.value
        if tok.kind == "lp":
            self.i += 1
            value = self.expr()
            close = self.peek()
            if close is None or close.kind != "rp":
                raise _Unreadable("unclosed parenthesis")
            self.i += 1
            self.of_multiplies = False
            after = self.peek()
            if after is not None and after.kind == "pctsign":  # "(($45/$300)*100)% = 15%"
                self.i += 1
                value = None if value is None else value / 100
            self.units()
            return value
        raise _Unreadable(tok.kind)

    def units(self) -> None:
        """Skip what qualifies a number: rates ("$600/weekday") always, a few unit words ("12 apples + 3")
        only where an operator, `=` or `)` follows them."""
        j, words = self.i, 0
        while j < len(self.t) and words < MAX_UNIT_WORDS:
            tok = self.t[j]
            nxt = self.t[j + 1] if j + 1 < len(self.t) else None
            if (
                tok.kind == "op"
                and tok.text == "/"
                and nxt is not None
                and nxt.kind == "word"
                and len(nxt.text) > 1
                and nxt.text.lower() not in _NOT_UNITS
            ):
                j += 2  # a rate: "$600/weekday", "4 hours/day"
                if words == 0:
                    self.i = j
                continue
            if tok.kind != "word" or tok.text.lower() in WORD_OPS or tok.text.lower() in _NOT_UNITS:
                break
            j, words = j + 1, words + 1
        if j > self.i and j < len(self.t) and (self.t[j].kind in ("op", "eq", "rp") or self._op_word_at(j)):
            self.i = j

    def _op_word_at(self, j: int) -> bool:
        saved, self.i = self.i, j
        try:
            return self.binary("+-*/") is not None
        finally:
            self.i = saved


def _run(toks: list[Token], start: int, fraction_divisor: bool) -> _Parser | None:
    p = _Parser(toks, fraction_divisor)
    p.i = start
    if not p.starts_operand():
        return None
    try:
        p.value = p.expr()
    except (_Unreadable, ZeroDivisionError, OverflowError, RecursionError):
        return None
    return p


def parse(toks: list[Token], start: int) -> Expr | None:
    """The longest expression starting at `start`, or None where none can be read there."""
    p = _run(toks, start, False)
    if p is None:
        return None
    alt = _run(toks, start, True)
    alt_value = alt.value if alt is not None and alt.i == p.i and alt.value != p.value else None
    lead = p.atoms[0].value if p.atoms else None
    if p.atoms and toks[start].kind == "op" and toks[start].text == "-" and lead is not None:
        lead = -lead
    return Expr(p.value, alt_value, start, p.i, p.ops, tuple(p.atoms), lead)


# ----------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Step:
    """One stated calculation: `left = right` as written, the left side's exact value, and the verdict."""

    pos: int  # where it stands in the (normalised) text (its `=`): steps are ordered by it
    start: int  # where it starts there
    end: int  # where it ends there
    text: str
    left: Fraction | None
    right: Fraction
    ok: bool
    why: str
    result: Fraction  # the value this step ends on (what a next step or the final answer builds on)
    result_pct: bool  # the result was written as a percentage
    result_money: bool  # ... or as an amount of money ("$0.49")
    operands: tuple[Fraction, ...]
    identity: Fraction | None  # a step that does nothing (x * 1, x / 1, x + 0, x - 0, x ^ 1): its 1 or 0
    algebra: bool = False  # an equation in one variable, read against its set-up

    @property
    def trivial(self) -> bool:
        return self.identity is not None


def _round(value: Fraction, places: int, mode: str) -> Fraction:
    """`value` to `places` decimals, half away from zero (HALF_UP) or toward zero (DOWN), exactly."""
    scale = 10**places
    x = abs(value) * scale
    n = math.floor(x + Fraction(1, 2)) if mode == HALF_UP else math.floor(x)
    return Fraction(n if value >= 0 else -n, scale)


def _matches(value: Fraction, figure: Fraction, places: int, whole: bool = False) -> bool:
    """`figure` as written (with `places` decimals; -1: a mixed number) states `value`: exactly, rounded or
    cut to its places, or (`whole`: the text says it counts whole things) as a whole number rounded either
    way."""
    if value == figure:
        return True
    if places > 0:
        return any(_round(value, places, mode) == figure for mode in (HALF_UP, DOWN))
    rounded = figure in (math.floor(value), math.ceil(value))
    return whole and places == 0 and value.denominator != 1 and rounded


def equal(
    value: Fraction | None,
    stated: Token | None,
    stated_value: Fraction,
    left_pct: bool = False,
    cents: bool = False,
    whole: bool = False,
) -> bool:
    """Whether an exact value equals what is stated. Besides exact equality: a stated decimal rounded or cut
    to its places, a whole number for a fraction, a percentage stated as its figure (`15/60 * 100 = 25%`, `15
    / 90 * 100% = 16.66`), dollars stated in cents (`$2.50 - $2.24 = 26 cents`)."""
    if value is None:
        return False
    if value == stated_value:
        return True
    if stated is None:
        return False
    figure, places = (stated_value * 100, stated.places) if stated.pct else (stated_value, stated.places)
    for v in [value] + ([value * 100] if cents else []):
        if stated.pct and (_matches(v * 100, figure, places) or _matches(v, figure, places)):
            return True
        as_figure = left_pct and _matches(v * 100, figure, places)
        if not stated.pct and (_matches(v, figure, places, whole) or as_figure):
            return True
    return False


def _bare(e: Expr) -> Token | None:
    """The number token of a side that is one number, else None."""
    return e.atoms[0] if e.ops == 0 and len(e.atoms) == 1 else None


def _identity(e: Expr, toks: list[Token]) -> Fraction | None:
    """Of two numbers whose operator leaves one unchanged (x*1, x/1, x+0, x-0, x^1, 1*x, 0+x): the 1 or 0."""
    if e.ops != 1 or len(e.atoms) != 2:
        return None
    a, b = (t.value for t in e.atoms)
    between = [t for t in toks[e.start : e.end] if t.pos > e.atoms[0].pos and t.pos < e.atoms[1].pos]
    op = next(
        (
            t.text if t.kind == "op" else WORD_OPS.get(t.text.lower(), "*")
            for t in between
            if t.kind == "op" or t.text.lower() in WORD_OPS or t.text.lower() == "of"
        ),
        "*",
    )
    if (op in "*/^" and b == 1) or (op in "+-" and b == 0):
        return b
    return a if (op == "*" and a == 1) or (op == "+" and a == 0) else None


def _text(toks: list[Token], text: str, a: int, b: int) -> str:
    """The step as written (annotation markers left out)."""
    written = text[toks[a].pos : toks[b - 1].pos + len(toks[b - 1].text)]
    return " ".join(re.sub("\x00\\d+\x00", "", written).split())


def _clauses(toks: list[Token]) -> Iterator[tuple[int, int]]:
    start = 0
    for i, t in enumerate(toks + [Token("brk", "", -1)]):
        if t.kind == "brk":
            if start < i <= start + MAX_CLAUSE:
                yield start, i
            start = i + 1


_BLOCKING = {"op", "num", "bar", "rp"}


def _left(toks: list[Token], lo: int, q: int) -> Expr | None:
    """The longest expression that ends just before `=` at q (after its units) and stands on its own."""
    for s in range(lo, q):
        if toks[s].kind not in ("num", "lp", "op", "var"):
            continue
        e = parse(toks[: q + 1], s)  # the `=` stays in view (units before it are skipped), never consumed
        if e is None or e.end != q:
            continue
        before = toks[s - 1] if s > lo else None
        opens = before is None or before.kind in ("lp", "eq")
        if toks[s].kind == "op" and (toks[s].text != "-" or not opens):
            continue  # a sign opens an expression only at the start of a clause or after ( and =
        inside = s - 1 > lo and toks[s - 2].kind in _BLOCKING | {"word"}
        if before is not None and before.kind == "lp" and inside:
            continue  # "$100+($100*(10/100) = ...": inside a larger expression
        if (
            before is not None
            and before.kind == "word"
            and before.text.lower() == "of"
            and s - 1 > lo
            and toks[s - 2].kind in ("num", "rp")
        ):
            continue  # "20% of 50 = 10" read from 50
        if before is not None and (
            before.kind in _BLOCKING or (before.kind == "word" and before.text.lower() in _BLOCKING_WORDS)
        ):
            continue  # "x + 2 = 5", "6W / 6 = 1": only part of an expression
        j = s - 1
        while (
            j > lo
            and s - j <= MAX_UNIT_WORDS
            and toks[j].kind == "word"
            and toks[j].text.lower() not in _NOT_UNITS
        ):
            j -= 1
        if j < s - 1 and toks[j].kind == "op":
            continue  # "25 classmates + his 1 teacher + 1 = 27": a word or two inside a larger expression
        return e
    return None


def _text_steps(toks: list[Token], text: str, linker=None) -> list:
    """The steps of every `=` chain in the text (`linker` turns a chain into them: `_links` by default)."""
    linker = linker or _links
    steps: list = []
    for lo, hi in _clauses(toks):
        clause = toks[:hi]
        q = lo
        while q < hi:
            if toks[q].kind != "eq":
                q += 1
                continue
            left = _left(toks, lo, q)
            chain: list[Expr] = [left] if left is not None else []
            while q < hi and toks[q].kind == "eq":
                right = parse(clause, q + 1)
                if right is None:
                    break
                after = toks[right.end] if right.end < hi else None
                if after is not None and (after.kind in _BLOCKING or after.kind == "lp"):
                    break  # the right side runs on past what could be read
                chain.append(right)
                q = right.end
            steps += linker(chain, toks, text)
            q = max(q + 1, chain[-1].end if chain else q + 1)
    return steps


def _links(chain: list[Expr], toks: list[Token], text: str) -> list[Step]:
    """The checked links of a chain `e0 = e1 = ...`: those whose left side computes something."""
    out: list[Step] = []
    for a, b in zip(chain, chain[1:]):
        if a.ops == 0 or isinstance(a.value, Lin) or isinstance(b.value, Lin):
            continue  # "1 hour = 60 minutes", "Darcy's age = 2*8": a statement or a label, not a calculation
        lefts = [v for v in (a.value, a.alt) if v is not None]
        stated = _bare(b)
        if stated is not None and b.value is not None:  # "a op b = c"
            after = toks[b.end] if b.end < len(toks) else None
            in_cents = after is not None and after.kind == "word" and after.text.lower() in ("cents", "cent")
            cents = in_cents and any(t.text[:1] == "$" for t in a.atoms)
            left_pct = any(t.pct for t in a.atoms)
            whole = any(t.kind == "word" and t.text.lower() in WHOLE_WORDS for t in toks[b.end : b.end + 8])
            ok = any(equal(v, stated, b.value, left_pct, cents, whole) for v in lefts)
            result, pct = b.value, stated.pct
        else:
            # both sides computed: equal, or a sloppy chain carrying the left's result on ("5+3 = 8*2 = 16")
            rights = {v for v in (b.value, b.alt, b.lead) if v is not None}
            ok = any(v in rights for v in lefts)
            result, pct = (b.value if b.value is not None else Fraction(0)), False
        shown = _text(toks, text, a.start, b.end)
        why = (
            "right"
            if ok
            else "division by zero"
            if not lefts
            else f"is {_show(lefts[0])}, not {_show(result)}"
        )
        operands = tuple(t.value for t in (a.atoms + b.atoms) if t.value is not None)
        last = toks[b.end - 1]
        money = stated is not None and stated.text[:1] in "$€£"
        identity = _identity(a, toks) if stated is not None else None
        out.append(
            Step(
                toks[a.end].pos,
                toks[a.start].pos,
                last.pos + len(last.text),
                shown,
                lefts[0] if lefts else None,
                result,
                ok,
                why,
                result,
                pct,
                money,
                operands,
                identity,
            )
        )
    return out


def _annotation_steps(inner: str, pos: int) -> list[Step]:
    """GSM8K's calculator annotation `<<expr=result>>`: the same reading, on the annotation alone."""
    toks = tokens(inner, ranges=False)
    return [
        dataclasses.replace(s, pos=pos, start=pos, end=pos + 1, text=f"<<{inner}>>")
        for s in _text_steps(toks, inner)
    ]


def _show(x: Fraction | None) -> str:
    if x is None:
        return "undefined"
    if x.denominator == 1:
        return str(x.numerator)
    if _round(x, 6, HALF_UP) == x:  # a short decimal
        whole, rest = divmod(abs(x.numerator) * 10**6 // x.denominator, 10**6)
        return ("-" if x < 0 else "") + f"{whole}.{rest:06d}".rstrip("0")
    return f"{x.numerator}/{x.denominator}"


# ----------------------------------------------------------------------------- equations in one variable

_GLUED = re.compile(r"([$€£]?)(\d*\.?\d+)([A-Za-z])")


def _algebra_tokens(toks: list[Token]) -> list[Token]:
    """The tokens with variables made readable: `2x` -> 2 * x, `(3/4)e` -> (3/4) * e, a lone letter (or `x`
    where it is no multiplication sign) -> a variable."""
    out: list[Token] = []
    for i, t in enumerate(toks):
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        glued = _GLUED.fullmatch(t.text) if t.kind == "bar" else None
        if glued and len(glued[2]) <= MAX_DIGITS:
            number = glued[1] + glued[2]
            out += [
                Token("num", number, t.pos, Fraction(glued[2]), places=len(glued[2].partition(".")[2])),
                Token("op", "*", t.pos + len(number)),
                Token("var", glued[3].lower(), t.pos + len(number)),
            ]
        elif (t.kind == "bar" and len(t.text) == 1 and t.text.isalpha()) or (
            t.kind == "word"
            and t.text in ("x", "X")
            and not (out and out[-1].kind in ("num", "rp") and nxt is not None and nxt.kind in ("num", "lp"))
        ):
            if out and out[-1].kind == "rp":
                out.append(Token("op", "*", t.pos))  # (3/4)e
            out.append(Token("var", t.text.lower(), t.pos))
        else:
            out.append(t)
    return out


@dataclass(frozen=True)
class _Equation:
    start: int
    pos: int
    end: int
    text: str
    letter: str
    left: Lin
    right: Lin
    operands: tuple[Fraction, ...]


def _equations(chain: list[Expr], toks: list[Token], text: str) -> list[_Equation]:
    out = []
    for a, b in zip(chain, chain[1:]):
        if not (isinstance(a.value, Lin) or isinstance(b.value, Lin)) or a.value is None or b.value is None:
            continue
        letters = {t.text for t in toks[a.start : b.end] if t.kind == "var"}
        if len(letters) != 1:
            continue  # two unknowns: not one equation's solution
        last = toks[b.end - 1]
        numbers = tuple(t.value for t in a.atoms + b.atoms if t.value is not None)
        out.append(
            _Equation(
                toks[a.start].pos,
                toks[a.end].pos,
                last.pos + len(last.text),
                _text(toks, text, a.start, b.end),
                letters.pop(),
                Lin.of(a.value),
                Lin.of(b.value),
                numbers,
            )
        )
    return out


def _algebra_steps(toks: list[Token], text: str) -> list[Step]:
    """Equations in one variable, each read against the last set-up in that variable (an equation that models
    the problem, not a step): one with the same solution is a step that ends on the variable's value (`4 * x +
    600 = 10000`, then `4 * x = 9400`, then `x = 2350`). One with another solution starts a new set-up:
    solutions reuse a letter, convert units and restate, and an equation misread is not an error of the
    solution's. So algebra can show how an answer was reached, never fail a solution by itself."""
    steps: list[Step] = []
    setups: dict[str, tuple[_Equation, Fraction]] = {}
    for e in _text_steps(toks, text, _equations):
        a, b = e.left.a - e.right.a, e.right.b - e.left.b  # a * v = b
        if a == 0:
            continue  # an identity ("x + x = 2x") or a contradiction: no value of the variable
        solution = b / a
        if e.letter in setups and setups[e.letter][1] == solution:
            setup = setups[e.letter][0]
            steps.append(
                Step(
                    e.pos,
                    setup.start,
                    e.end,
                    e.text,
                    solution,
                    solution,
                    True,
                    "right",
                    solution,
                    False,
                    False,
                    setup.operands,
                    None,
                    algebra=True,
                )
            )
        else:
            setups[e.letter] = (e, solution)
    return steps


def stated_steps(text: str) -> list[Step]:
    """Every calculation the text states, in the order written, each recomputed exactly; a prose equation and
    its annotation once."""
    return _steps(text)[0]


def _steps(text: str) -> tuple[list[Step], list[Token]]:
    annotations: list[str] = []
    normal = _normalise(text, annotations)
    toks = tokens(normal)
    found: list[Step] = []
    for t in toks:
        if t.kind == "ann":
            found += _annotation_steps(annotations[int(t.text)], t.pos)
    words = [t for t in toks if t.kind != "ann"]
    found += _text_steps(words, normal)
    algebra = _algebra_tokens(words)
    if any(t.kind == "var" for t in algebra):
        found += _algebra_steps(algebra, normal)
    found.sort(key=lambda s: s.pos)
    out, seen = [], set()
    for s in found:
        key = (s.left, s.right, tuple(sorted(s.operands)), s.text if s.algebra else "")
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out, words


def states(result: Fraction, pct: bool, money: bool, answer: Fraction, places: int) -> bool:
    """Whether a final answer (`places` decimals as written) states a step's result: the same value, rounded
    to its places or to a whole number, or a share or an amount of dollars that is not whole given as its
    percentage figure or in cents (0.25 -> 25)."""
    if result == answer:
        return True
    figures = [result] + ([result * 100] if pct or money or result.denominator != 1 else [])
    return any(_matches(f, answer, places, whole=True) for f in figures)  # "4.8 bags, so 5 bags"


NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
    "thousand": 1000,
    "million": 10**6,
    "dozen": 12,
    "twice": 2,
    "double": 2,
    "triple": 3,
    "thrice": 3,
    "half": 2,
    "third": 3,
    "quarter": 4,
}


def given(question: str) -> set[Fraction]:
    """The numbers a question states, as numerals (and their percentage figures) or number words."""
    out: set[Fraction] = set()
    for t in tokens(_normalise(question, [])):
        if t.kind == "num" and t.value is not None:
            out |= {t.value, t.value * 100} if t.pct else {t.value}
        elif t.kind == "word" and t.text.lower() in NUMBER_WORDS:
            n = Fraction(NUMBER_WORDS[t.text.lower()])
            out |= {n, 1 / n} if t.text.lower() in ("half", "third", "quarter") else {n}
    return out


def _solved(toks: list[Token], value: Fraction, places: int) -> bool:
    """Algebra: a variable that stands in an equation with an operator (`6*t=48`, `$70x+$10=$500`) is said to
    equal (or bound) the answer (`t=5`, `x >= 94`)."""

    def letter(t: Token) -> str | None:
        if t.kind == "word" and t.text in ("x", "X"):
            return "x"
        m = re.fullmatch(r"[$€£]?[\d.]*([A-Za-z])", t.text) if t.kind == "bar" else None
        return m[1].lower() if m else None

    in_equations: set[str] = set()
    for lo, hi in _clauses(toks):
        kinds = {t.kind for t in toks[lo:hi]}
        if "eq" in kinds and "op" in kinds:
            in_equations |= {c for t in toks[lo:hi] if (c := letter(t))}
    for i, t in enumerate(toks):
        if letter(t) not in in_equations or letter(t) is None:
            continue
        j = i + 1
        while j < len(toks) and toks[j].kind == "brk" and toks[j].text in "<>≤≥":
            j += 1
        said = toks[j + 1] if j + 1 < len(toks) else None
        if (
            said is not None
            and toks[j].kind == "eq"
            and said.kind == "num"
            and said.value is not None
            and states(said.value, said.pct, False, value, places)
        ):
            return True
        said = toks[i - 2] if i >= 2 else None
        ends = i + 1 == len(toks) or toks[i + 1].kind in ("brk", "word")
        if (
            said is not None
            and toks[i - 1].kind == "eq"
            and said.kind == "num"
            and said.value is not None
            and ends
            and states(said.value, said.pct, False, value, places)
        ):
            return True  # "6 = x"
    return False


_FINAL = re.compile(r"####|\\boxed|\\fbox|\banswer\s*(?:is\b|:)|\bfinal answer\b", re.IGNORECASE)


def body(text: str) -> str:
    """The text before its final-answer statement (the last `####`, box or "the answer is")."""
    marks = [m.start() for m in _FINAL.finditer(text)]
    return text[: marks[-1]] if marks else text


@dataclass(frozen=True)
class Check:
    steps: tuple[Step, ...]
    follows: bool | None  # None: no answer to check
    why: str

    @property
    def flags(self) -> tuple[bool, ...]:
        """One entry per step, then one for the final answer following from the steps."""
        return tuple(s.ok for s in self.steps) + (bool(self.follows),)


def check(text: str, answer: str | None, question: str = "") -> Check:
    """The steps of `text` before its final answer, and whether `answer` (the final answer as written) follows
    from them:

    - it is what the last step ends on;
    - or it is the result of an earlier step, named again after the last (a choice among results: "so $50,
      because 50 < 52");
    - or the solution sets up an equation in a variable and states the variable's value (`6*t = 48 - 18 = 30`,
      then `t = 5`).

    The step that reaches the answer must be grounded: use a number of the `question`, one the solution wrote
    before it (0 and 1 aside) or the result of an earlier grounded step, so true arithmetic on numbers made up
    on the spot derives nothing. A step that changes nothing (x * 1, x + 0) derives its result only from a
    number of the question or of an earlier step: restating the answer is not a derivation.
    """
    steps, toks = _steps(body(text))
    if not steps:
        return Check((), False, "no checkable step")
    read = _number(answer.strip().lstrip("$€£").rstrip("%").strip()) if answer else None
    if read is None:
        return Check(tuple(steps), None, "no final answer")
    value, places = read
    known = given(question)

    def reaches(s: Step) -> bool:
        return states(s.result, s.result_pct, s.result_money, value, places)

    def computed(x: Fraction, s: Step) -> bool:
        return any(t.pos < s.pos and t.result == x for t in steps)

    # a step that does nothing derives its result where the number it keeps, or its 1 or 0, came from
    # somewhere
    # a step is grounded when it uses a number of the question, one the solution wrote before it (0 and 1
    # aside)
    # or the result of an earlier grounded step: arithmetic on numbers made up on the spot ("1 + 41 = 42")
    # derives
    # nothing
    grounded: list[Step] = []
    for s in steps:
        written = {t.value for t in toks if t.kind == "num" and t.pos < s.start and t.value not in (0, 1)}
        if not question or any(
            x in known or x in written or any(g.result == x for g in grounded) for x in s.operands
        ):
            grounded.append(s)
    derived = [
        s
        for s in grounded
        if reaches(s)
        and (s.identity is None or s.result in known or computed(s.result, s) or computed(s.identity, s))
    ]
    last = steps[-1]
    if derived and reaches(last):
        return Check(tuple(steps), True, "follows from the last step")
    named_again = any(
        t.kind == "num"
        and t.pos >= last.end
        and t.value is not None
        and states(t.value, t.pct, False, value, places)
        for t in toks
    )
    if derived and named_again:
        step = steps.index(derived[-1]) + 1
        return Check(tuple(steps), True, f"a result of step {step}, named after the last step")
    if _solved(toks, value, places):
        return Check(tuple(steps), True, "the value of a variable the steps solve for")
    why = f"the last step ends on {_show(last.result)}, not the final answer {answer}"
    return Check(tuple(steps), False, why + ("" if derived else "; no step derives it"))


# ----------------------------------------------------------------------------- the verifier

MAX_SHOWN = 40  # steps listed in a verdict's details


def verify(problem: Problem, completion: str, *, extractors: Sequence[str] = DEFAULT_EXTRACTORS) -> Verdict:
    """A numeric answer (as `numeric` reads it) and every calculation the solution states, recomputed exactly.

    `steps` holds one entry per stated calculation and a last one for the final answer following from them, so
    a right answer with a wrong step, or with no checkable step, or one the steps do not reach, is lucky
    (`filter.require: steps` rejects it). `details.steps` lists each step as written with its verdict.

    >>> p = Problem("p", "Natalia sold clips to 48 friends in April and half as many in May. How many?", "72")
    >>> v = verify(p, "In May she sold 48/2 = 24 clips. In all 48 + 24 = 72 clips. The answer is 72.")
    >>> v.correct, v.steps, v.lucky
    (True, (True, True, True), False)
    >>> v = verify(p, "In May she sold 48/2 = 26 clips. In all 48 + 24 = 72 clips. The answer is 72.")
    >>> v.correct, v.steps, v.lucky, v.details["steps"][0]
    (True, (False, True, True), True, '48/2 = 26: is 24, not 26')
    >>> verify(p, "The answer is 72.").steps  # nothing checkable: the answer follows from nothing
    (False,)
    """
    verdict = numeric_verify(problem, completion, extractors=extractors)
    if not isinstance(completion, str):
        return dataclasses.replace(verdict, steps=(False,))
    try:
        result = check(completion, verdict.extracted, problem.prompt)
    except Exception as e:  # a verifier never raises on odd input: the steps then count as unchecked
        details = {**(verdict.details or {}), "steps_error": f"{type(e).__name__}: {e}"}
        return dataclasses.replace(verdict, steps=(False,), details=details)
    shown = [f"{s.text[:120]}: {s.why}" for s in result.steps[:MAX_SHOWN]]
    if len(result.steps) > MAX_SHOWN:
        shown.append(f"... {len(result.steps) - MAX_SHOWN} more")
    details = {**(verdict.details or {}), "steps": shown, "answer_follows": result.why}
    return dataclasses.replace(verdict, steps=result.flags, details=details)
