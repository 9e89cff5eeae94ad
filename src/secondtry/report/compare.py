"""Several runs side by side, as the reference report's comparison table, with CIs.

One row per condition: the privileged information it used, rounds trained, the base
accuracy, Δ from the base per round and at the best round, and the tokens generated on
training problems (the budget). Runs whose names differ only by a `-seed<N>` suffix are
seeds of one condition: with one seed a figure's CI is the paired bootstrap over problems
from its round.json; with several it is the t-interval over the seeds' values.

A second table tests each condition against the first one named, paired by problem: the
best rounds' per-problem values of the metric (bootstrap CI of the difference) and an exact
sign test on them: the problems where the condition's value is higher against those where it
is lower (McNemar's test when the metric is right/wrong per problem, as greedy pass@1 is; for
sampled pass@1 a problem's value is its share of right samples). The test follows the metric
the differences are of: a greedy outcome at its ceiling says nothing about sampled pass@1. With
several seeds the differences of seeds run by both are pooled as mean ± t-interval, and the
problems that rose and fell are summed over them (problem × seed pairs taken as independent).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..evaluation.metrics import per_problem
from ..evaluation.stats import across_seeds, mcnemar_counts, paired_delta
from .runs import RunView, cfg_get, load_run
from .tables import markdown_table, p_text, pct, rich_table

SEED_SUFFIX = re.compile(r"-seed\d+$")


def condition_of(run: Path) -> str:
    return SEED_SUFFIX.sub("", run.name)


def _pooled(figures: list[dict[str, Any] | None], delta: bool = False) -> dict[str, Any] | None:
    """One figure over seeds: a rate (or, with `delta`, a difference of rates), its interval cut to the range."""
    present = [f for f in figures if f]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return across_seeds([f["value"] for f in present], bounds=(-1.0, 1.0) if delta else (0.0, 1.0))


Groups = dict[str, list[RunView]]  # condition -> its runs (seeds)


def _groups(runs: list[Path]) -> Groups:
    groups: Groups = {}
    for run in runs:
        groups.setdefault(condition_of(run), []).append(load_run(run))
    return groups


def _count(x: float) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.0f}k" if x >= 1e3 else f"{x:.0f}"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def compare_rows(runs: list[Path]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: condition, privileged information, filter, seeds, rounds trained, base,
    Δ from base per round, the best round's Δ, tokens generated on training problems."""
    return _compare_rows(_groups(runs))


def _compare_rows(groups: Groups) -> tuple[list[str], list[list[str]]]:
    rounds = max(len(r.history) for g in groups.values() for r in g) - 1
    head = ["condition", "privileged information", "filter", "seeds", "rounds trained", "base %"] \
        + [f"round {k} Δ pp" for k in range(1, rounds + 1)] + ["best round Δ pp", "train tokens generated"]
    rows = []
    for name, members in groups.items():
        trained = _mean([m.trained_rounds for m in members])
        rows.append([
            name, members[0].privileged, cfg_get(members[0].cfg, "filter.require", "answer"), str(len(members)),
            f"{trained:g}" if trained == int(trained) else f"{trained:.1f}",
            pct(_pooled([m.at(0, "eval") for m in members])),
            *(pct(_pooled([m.at(k, "delta_from_base") for m in members], True), True) for k in range(1, rounds + 1)),
            pct(_pooled([m.best.figures.get("delta_from_base", {"value": 0.0, "ci": [0.0, 0.0]})
                         for m in members], True), True),
            _count(_mean([m.train_tokens for m in members])),
        ])
    return head, rows


def pairwise_rows(runs: list[Path], n_boot: int | None = None) -> tuple[list[str], list[list[str]]]:
    """Each condition against the first, paired by problem at each run's best round (see module doc).
    `n_boot`: bootstrap resamples; by default the runs' evaluation.bootstrap."""
    return _pairwise_rows(_groups(runs), n_boot)


def _pairwise_rows(groups: Groups, n_boot: int | None = None) -> tuple[list[str], list[list[str]]]:
    names = list(groups)
    head = ["condition", "against", "seeds paired", "Δ best round pp", "problems higher", "problems lower",
            "sign test p"]
    rows = []
    ref = {m.cfg["seed"]: m for m in groups[names[0]]}
    for name in names[1:]:
        pairs = [(ref[m.cfg["seed"]], m) for m in groups[name] if m.cfg["seed"] in ref]
        if not pairs:
            rows.append([name, names[0], "0", "no common seed", "–", "–", "–"])
            continue
        deltas, b, c, why = [], 0, 0, ""
        for a, m in pairs:
            ra, rm = a.best_records(), m.best_records()
            if [r["problem_id"] for r in ra] != [r["problem_id"] for r in rm]:
                why = "different test problems"
                break
            va, vm = per_problem(ra)[a.metric], per_problem(rm)[m.metric]
            deltas.append(paired_delta(va, vm, n_boot or m.cfg["evaluation"]["bootstrap"], m.cfg["seed"]))
            b += sum(x > y for x, y in zip(va, vm))  # lower under this condition
            c += sum(y > x for x, y in zip(va, vm))
        if why:
            rows.append([name, names[0], str(len(pairs)), why, "–", "–", "–"])
            continue
        pooled = mcnemar_counts(b, c)  # the exact sign test: McNemar's, on the problems that changed
        rows.append([name, names[0], str(len(pairs)), pct(_pooled(deltas, True), True), str(c), str(b),
                     p_text(pooled['p_value'])])
    return head, rows


def print_comparison(runs: list[Path], console=None) -> None:
    from rich.console import Console

    console = console or Console()
    groups = _groups(runs)
    console.print(rich_table("conditions compared — Δ of the metric from the base model, [95% CI]",
                             *_compare_rows(groups)))
    head, rows = _pairwise_rows(groups)
    if rows:
        console.print(rich_table("paired by problem, each condition against the first", head, rows))


def comparison_markdown(runs: list[Path]) -> str:
    groups = _groups(runs)
    parts = [markdown_table(*_compare_rows(groups))]
    head, rows = _pairwise_rows(groups)
    if rows:
        parts += ["", "Paired by problem at each run's best round, against the first condition "
                      "(exact sign test on each problem's value of the metric, problems summed over seeds):", "",
                  markdown_table(head, rows)]
    return "\n".join(parts) + "\n"
