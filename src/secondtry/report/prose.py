"""Prose written from a run's records: every number in it carries the record it comes from.

A paragraph is a list of pieces: plain text (no figures of the run in it), a `Fig` (a number read from a
record: the file of the run directory, the dotted key into it, and how it was printed), a `Quote` (a record's
own text, such as a stopping decision's reason) or a `Const` (a threshold of a rule, named). The experiment
page renders them as HTML and as Markdown from the same pieces, so both show the same figures, and a test
reads each back from its record.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from ..records import RoundResult
from .tables import pct


@dataclass(frozen=True)
class Fig:
    """A number: its `text` is `scale` × the record's value (for a figure with a CI: value, low, high) to `digits`
    decimals; `anchor` names the section of the page whose table holds it."""

    text: str
    file: str
    key: str
    scale: float = 100.0
    digits: int = 1
    anchor: str = ""


@dataclass(frozen=True)
class Quote:
    """A record's own text, verbatim."""

    text: str
    file: str
    key: str


@dataclass(frozen=True)
class Const:
    """A rule's threshold (not a figure of the run): `name` is where it is defined."""

    text: str
    name: str


Piece = str | Fig | Quote | Const


@dataclass
class Paragraph:
    pieces: list[Piece]
    kind: str = "prose"  # "prose": about the run; "remedy": advice (holds no figures of the run)


@dataclass
class Section:
    ident: str
    title: str
    paragraphs: list[Paragraph] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)  # (title, head, rows)

    def add(self, *pieces: Piece, kind: str = "prose") -> None:
        self.paragraphs.append(Paragraph(list(pieces), kind))


# ----------------------------------------------------------------------------- figures of a round


def round_file(k: int) -> str:
    return f"round_{k}/round.json"


def at(data: Any, key: str) -> Any:
    """The value at a dotted key path (None where a step is missing)."""
    for part in key.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def rate(r: RoundResult, key: str, anchor: str = "rounds") -> Fig:
    """A rate of round r (figures.`key`), in percent with its CI."""
    return Fig(pct(at(r.figures.raw, key)), round_file(r.round), f"figures.{key}", anchor=anchor)


def delta(r: RoundResult, key: str, anchor: str = "rounds") -> Fig:
    """A change of a rate (figures.`key`), in signed percentage points with its CI."""
    return Fig(pct(at(r.figures.raw, key), True), round_file(r.round), f"figures.{key}", anchor=anchor)


def count(r: RoundResult, key: str, anchor: str = "decay") -> Fig:
    return Fig(
        str(at(r.figures.raw, key)), round_file(r.round), f"figures.{key}", scale=1.0, digits=0, anchor=anchor
    )


def share(r: RoundResult, key: str, anchor: str = "decay") -> Fig:
    """A share printed as a whole percent: 41%."""
    return Fig(
        f"{at(r.figures.raw, key):.0%}", round_file(r.round), f"figures.{key}", digits=0, anchor=anchor
    )


def ratio(r: RoundResult, key: str, percent: bool = False, anchor: str = "rounds") -> Fig:
    """A ratio with its CI: 0.62 [0.55, 0.69], or as whole percents."""
    fig = at(r.figures.raw, key)
    fmt = (lambda x: f"{x:.0%}") if percent else (lambda x: f"{x:.2f}")
    return Fig(
        f"{fmt(fig['value'])} [{fmt(fig['ci'][0])}, {fmt(fig['ci'][1])}]",
        round_file(r.round),
        f"figures.{key}",
        scale=100.0 if percent else 1.0,
        digits=0 if percent else 2,
        anchor=anchor,
    )


def round_no(k: int) -> Fig:
    return Fig(str(k), round_file(k), "round", scale=1.0, digits=0, anchor="rounds")


def round_name(k: int) -> list[Piece]:
    """ "base", or "round " and the round's number as a figure."""
    return ["base"] if k == 0 else ["round ", round_no(k)]


# ----------------------------------------------------------------------------- rendering


def markdown(pieces: list[Piece]) -> str:
    return "".join(p if isinstance(p, str) else p.text for p in pieces)


def html_pieces(pieces: list[Piece]) -> str:
    out = []
    for p in pieces:
        if isinstance(p, Fig):
            src = html.escape(f"{p.file}#{p.key}", quote=True)
            text = html.escape(p.text)
            out.append(
                f'<a class="fig" href="#{html.escape(p.anchor)}-section" data-src="{src}" '
                f'data-scale="{p.scale:g}" data-digits="{p.digits}">{text}</a>'
                if p.anchor
                else f'<span class="fig" data-src="{src}" data-scale="{p.scale:g}" data-digits="{p.digits}">'
                f"{text}</span>"
            )
        elif isinstance(p, Quote):
            out.append(
                f'<q class="quote" data-src="{html.escape(f"{p.file}#{p.key}", quote=True)}">'
                f"{html.escape(p.text)}</q>"
            )
        elif isinstance(p, Const):
            out.append(
                f'<span class="const" data-name="{html.escape(p.name, quote=True)}">{html.escape(p.text)}</span>'
            )
        else:
            out.append(html.escape(p))
    return "".join(out)
