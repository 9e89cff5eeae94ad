r"""Named answer extractors: text -> the final answer it states, or None when its marker is absent.

A verifier takes an ordered list of names (`verifier.options.extractors`); the first extractor
whose marker is present decides, even if what it finds is empty (an empty box is an empty
answer, not a reason to look elsewhere). `regex:PATTERN` is an extractor too: the last match,
its first group if it has one. `secondtry verify FILE --extractor A --extractor B --each`
scores every extractor on its own, as lm-eval reports strict-match and flexible-extract.
`CHAIN` is the order the math verifier tries by default: from the most explicit marker to
math-verify's own reading of the whole text.

>>> extract("So $x = 3$, and the answer is $\\boxed{3}$.", ["boxed", "answer_is"])
('3', 'boxed')
>>> extract("The final answer is 7. I hope it is correct.", ["boxed", "answer_is"])
('7', 'answer_is')
>>> extract("Total: 12 apples, 3 pears", ["last_number"])
('3', 'last_number')
>>> extract("ANSWER: (B)", [r"regex:ANSWER:\s*\((\w)\)"])
('B', 'regex:ANSWER:\\s*\\((\\w)\\)')
>>> extract("Adding up.\n\n# Answer\n\n468", CHAIN)
('468', 'answer_header')
>>> extract("so the total is 12 apples.", CHAIN)
('12', 'last_math')
>>> extract("nothing here", ["boxed"])
(None, None)
>>> spelled_number("Twenty-one"), spelled_number("a half"), spelled_number("minus three"), spelled_number("x")
('21', '1/2', '-3', None)
"""

from __future__ import annotations

import collections
import functools
import re
import threading
from collections.abc import Callable, Iterator, Sequence

from secondtry.tasks.math import last_boxed

Extractor = Callable[[str], "str | None"]

_ANSWER_IS = re.compile(r"\banswer\s*(?:is\b\s*:?|:)", re.IGNORECASE)
_DELIMS = (("$$", "$$"), ("$", "$"), (r"\(", r"\)"), (r"\[", r"\]"))
_MINERVA = re.compile(r"Final Answer: The final answer is (.*?)\. I hope it is correct\.", re.DOTALL)
_NUMBER = re.compile(r"-?[\d,]*\.?\d+")
_INLINE_MATH = re.compile(r"\$\$(.+?)\$\$|(?<!\\)\$(.+?)(?<!\\)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_OPENING = re.compile(r"(?<!\\)\$|\\[(\[]")
_BARE_NUMBER = re.compile(r"(?<![\w.^_{\[\\])-?\d+(?:,\d{3})*(?:\.\d+)?(?:\s*/\s*\d+)?(?![\w])")
# a heading that introduces the answer: "# Answer", "**Final Answer**", "Final Answer:", "Answer: 12"
_HEADER = re.compile(
    r"^[ \t>#*_]*(?:the\s+)?(?:final\s+)?answer\b[ \t*_]*(?::[ \t*_]*(?P<rest>.*?))?[ \t*_.]*$",
    re.IGNORECASE | re.MULTILINE,
)
_LAST_LINE_A = re.compile(r"^\s*A:\s*(\S.*?)\s*$")  # GSM8K's "A: 18" as the completion's last line
_WHOLE_TEXT_TAIL = 1500  # math-verify reads a text's end: the answer is there, and it bounds the cost
_UNITS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen".split()
    )
}
_TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}
_FRACTIONS = {
    "half": "1/2",
    "halves": "1/2",
    "third": "1/3",
    "thirds": "1/3",
    "quarter": "1/4",
    "quarters": "1/4",
    "fourth": "1/4",
    "fourths": "1/4",
}
_WORD_NUMBER = re.compile(
    r"(?P<sign>(?:negative|minus)\s+)?(?:(?P<a>an?)\s+(?P<frac1>half|third|quarter|fourth)"
    rf"|(?P<tens>{'|'.join(_TENS)})(?:[\s-]+(?P<unit1>{'|'.join(list(_UNITS)[1:10])}))?"
    rf"|(?P<unit>{'|'.join(sorted(_UNITS, key=len, reverse=True))}))\b"
    r"(?:\s+(?P<frac2>halves|half|thirds|third|quarters|quarter|fourths|fourth)\b)?",
    re.IGNORECASE,
)
_NOT_A_UNIT = {"or", "and", "to", "of", "plus", "minus", "times", *_UNITS, *_TENS}  # "five or six": no answer


