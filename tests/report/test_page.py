"""The experiment page's written sections: present for the demo, a three-seed preset comparison and a one-seed
tiny-cpu run; every number of their prose read back from the record it names; the Markdown page the same."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from secondtry.cli import app

# the shared runs (tests/conftest.py: report_runs) are made once
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]
SECTIONS = ("prediction", "decay", "amortized", "conclusion", "caveats")
NUMBER = re.compile(r"(?<![\w@.\-/#])[+\-−]?\d+(?:\.\d+)?")
PLAIN_NUMBERS = {"95", "0"}  # "a 95% CI", "includes 0": fixed words of the prose, not figures of the run


class Prose(HTMLParser):
    """The written sections' paragraphs: their plain text, and the figures, quotes and constants in them."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[dict]] = {}
        self.section: str | None = None
        self.paragraph: dict | None = None
        self.inside: list[dict] = []  # open fig / quote / const elements

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and a.get("id", "").endswith("-section"):
            self.section = a["id"].removesuffix("-section")
        elif tag == "p" and a.get("class") in ("prose", "remedy") and self.section:
            self.paragraph = {"kind": a["class"], "plain": "", "text": "", "items": []}
            self.sections.setdefault(self.section, []).append(self.paragraph)
        elif self.paragraph is not None and a.get("class") in ("fig", "quote", "const"):
            item = {"kind": a["class"], "text": "", **a}
            self.paragraph["items"].append(item)
            self.inside.append(item)

    def handle_endtag(self, tag):
        if tag in ("a", "span", "q") and self.inside:
            self.inside.pop()
        elif tag == "p":
            self.paragraph = None
        elif tag == "section":
            self.section = None

    def handle_data(self, data):
        if self.paragraph is None:
            return
        self.paragraph["text"] += data
        if self.inside:
            self.inside[-1]["text"] += data
        else:
            self.paragraph["plain"] += data


def record(run: Path, src: str):
    file, key = src.split("#", 1)
    path = run / file
    data = yaml.safe_load(path.read_text()) if path.suffix == ".yaml" else json.loads(path.read_text())
    for part in key.split("."):
        data = data[part]
    return data


def check_figure(run: Path, item: dict) -> None:
    value = record(run, item["data-src"])
    scale, digits = float(item["data-scale"]), int(item["data-digits"])
    printed = [float(x.replace("−", "-")) for x in NUMBER.findall(item["text"])]
    want = [value] if not isinstance(value, dict) else [value["value"], *value["ci"]]
    assert len(printed) == len(want), (item, value)
    for got, v in zip(printed, want):
        assert got == pytest.approx(round(v * scale, digits), abs=10**-digits / 2 + 1e-9), (
            item["data-src"],
            got,
            v,
        )


def check_page(run: Path, expect: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, ["report", str(run), "--markdown"])
    assert result.exit_code == 0, result.output
    parser = Prose()
    parser.feed((run / "report" / "index.html").read_text())
    for name in expect:
        assert parser.sections.get(name), f"{run.name}: no {name} section"
    figures = 0
    markdown = (run / "report" / "page.md").read_text()
    for name, paragraphs in parser.sections.items():
        for p in paragraphs:
            assert " ".join(p["text"].split()) in " ".join(markdown.split()), (
                name,
                p["text"],
            )  # the same page
            if p["kind"] == "remedy":
                continue
            stray = [n for n in NUMBER.findall(p["plain"]) if n not in PLAIN_NUMBERS]
            assert not stray, f"{run.name} {name}: numbers not read from a record: {stray} in {p['text']!r}"
            for item in p["items"]:
                if item["kind"] == "fig":
                    check_figure(run, item)
                    figures += 1
                elif item["kind"] == "quote":
                    assert record(run, item["data-src"]) == item["text"]
                else:
                    module, constant = item["data-name"].rsplit(".", 1)
                    value = getattr(__import__(module, fromlist=[constant]), constant)
                    assert item["text"] in (str(value), f"{value:.0%}")
    assert figures >= 10, f"{run.name}: only {figures} figures in the prose"


def test_the_demo_page_has_every_section_and_every_figure_from_its_records(report_runs):
    run = report_runs / "demo" / "demo"
    check_page(run, SECTIONS)
    page = (run / "report" / "page.md").read_text()
    assert (
        "Predicted: a gain of at least +1.0 pp" in page
        and "Predicted: the best number of rounds is 2" in page
    )
    assert "The retries teach the tiny model something within two rounds." in page


def test_a_three_seed_comparison_page_compares_its_condition_with_the_others(report_runs):
    run = report_runs / "compare" / "tiny-cpu-resampling-seed43"
    check_page(run, SECTIONS + ("related",))
    page = (run / "report" / "page.md").read_text()
    assert "tiny-cpu-star-try-again" in page and "paired t-test on the per-seed differences" in page
    assert "One seed" not in page  # three seeds of this condition sit beside it


def test_a_one_seed_tiny_run_page_says_what_one_seed_cannot_show(report_runs):
    run = report_runs / "tiny" / "tiny-cpu"
    check_page(run, SECTIONS)
    page = (run / "report" / "page.md").read_text()
    assert "One seed." in page and "Chosen on the test set." in page and "LoRA only." in page
