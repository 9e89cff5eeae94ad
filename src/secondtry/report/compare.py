"""Several conditions side by side, as the reference report's comparison table, with seed-level statistics.

Runs whose names differ only by a `-seed<N>` suffix are seeds of one condition. Each run is read at
one round, the same rule for every run (`Point`): its reported round (summary.json's, chosen on the
validation split, or the last round, or on the test set — then marked optimistic), a named round,
or the last round within a budget of generated tokens (so conditions are compared at equal cost).

The unit of replication is the seed: a training run is one draw of the data order, the samples and
the initial adapter, and the problems of three runs are not three times the evidence of one. So:

- a condition's gain (and anything else pooled over its seeds) is the mean over seeds with a
  t-interval; with one seed it is that run's paired CI over problems;
- a condition against the first one named is tested on the per-seed differences (each the mean
  over that seed's problems): a paired t-test, with a hierarchical bootstrap (seeds, then problems)
  beside it. With one seed there is no such test, and the tables say so;
- conditions whose runs share no seed with the first's (other seeds, or runs named apart) cannot be
  paired: their per-seed means are compared with Welch's t-test, and the tables say so;
- problem-level paired tests (an exact sign test on each problem's value of the metric) are shown
  per seed and labelled within-seed: they say whether two runs differ beyond evaluation noise, not
  whether one condition beats another.

Nothing pools problem × seed pairs as independent. Greedy and sampled pass@1 are shown side by side:
a sampled gain whose greedy gain is nil is the model sharpening its sampling on what greedy decoding
already picks (`tables.sharpening`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..evaluation.metrics import GAIN_METRICS, per_problem
from ..evaluation.stats import (
    across_seeds,
    hierarchical_bootstrap,
    paired_delta,
    seed_test,
    sign_test,
    unpaired_seed_test,
    wilson_ci,
)
from ..records import Estimate, EvalFigures, Flips, ImprovePass, RoundResult, TrainingInfo
from ..store import RunDirError
from .runs import RunView, load_run
from .tables import (
    METRIC_NAMES,
    Figure,
    Narrow,
    count,
    estimate,
    markdown_table,
    p_text,
    pct,
    rich_table,
    sharpening,
)

SEED_SUFFIX = re.compile(r"-seed\d+$")


def condition_of(run: Path) -> str:
    return SEED_SUFFIX.sub("", run.name)


@dataclass(frozen=True)
class Point:
    """Where each run is read: "reported" (its reported round), "round" (round `value`, or its last evaluated
    round if it stopped before), "budget" (its last evaluated round whose training attempts, summed from round
    1, generated at most `value` tokens, give or take BUDGET_SLACK; `value` None: the smallest of the
    conditions' totals, each the mean over its seeds)."""

    kind: str = "reported"
    value: int | None = None

    def describe(self) -> str:
        if self.kind == "round":
            return f"at round {self.value}"
        if self.kind == "budget":
            return f"at a budget of {count(self.value or 0)} generated training tokens (+{BUDGET_SLACK:.0%})"
        return "at each run's reported round"


Groups = dict[str, list[RunView]]  # condition -> its runs (seeds)
BUDGET_SLACK = 0.1  # rounds of equal design spend slightly different tokens: a budget holds 10% more


def _groups(runs: list[Path]) -> Groups:
    groups: Groups = {}
    for run in runs:
        groups.setdefault(condition_of(run), []).append(load_run(run))
    return groups


def spent(v: RunView, k: int) -> dict[str, int]:
    """What run `v` spent on rounds 1..k: training tokens generated, SFT steps, examples kept, tokens trained."""
    out = {"tokens_generated": 0, "sft_steps": 0, "examples": 0, "tokens_trained": 0}
    for r in v.history[1 : k + 1]:
        train, training = r.figures.train, r.figures.training
        passes: Sequence[ImprovePass | TrainingInfo] = (
            () if training is None else training.improve_passes or (training,)
        )
        out["tokens_generated"] += train.tokens_generated if train else 0
        out["examples"] += train.examples.kept if r.trained and train and train.examples else 0
        out["sft_steps"] += sum(p.steps or 0 for p in passes)
        out["tokens_trained"] += training.tokens_trained if training else 0
    return out


def _base(v: RunView) -> EvalFigures:
    """The base model's test figures (round 0 is always evaluated)."""
    e = v.history[0].figures.eval
    if e is None:
        raise RunDirError(f"{v.path}: round_0/round.json holds no evaluation of the base model")
    return e


def _evaluated(v: RunView) -> list[RoundResult]:
    return [r for r in v.history if r.figures.evaluated]


def resolve(groups: Groups, point: Point) -> Point:
    """A budget point without a value gets the smallest total budget among the runs."""
    if point.kind == "budget" and point.value is None:
        totals = [
            sum(spent(v, _evaluated(v)[-1].round)["tokens_generated"] for v in g) / len(g)
            for g in groups.values()
        ]
        return Point("budget", round(min(totals)))
    return point


def round_at(v: RunView, point: Point) -> RoundResult:
    """The round of run `v` that `point` names."""
    evaluated = _evaluated(v)
    if point.kind == "round":
        return [r for r in evaluated if r.round <= (point.value or 0)][-1]
    if point.kind == "budget":
        limit = (point.value or 0) * (1 + BUDGET_SLACK)
        return [r for r in evaluated if spent(v, r.round)["tokens_generated"] <= limit][-1]
    return v.best


def chosen_on_test(v: RunView, point: Point) -> bool:
    """Whether the round read for `v` was picked by looking at the test set among several."""
    return point.kind == "reported" and v.optimistic


def _at_label(members: list[RunView], point: Point) -> str:
    rounds = sorted({round_at(m, point).round for m in members})
    where = "round " + ", ".join(map(str, rounds)) if rounds != [0] else "base"
    if point.kind != "reported":
        return where
    on = {m.chosen_on for m in members}
    if any(chosen_on_test(m, point) for m in members):
        return f"{where}: best on the test set (optimistic)"
    return f"{where}: " + (
        "best on validation" if on == {"validation"} else "last" if on == {"last"} else "/".join(sorted(on))
    )


def _delta(v: RunView, r: RoundResult, metric: str) -> Estimate | None:
    """Round r's paired change of `metric` from the base (the base itself: no change)."""
    if r.round == 0:
        return Estimate(0.0, (0.0, 0.0), v.n_test)
    comparison = r.figures.comparison
    if comparison is not None and metric in comparison.gains:
        return comparison.gains[metric].from_base
    return comparison.delta_from_base if comparison is not None and metric == v.metric else None


def pooled(figures: Sequence[Figure], delta: bool = False) -> Estimate | None:
    """One figure over seeds: with one seed the run's own (CI over problems), with several the mean with a
    t-interval over seeds, cut to the quantity's range; None if a seed lacks it."""
    found = [estimate(f) for f in figures]
    if not found or any(e is None or e.value is None for e in found):
        return None
    if len(found) == 1:
        return found[0]
    return across_seeds(
        [e.value for e in found if e is not None and e.value is not None],
        bounds=(-1.0, 1.0) if delta else (0.0, 1.0),
    )


def _metrics(groups: Groups) -> list[str]:
    """The pass@1 metrics every run has, the headline metric first."""
    runs = [m for g in groups.values() for m in g]
    present = [m for m in GAIN_METRICS if all(_base(r).rate(m) is not None for r in runs)]
    head = runs[0].metric
    return [head] + [m for m in present if m != head]


def _short(metric: str) -> str:
    return {"pass1_sampled": "sampled", "pass1_greedy": "greedy"}.get(metric, metric)


# ----------------------------------------------------------------------------- the tables


def compare_rows(runs: list[Path], point: Point = Point()) -> tuple[list[str], list[list[str]]]:
    """condition, privileged information, filter, seeds, the round read, base, Δ from base of each pass@1 metric
    (the headline first), and the reading of the gain."""
    return _compare_rows(_groups(runs), point)


def _compare_rows(groups: Groups, point: Point) -> tuple[list[str], list[list[str]]]:
    point = resolve(groups, point)
    metrics = _metrics(groups)
    head = (
        ["condition", "privileged information", "filter", "seeds", "compared at", "base %"]
        + [f"Δ {_short(m)} pp" for m in metrics]
        + ["reading"]
    )
    rows = []
    for name, members in groups.items():
        deltas = {m: pooled([_delta(v, round_at(v, point), m) for v in members], True) for m in metrics}
        rows.append(
            [
                name,
                members[0].privileged,
                members[0].cfg.get("filter.require", "answer"),
                str(len(members)),
                _at_label(members, point),
                pct(pooled([_base(v)[v.metric] for v in members])),
                *(pct(deltas[m], True) for m in metrics),
                "sharpening" if sharpening(deltas.get("pass1_sampled"), deltas.get("pass1_greedy")) else "–",
            ]
        )
    return head, rows


def by_round_rows(runs: list[Path]) -> tuple[list[str], list[list[str]]]:
    """Δ of the headline metric from the base at every round, pooled over seeds (a condition's rounds as run)."""
    groups = _groups(runs)
    rounds = max(len(v.history) for g in groups.values() for v in g) - 1
    head = ["condition"] + [f"round {k} Δ pp" for k in range(1, rounds + 1)]
    rows = [
        [name]
        + [
            pct(pooled([v.at(k, "delta_from_base") for v in members], True), True)
            for k in range(1, rounds + 1)
        ]
        for name, members in groups.items()
    ]
    return head, rows


def retry_turn_rows(runs: list[Path]) -> tuple[list[str], list[list[str]]]:
    """With evaluation.retry_all: what the retry turn does at every round, pooled over seeds — its net change
    of accuracy on every test problem (pp) and the share of right first attempts it breaks (right → wrong).
    Rows only for conditions whose runs measured it; a round a run did not evaluate is "–"."""
    groups = _groups(runs)
    rounds = max(len(v.history) for g in groups.values() for v in g)
    head = ["condition", "figure"] + ["base" if k == 0 else f"round {k}" for k in range(rounds)]
    rows = []
    for name, members in groups.items():
        flips = [[_flips(v, k) for v in members] for k in range(rounds)]
        if not any(f for per_round in flips for f in per_round):
            continue
        nets = [pooled([f.net if f else None for f in per_round], True) for per_round in flips]
        broken = [pooled([_broken(f) for f in per_round]) for per_round in flips]
        rows.append([name, "net Δ pp"] + [pct(x, True) for x in nets])
        rows.append([name, "right → wrong %"] + [pct(x) for x in broken])
    return head, rows


def _flips(v: RunView, k: int) -> Flips | None:
    if k >= len(v.history):
        return None
    e = v.history[k].figures.eval
    return e.flips if e else None


def _broken(f: Flips | None) -> Estimate | None:
    """The share of right first attempts a retry turn made wrong, with its Wilson interval."""
    right = f.right_to_wrong + f.right_to_right if f else 0
    if not f or not right:
        return None
    return Estimate(f.right_to_wrong / right, wilson_ci(f.right_to_wrong, right), right)


def budget_rows(runs: list[Path], point: Point = Point()) -> tuple[list[str], list[list[str]]]:
    """What each condition spent up to the round it is compared at (mean over seeds)."""
    groups = _groups(runs)
    point = resolve(groups, point)
    head = ["condition", "rounds trained", "tokens generated", "SFT steps", "examples", "tokens trained"]
    rows = []
    for name, members in groups.items():
        at = [round_at(v, point) for v in members]
        spends = [spent(v, r.round) for v, r in zip(members, at)]
        trained = [sum(x.trained for x in v.history[1 : r.round + 1]) for v, r in zip(members, at)]

        def mean(key: str, spends: list = spends) -> float:
            return sum(s[key] for s in spends) / len(spends)

        rows.append(
            [
                name,
                _number(sum(trained) / len(trained)),
                count(mean("tokens_generated")),
                _number(mean("sft_steps")),
                _number(mean("examples")),
                count(mean("tokens_trained")),
            ]
        )
    return head, rows


def _number(x: float) -> str:
    return f"{x:g}" if x == int(x) else f"{x:.1f}"


def _pairs(groups: Groups, name: str, ref: str) -> list[tuple[RunView, RunView]]:
    by_seed = {v.cfg.get("seed"): v for v in groups[ref]}
    return [(by_seed[v.cfg.get("seed")], v) for v in groups[name] if v.cfg.get("seed") in by_seed]


def _values(v: RunView, r: RoundResult, metric: str) -> tuple[list[str], list[float]]:
    records = v.records(r.round)
    return [x.problem_id for x in records], per_problem(records)[metric]


def pairwise_rows(
    runs: list[Path], point: Point = Point(), n_boot: int | None = None
) -> tuple[list[str], list[list[str]]]:
    """Each condition against the first, at the level of seeds: per metric, the mean of the per-seed differences
    with its t-interval and paired t-test, and the seeds-then-problems bootstrap CI."""
    return _pairwise_rows(_groups(runs), point, n_boot)


def _pairwise_rows(
    groups: Groups, point: Point, n_boot: int | None = None
) -> tuple[list[str], list[list[str]]]:
    point = resolve(groups, point)
    names = list(groups)
    head = [
        "condition",
        "against",
        "metric",
        "seeds",
        "Δ pp [95% t-CI]",
        "paired t p",
        "bootstrap CI",
        "note",
    ]
    rows = []
    for name in names[1:]:
        pairs = _pairs(groups, name, names[0])
        for metric in _metrics(groups):
            if not pairs:
                rows.append(_unpaired_row(groups, name, names[0], metric, point))
                continue
            diffs, values, why = [], [], ""
            for a, b in pairs:
                ida, va = _values(a, round_at(a, point), metric)
                idb, vb = _values(b, round_at(b, point), metric)
                if ida != idb:
                    why = "different test problems: cannot pair"
                    break
                diffs.append(sum(vb) / len(vb) - sum(va) / len(va))
                values.append((va, vb))
            if why:
                rows.append([name, names[0], _short(metric), str(len(pairs)), "–", "–", "–", why])
                continue
            test = seed_test(diffs)
            boot = (
                hierarchical_bootstrap(
                    values,
                    n_boot or pairs[0][1].cfg.need("evaluation.bootstrap"),
                    seed=pairs[0][1].cfg.get("seed", 0),
                )
                if len(pairs) > 1
                else None
            )
            note = SHORT_REASONS.get(test.reason, test.reason) or ("2 seeds: 1 df" if len(pairs) == 2 else "")
            one = len(pairs) == 1
            rows.append(
                [
                    name,
                    names[0],
                    _short(metric),
                    str(len(pairs)),
                    "–" if one else pct(test, True),
                    "–" if test.p_value is None else f"{p_text(test.p_value)} (df {test.df})",
                    pct(boot, True) if boot else "–",
                    note or "–",
                ]
            )
    return head, rows


def _unpaired_row(groups: Groups, name: str, ref: str, metric: str, point: Point) -> list[str]:
    """A condition whose runs share no seed with the first condition's (other seeds, or runs named apart):
    the per-seed means compared without pairing (Welch's t over seeds), and the seeds named."""
    seeds = f"{_seeds(groups[ref])} vs {_seeds(groups[name])}"
    means, ids = [], []
    for group in (groups[ref], groups[name]):
        values = [_values(v, round_at(v, point), metric) for v in group]
        ids += [i for i, _ in values]
        means.append([sum(x) / len(x) for _, x in values])
    if any(i != ids[0] for i in ids):
        return [
            name,
            ref,
            _short(metric),
            "0",
            "–",
            "–",
            "–",
            f"no seed in common ({seeds}), different test problems",
        ]
    test = unpaired_seed_test(*means)
    if test.reason:
        return [name, ref, _short(metric), "0", "–", "–", "–", f"no seed in common ({seeds}): no test"]
    return [
        name,
        ref,
        _short(metric),
        f"{len(means[0])}+{len(means[1])}",
        pct(test, True),
        f"{p_text(test.p_value)} (Welch, df {test.df:g})",
        "–",
        f"no seed in common ({seeds}): unpaired",
    ]


def _seeds(group: list[RunView]) -> str:
    return ",".join(str(v.cfg.get("seed")) for v in group)


SHORT_REASONS = {
    None: "",
    "one seed: a single training run cannot separate the condition from its seed": "one seed: no test",
    "every seed differs by the same amount: no spread to test against": "same Δ every seed",
}


def within_seed_rows(
    runs: list[Path], point: Point = Point(), n_boot: int | None = None
) -> tuple[list[str], list[list[str]]]:
    """Each condition against the first within each seed, problem by problem, on the headline metric: the paired
    difference with its CI over problems and an exact sign test (evaluation noise only)."""
    groups = _groups(runs)
    point = resolve(groups, point)
    names = list(groups)
    metric = _metrics(groups)[0]
    head = [
        "condition",
        "against",
        "seed",
        "Δ pp [CI over problems]",
        "problems higher",
        "problems lower",
        "sign test p",
    ]
    rows = []
    for name in names[1:]:
        for a, b in _pairs(groups, name, names[0]):
            ida, va = _values(a, round_at(a, point), metric)
            idb, vb = _values(b, round_at(b, point), metric)
            if ida != idb:
                rows.append(
                    [name, names[0], str(b.cfg.get("seed")), "different test problems", "–", "–", "–"]
                )
                continue
            d = paired_delta(va, vb, n_boot or b.cfg.need("evaluation.bootstrap"), b.cfg.get("seed", 0))
            s = sign_test(va, vb)
            rows.append(
                [
                    name,
                    names[0],
                    str(b.cfg.get("seed")),
                    pct(d, True),
                    str(s["c"]),
                    str(s["b"]),
                    p_text(s["p_value"]),
                ]
            )
    return head, rows


# ----------------------------------------------------------------------------- output

TITLES = {
    "conditions": "conditions compared — Δ on the test set from each run's base model, {point}; [95% CI: t "
    "over seeds, or over problems for one seed]",
    "rounds": "Δ {metric} on the test set from the base, every round as run",
    "budget": "what each condition spent up to the round compared (mean over seeds)",
    "retry_turn": "the retry turn given to every test problem (evaluation.retry_all), every round as "
    "run: its net change of accuracy and the share of right first attempts it breaks; [95% CI: "
    "t over seeds, or over problems for one seed]",
    "pairwise": "each condition against the first, across seeds (the seed is the unit: paired t-test on the "
    "per-seed differences; bootstrap CI over seeds, then problems)",
    "within": "within each seed, problem by problem on the test set, {metric} (evaluation noise only: not a "
    "test of the condition)",
}


def _tables(
    groups: Groups, runs: list[Path], point: Point
) -> list[tuple[str, str, tuple[list[str], list[list[str]]]]]:
    point = resolve(groups, point)
    tables = [
        ("conditions", _compare_rows(groups, point)),
        ("rounds", by_round_rows(runs)),
        ("retry_turn", retry_turn_rows(runs)),
        ("budget", budget_rows(runs, point)),
    ]
    if len(groups) > 1:
        tables += [("pairwise", _pairwise_rows(groups, point)), ("within", within_seed_rows(runs, point))]
    metric = METRIC_NAMES.get(_metrics(groups)[0], _metrics(groups)[0])
    return [(k, TITLES[k].format(point=point.describe(), metric=metric), t) for k, t in tables if t[1]]


def comparison_tables(
    runs: list[Path], point: Point = Point()
) -> list[tuple[str, str, tuple[list[str], list[list[str]]]]]:
    """(key, title, (header, rows)) of every comparison table: conditions, rounds, the retry turn per round
    (with evaluation.retry_all), budget, and with several conditions pairwise (across seeds) and within (each
    seed)."""
    return _tables(_groups(runs), runs, point)


def notes(runs: list[Path], point: Point = Point()) -> list[str]:
    """What the tables can and cannot say, from the runs themselves."""
    return _notes(_groups(runs), point)


def _notes(groups: Groups, point: Point) -> list[str]:
    point = resolve(groups, point)
    seeds = {len(g) for g in groups.values()}
    metric = _metrics(groups)[0]
    out = [f"Headline metric: {METRIC_NAMES.get(metric, metric)}; each run is read {point.describe()}."]
    if seeds == {1}:
        out.append(
            "One seed per condition: every interval is over test problems within one training run; a "
            "difference between conditions may be the seed's, and no test across seeds is possible."
        )
    elif 2 in seeds:
        out.append(
            "Two seeds for some condition: its t-interval has 1 degree of freedom (t = 12.7), so only a "
            "large and consistent difference can show."
        )
    if any(r[-1] == "one seed: no test" for r in _pairwise_rows(groups, point)[1]):
        out.append(
            "'one seed: no test': a single training run per condition cannot separate the condition from "
            "its seed; the within-seed rows compare the two runs, not the conditions."
        )
    if any("no seed in common" in r[-1] for r in _pairwise_rows(groups, point)[1]):
        out.append(
            "'no seed in common': those conditions ran on other seeds than the first (or their "
            "runs are named apart), so their seeds cannot be paired; they are compared unpaired, "
            "Welch's t on the per-seed means, a weaker test. Run every condition with the same "
            "--seeds to pair them."
        )
    if any(r[-1] == "sharpening" for r in _compare_rows(groups, point)[1]):
        out.append(
            "Sharpening: a sampled gain whose CI lies above 0 beside a greedy gain whose CI does not; the "
            "round mostly made sampling pick what greedy decoding already picked."
        )
    if any(chosen_on_test(v, point) for g in groups.values() for v in g):
        out.append(
            "Rounds marked 'best on the test set (optimistic)' were picked by looking at the test set "
            "among several: their gains are biased upward. Hold out a validation split "
            "(evaluation.validation) to choose without looking."
        )
    return out


FULL = "comparison.md"
NARROW = {  # how each table gives way on a narrow terminal (tables.Narrow); comparison.md keeps every column
    "conditions": Narrow(
        steps=(
            ("short",),
            ("drop", "filter"),
            ("drop", "extra info"),
            ("letters", "condition"),
            ("drop", "reading"),
        ),
        short={"privileged information": "extra info", "compared at": "read at"},
        full=FULL,
    ),
    "rounds": Narrow(steps=(("short",), ("letters", "condition")), full=FULL),
    "budget": Narrow(steps=(("short",), ("letters", "condition")), short={"examples": "kept"}, full=FULL),
    "retry_turn": Narrow(steps=(("short",), ("letters", "condition")), full=FULL),
    "pairwise": Narrow(
        steps=(
            ("short",),
            ("drop", "against", "against: {} (the first condition)"),
            ("letters", "condition"),
            ("drop", "bootstrap CI"),
        ),
        short={"bootstrap CI": "boot CI"},
        full=FULL,
    ),
    "within": Narrow(
        steps=(
            ("short",),
            ("drop", "against", "against: {} (the first condition)"),
            ("letters", "condition"),
        ),
        short={
            "Δ pp [CI over problems]": "Δ pp [CI]",
            "problems higher": "higher",
            "problems lower": "lower",
        },
        full=FULL,
    ),
}


def print_comparison(runs: list[Path], console=None, point: Point = Point()) -> None:
    """The comparison tables, each fit to the terminal (comparison.md has every column), and the notes."""
    from rich.console import Console

    console = console or Console()
    groups = _groups(runs)
    for key, title, (head, rows) in _tables(groups, runs, point):
        console.print(rich_table(title, head, rows, console.width, NARROW[key]))
    for line in _notes(groups, point):
        console.print(line, highlight=False)


def comparison_markdown(runs: list[Path], point: Point = Point()) -> str:
    groups = _groups(runs)
    parts = []
    for _, title, (head, rows) in _tables(groups, runs, point):
        parts += [f"{title[0].upper()}{title[1:]}:", "", markdown_table(head, rows), ""]
    parts += [f"- {line}" for line in _notes(groups, point)]
    return "\n".join(parts) + "\n"