def boxed(text: str) -> str | None:
    r"""The content of the last complete ``\boxed{}`` (or ``\fbox{}``)."""
    return last_boxed(text)


def answer_is(text: str) -> str | None:
    """X from the last 'final answer is X' / 'The answer is X' / 'Answer: X' (to the sentence end)."""
    matches = list(_ANSWER_IS.finditer(text))
    if not matches:
        return None
    return _clean(text[matches[-1].end() :])


def _unescaped(text: str, delim: str, start: int) -> int:
    r"""Index of the first `delim` at or after `start` not escaped by a backslash (`\$18` is a dollar)."""
    at = text.find(delim, start)
    while at > 0 and delim == "$" and text[at - 1] == "\\":
        at = text.find(delim, at + 1)
    return at


def spelled_number(text: str) -> str | None:
    """The number a short answer spells out ("five", "twenty-one", "a half", "two thirds") in digits, or None.

    Zero to nineteen, the tens and their compounds, halves, thirds and quarters; up to two words may
    follow ("five apples", "seven square units"). Anything longer is a sentence, not a spelled answer.
    """
    words = text.strip().strip("$*.,;:!").strip()
    m = _WORD_NUMBER.match(words)
    after = words[m.end() :].lower().replace("-", " ").split() if m else []
    if not m or len(after) > 2 or _NOT_A_UNIT & set(after) or re.search(r"\d", words):
        return None
    if m["a"]:
        value = _FRACTIONS[m["frac1"].lower()]
    else:
        n = (
            _TENS[m["tens"].lower()] + _UNITS.get((m["unit1"] or "zero").lower(), 0)
            if m["tens"]
            else _UNITS[m["unit"].lower()]
        )
        if m["frac2"]:
            value = f"{n}/{_FRACTIONS[m['frac2'].lower()].split('/')[1]}"
        else:
            value = str(n)
    return ("-" if m["sign"] else "") + value


def _last(matches: Iterator[re.Match[str]]) -> re.Match[str] | None:
    """The last of the matches, or None; the earlier ones are not kept."""
    tail = collections.deque(matches, maxlen=1)
    return tail[0] if tail else None


def _clean(rest: str) -> str:
    """The answer at the start of `rest`: a whole math segment, else the text up to the sentence end."""
    rest = rest.replace("**", "").strip()
    for open_, close in _DELIMS:
        if rest.startswith(open_):
            end = _unescaped(rest, close, len(open_))
            if end > 0:
                return rest[len(open_) : end].strip()
            rest = rest[len(open_) :]
            break
    rest = rest.split("\n", 1)[0]
    rest = re.split(r"\.(?:\s|$)", rest, maxsplit=1)[0]  # sentence end, not a decimal point
    return rest.strip().rstrip(".,;").strip("$ ")


def answer_header(text: str) -> str | None:
    """The answer under the last heading that introduces it ('# Answer', 'Final Answer:', a last-line 'A:').

    '# Answer' or '**Final Answer**' alone on its line: the next line; 'Final Answer: X' or GSM8K's
    'A: X' as the completion's last line: X.
    """
    last = text.rstrip().rsplit("\n", 1)[-1]
    if m := _LAST_LINE_A.match(last):
        return _clean(m.group(1))
    if "nswer" not in text and "NSWER" not in text:  # cheap reject before the multiline scan
        return None
    found = _last(_HEADER.finditer(text))
    if found is None:
        return None
    if found["rest"]:
        return _clean(found["rest"])
    after = text[found.end() :].strip()
    return _clean(after) if after else None


