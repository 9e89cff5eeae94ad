"""The default math verifier against public model completions and their graders' labels (tests/data).

The completions live outside the repository (third-party data): the test reads them from the folder
`SECONDTRY_LABELLED` names, `tests/data/labelled/`, or `shared/data/verify-labelled/` beside the
repository, and skips when none holds them. The adjudications are here, in tests/data/adjudications.jsonl.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from secondtry.types import Problem
from secondtry.verifiers.math import verify

ROOT = Path(__file__).resolve().parents[2]
ADJUDICATIONS = ROOT / "tests" / "data" / "adjudications.jsonl"
SOURCES = ("gsm8k-gpt3", "math500-skythought")
MIN_AGREEMENT = 0.99


def _folder() -> Path | None:
    candidates = [
        os.environ.get("SECONDTRY_LABELLED"),
        ROOT / "tests" / "data" / "labelled",
        ROOT.parent / "shared" / "data" / "verify-labelled",
    ]
    return next((Path(c) for c in candidates if c and (Path(c) / f"{SOURCES[0]}.jsonl.gz").is_file()), None)


def _rows(source: str) -> list[dict]:
    folder = _folder()
    assert folder is not None
    with gzip.open(folder / f"{source}.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _adjudications() -> dict[str, dict]:
    rows = [json.loads(line) for line in ADJUDICATIONS.read_text().splitlines() if line.strip()]
    return {r["id"]: r for r in rows}


needs_data = pytest.mark.skipif(_folder() is None, reason="no labelled completions (tests/data/SOURCES.md)")


def test_adjudications_are_well_formed() -> None:
    lines = [line for line in ADJUDICATIONS.read_text().splitlines() if line.strip()]
    adjudicated = _adjudications()
    assert len(adjudicated) == len(lines)  # one entry per row
    for r in adjudicated.values():
        assert set(r) == {"id", "source", "source_label", "label", "reason"}, r
        assert r["source"] in SOURCES and isinstance(r["label"], bool) and len(r["reason"]) > 20, r
        assert r["reason"].startswith("kept: ") is (r["label"] == r["source_label"]), r


@needs_data
@pytest.mark.parametrize("source", SOURCES)
def test_agreement_with_graders(source: str) -> None:
    rows = _rows(source)
    adjudicated = {k: v for k, v in _adjudications().items() if v["source"] == source}
    assert len(rows) >= 500 and {r["source"] for r in rows} == {source}
    assert set(adjudicated) <= {r["id"] for r in rows}
    disagree, extractors = [], set()
    for r in rows:
        v = verify(Problem(id=r["id"], prompt=r["prompt"], answer=r["answer"]), r["completion"])
        extractors.add((v.details or {}).get("extractor"))
        label = adjudicated[r["id"]]["label"] if r["id"] in adjudicated else r["label"]
        if v.correct is not label:
            disagree.append((r["id"], r["answer"], v.extracted, v.correct, label))
    kept = {k for k, v in adjudicated.items() if v["label"] == v["source_label"]}
    assert {d[0] for d in disagree} == kept, disagree  # a new disagreement is a regression or an adjudication
    assert 1 - len(disagree) / len(rows) >= MIN_AGREEMENT
    assert len(extractors - {None}) >= 1


@needs_data
def test_the_set_is_what_sources_md_says() -> None:
    rows = {s: _rows(s) for s in SOURCES}
    assert sum(map(len, rows.values())) >= 1000
    labelled_right = {s: sum(r["label"] for r in rs) for s, rs in rows.items()}
    assert labelled_right == {"gsm8k-gpt3": 235, "math500-skythought": 352}
    assert sum("\\boxed" not in r["completion"] for r in rows["math500-skythought"]) == 82
