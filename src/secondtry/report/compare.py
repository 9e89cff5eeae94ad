"""Several runs side by side: one row per condition, seeds pooled as mean ± 95% CI.

Runs whose names differ only by a `-seed<N>` suffix are seeds of one condition. With one
seed, a figure's CI is the paired bootstrap over problems from its round.json; with several,
it is the t-interval over the seeds' values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..evaluation.stats import across_seeds
from ..loop import load_history
from ..types import RoundResult
from .tables import markdown_table, pct, rich_table

SEED_SUFFIX = re.compile(r"-seed\d+$")


def condition_of(run: Path) -> str:
    return SEED_SUFFIX.sub("", run.name)


def _pooled(figures: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    present = [f for f in figures if f]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return across_seeds([f["value"] for f in present])


def compare_rows(runs: list[Path]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: condition, filter, seeds, base, Δ from base per round, best round's Δ."""
    groups: dict[str, list[tuple[Path, list[RoundResult], dict[str, Any]]]] = {}
    for run in runs:
        cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
        groups.setdefault(condition_of(run), []).append((run, load_history(run), cfg))
    rounds = max(len(h) for g in groups.values() for _, h, _ in g) - 1
    head = ["condition", "filter", "seeds", "base %"] + [f"round {k} Δ pp" for k in range(1, rounds + 1)] \
        + ["best round Δ pp"]
    rows = []
    for name, members in groups.items():
        metric = members[0][2]["evaluation"]["metric"]

        def at(h: list[RoundResult], k: int, key: str) -> dict[str, Any] | None:
            if k >= len(h) or "eval" not in h[k].figures:
                return None
            return h[k].figures["eval"][metric] if key == "eval" else h[k].figures.get(key)

        best = [max((r for r in h if "eval" in r.figures), key=lambda r: r.figures["eval"][metric]["value"])
                for _, h, _ in members]
        rows.append([
            name, members[0][2]["filter"]["require"], str(len(members)),
            pct(_pooled([at(h, 0, "eval") for _, h, _ in members])),
            *(pct(_pooled([at(h, k, "delta_from_base") for _, h, _ in members]), True)
              for k in range(1, rounds + 1)),
            pct(_pooled([b.figures.get("delta_from_base", {"value": 0.0, "ci": [0.0, 0.0]}) for b in best]), True),
        ])
    return head, rows


def print_comparison(runs: list[Path], console=None) -> None:
    from rich.console import Console

    head, rows = compare_rows(runs)
    (console or Console()).print(rich_table("conditions compared — Δ of the metric from the base model, [95% CI]",
                                            head, rows))


def comparison_markdown(runs: list[Path]) -> str:
    return markdown_table(*compare_rows(runs)) + "\n"