def minerva(text: str) -> str | None:
    """Minerva's strict format: 'Final Answer: The final answer is X. I hope it is correct.'"""
    found = _MINERVA.findall(text)
    return found[-1].strip().strip("$").strip() if found else None


def hashes(text: str) -> str | None:
    """GSM8K's '#### X': the rest of the line after the last '####'."""
    if "####" not in text:
        return None
    return text.rsplit("####", 1)[1].strip().split("\n", 1)[0].strip()


def last_number(text: str) -> str | None:
    """The last number in the text (GSM8K's flexible-extract)."""
    found = _NUMBER.findall(text)
    return found[-1].rstrip(",") if found else None


def last_math(text: str) -> str | None:
    r"""The last math expression: the last inline math segment, or a bare number written after it.

    Segments are $…$, \(…\), $$…$$ and \[…\]; "so the total is 12 apples." reads 12. A segment the
    text never closes (a cut-off completion) holds no answer.
    """
    segment = _last(_INLINE_MATH.finditer(text))
    start = segment.end() if segment else 0
    opened = _OPENING.search(text, start)  # a segment that never closes (a cut-off text): no answer in it
    number = _last(_BARE_NUMBER.finditer(text, start, opened.start() if opened else len(text)))
    if number is not None:
        return number.group(0)
    if segment is None:
        return None
    return next(g for g in segment.groups() if g).strip()


def math_verify(text: str) -> str | None:
    """What math-verify's own extraction reads in the text's last 1,500 characters: the last resort.

    Its 'final answer is' anchors first, then the last LaTeX or plain expression; the LaTeX or
    expression it matched is returned. Only the first candidate is tried, for a second at most: this
    is reached by texts with no number and no math segment, and hostile ones must not hold a
    verifier worker up.
    """
    from math_verify import parse  # lazy: ~1 s of sympy/antlr imports
    from math_verify.errors import TimeoutException

    tail = text[-_WHOLE_TEXT_TAIL:]
    main = threading.current_thread() is threading.main_thread()
    timeout_s = 1 if main else None  # math-verify's timeouts use SIGALRM: the main thread only
    try:
        found = parse(tail, extraction_mode="first_match", parsing_timeout=timeout_s)  # type: ignore[arg-type]
    except (Exception, TimeoutException):  # odd text is no answer, not a crash
        return None
    if len(found) < 2 or not isinstance(found[-1], str):  # nothing matched, or what matched does not parse
        return None
    return found[-1].strip() or None


EXTRACTORS: dict[str, Extractor] = {
    "boxed": boxed,
    "answer_is": answer_is,
    "answer_header": answer_header,
    "minerva": minerva,
    "hashes": hashes,
    "last_number": last_number,
    "last_math": last_math,
    "math_verify": math_verify,
}
CHAIN = ("boxed", "answer_is", "answer_header", "last_math", "math_verify")


@functools.lru_cache(maxsize=64)
def _regex(pattern: str) -> Extractor:
    rx = re.compile(pattern, re.DOTALL)

    def find(text: str) -> str | None:
        found = list(rx.finditer(text))
        if not found:
            return None
        m = found[-1]
        return (m.group(1) if rx.groups else m.group(0)).strip()

    return find


def get(name: str) -> Extractor:
    """The extractor called `name` (a key of EXTRACTORS, or `regex:PATTERN`); ValueError if unknown."""
    if name.startswith("regex:"):
        try:
            return _regex(name[len("regex:") :])
        except re.error as e:
            raise ValueError(f"extractor {name!r}: bad regular expression ({e})") from None
    if name not in EXTRACTORS:
        raise ValueError(f"unknown extractor {name!r}; valid: {', '.join(EXTRACTORS)}, or regex:PATTERN")
    return EXTRACTORS[name]


def extract(text: str, names: Sequence[str]) -> tuple[str | None, str | None]:
    """(answer, name of the extractor that found it): the first extractor whose marker is present."""
    for name in names:
        found = get(name)(text)
        if found is not None:
            return found, name
    return None, None
