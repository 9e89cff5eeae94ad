r"""Named answer extractors: text -> the final answer it states, or None when its marker is absent.

A verifier takes an ordered list of names (`verifier.options.extractors`); the first extractor
whose marker is present decides, even if what it finds is empty (an empty box is an empty
answer, not a reason to look elsewhere). `regex:PATTERN` is an extractor too: the last match,
its first group if it has one. `secondtry verify FILE --extractor A --extractor B --each`
scores every extractor on its own, as lm-eval reports strict-match and flexible-extract.

>>> extract("So $x = 3$, and the answer is $\\boxed{3}$.", ["boxed", "answer_is"])
('3', 'boxed')
>>> extract("The final answer is 7. I hope it is correct.", ["boxed", "answer_is"])
('7', 'answer_is')
>>> extract("Total: 12 apples, 3 pears", ["last_number"])
('3', 'last_number')
>>> extract("ANSWER: (B)", [r"regex:ANSWER:\s*\((\w)\)"])
('B', 'regex:ANSWER:\\s*\\((\\w)\\)')
>>> extract("nothing here", ["boxed"])
(None, None)
"""

from __future__ import annotations

import functools
import re
from typing import Callable, Sequence

from secondtry.tasks.math import last_boxed

Extractor = Callable[[str], "str | None"]

_ANSWER_IS = re.compile(r"\banswer\s*(?:is\b\s*:?|:)", re.IGNORECASE)
_DELIMS = (("$$", "$$"), ("$", "$"), (r"\(", r"\)"), (r"\[", r"\]"))
_MINERVA = re.compile(r"Final Answer: The final answer is (.*?)\. I hope it is correct\.", re.DOTALL)
_NUMBER = re.compile(r"-?[\d,]*\.?\d+")
_INLINE_MATH = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)


def boxed(text: str) -> str | None:
    r"""The content of the last complete ``\boxed{}`` (or ``\fbox{}``)."""
    return last_boxed(text)


def answer_is(text: str) -> str | None:
    """X from the last 'final answer is X' / 'The answer is X' / 'Answer: X' (to the sentence end)."""
    matches = list(_ANSWER_IS.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end() :].replace("**", "").strip()
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


def _unescaped(text: str, delim: str, start: int) -> int:
    r"""Index of the first `delim` at or after `start` not escaped by a backslash (`\$18` is a dollar sign)."""
    at = text.find(delim, start)
    while at > 0 and delim == "$" and text[at - 1] == "\\":
        at = text.find(delim, at + 1)
    return at


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
    r"""The content of the last inline math segment ($…$, \(…\), $$…$$, \[…\])."""
    found = _INLINE_MATH.findall(text)
    if not found:
        return None
    return next(g for g in found[-1] if g).strip()


EXTRACTORS: dict[str, Extractor] = {
    "boxed": boxed,
    "answer_is": answer_is,
    "minerva": minerva,
    "hashes": hashes,
    "last_number": last_number,
    "last_math": last_math,
}


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
