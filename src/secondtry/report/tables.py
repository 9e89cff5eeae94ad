"""The reference report's two tables, from round.json files: rounds, and the stochastic gap."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..evaluation.metrics import METRIC_NAMES, cut_shares
from ..records import Estimate, Ratio, RoundResult, RunSummary
from .runs import RunConfig, load_run


def p_text(p: float) -> str:
    """A p-value to 3 significant figures; below what a float holds (an exact test on thousands of
    problems can give 1e-400, which reads back as 0) it is shown as a bound.

    >>> p_text(0.0), p_text(2.64e-265), p_text(0.5)
    ('<1e-300', '2.64e-265', '0.5')
    """
    return "<1e-300" if p < 1e-300 else f"{p:.3g}"


def count(n: float | None) -> str:
    """A count of tokens or the like: 532.4k, 1.25M."""
    if n is None:
        return "–"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else f"{n:.0f}"


Figure = Estimate | Mapping[str, Any] | None  # an estimate, or one as a round.json or a seed test holds it


def estimate(fig: Figure) -> Estimate | None:
    """A figure as an Estimate (a figure read from JSON is typed here)."""
    return Estimate.from_json(fig, "figure") if fig else None


def pct(fig: Figure, signed: bool = False) -> str:
    e = estimate(fig)
    if e is None or e.value is None:
        return "–"
    v, (lo, hi) = e.value * 100, (x * 100 for x in e.ci)
    sign = "+" if signed else ""
    return f"{v:{sign}.1f} [{lo:{sign}.1f}, {hi:{sign}.1f}]"


def ratio(fig: Figure, percent: bool = False) -> str:
    """A ratio with its CI: decay as 0.44 [0.1, 0.9], absorbed share as 49% [30%, 65%]; bootstrap draws where the
    ratio was undefined (left out of the CI) are counted after it. Undefined: "–" (`undefined_lines` says why)."""
    e = estimate(fig)
    if e is None or e.value is None:
        return "–"
    fmt = (lambda x: f"{x:.0%}") if percent else (lambda x: f"{x:.2f}")
    lo, hi = e.ci
    out = f"{fmt(e.value)} [{fmt(lo)}, {fmt(hi)}]"
    if isinstance(e, Ratio) and e.undefined_draws:
        out += f" ({e.undefined_draws} of {e.draws} draws undefined)"
    return out


def undefined_lines(history: list[RoundResult]) -> list[str]:
    """Why a round's decay or absorbed share is "–"."""
    return [
        f"{_label(r)}: {name} –, {fig.reason}"
        for r in history
        if r.figures.comparison
        for name, fig in (
            ("decay", r.figures.comparison.decay),
            ("gap absorbed", r.figures.comparison.absorbed_share),
        )
        if fig and fig.value is None and fig.reason
    ]


OTHER = {"pass1_sampled": "pass1_greedy", "pass1_greedy": "pass1_sampled"}


def other_metric(history: list[RoundResult], metric: str) -> str | None:
    """The pass@1 metric shown beside the headline one (greedy beside sampled), where the rounds measured it."""
    other = OTHER.get(metric)
    return (
        other if any(r.figures.comparison and other in r.figures.comparison.gains for r in history) else None
    )


def gain(r: RoundResult, metric: str, key: str = "from_base") -> Estimate | None:
    """Round r's change of `metric` from the base ("from_base") or the previous round ("from_prev")."""
    gains = r.figures.comparison.gains.get(metric) if r.figures.comparison else None
    if gains is None:
        return None
    if key not in ("from_base", "from_prev"):
        raise KeyError(f"no gain {key!r}; gains are from_base and from_prev")
    return gains.from_base if key == "from_base" else gains.from_prev


def excludes_zero(fig: Figure) -> bool:
    e = estimate(fig)
    return e is not None and e.excludes_zero()


def sharpening(sampled: Figure, greedy: Figure) -> bool:
    """A sampled gain whose CI lies above 0 beside a greedy gain that does not (its CI includes 0, or lies below
    it): sampling got better at what greedy decoding already picks, not the model at the task."""
    s, g = estimate(sampled), estimate(greedy)
    if s is None or not s.excludes_zero() or s.ci[0] is None or s.ci[0] <= 0 or g is None or g.value is None:
        return False
    return g.ci[0] is None or g.ci[0] <= 0


SHARPENING = (
    "reads as sharpening: sampled pass@1 rose but greedy pass@1 did not (its CI does not lie above 0), "
    "so the round mostly made sampling pick what greedy decoding already picked"
)
CHOSEN = {
    "validation": "the best round on the held-out validation split",
    "last": "the last round (no choice made)",
    "test": "the best round on the test set itself: chosen on the test set (optimistic)",
}


def reported_lines(history: list[RoundResult], summary: RunSummary | None) -> list[str]:
    """The reported round, how it was chosen, its gains from the base on sampled and greedy pass@1, and the
    reading of them."""
    if summary is None:
        return []
    best = next((r for r in history if r.round == summary.best_round), None)
    on = summary.chosen_on
    how = CHOSEN["test"] if summary.optimistic else CHOSEN.get(on, on)
    if best is None or best.round == 0:
        return [f"Reported: the base model ({how}); no round is reported as a gain."]
    gains = [
        f"{METRIC_NAMES.get(m, m)} {pct(gain(best, m), True)} pp"
        for m in ("pass1_sampled", "pass1_greedy")
        if gain(best, m)
    ]
    lines = [
        f"Reported: {_label(best)}, {how}. Test gains from the base: "
        + (", ".join(gains) or pct(best.figures.test and best.figures.test.delta_from_base, True) + " pp")
        + "."
    ]
    if sharpening(gain(best, "pass1_sampled"), gain(best, "pass1_greedy")):
        lines.append(f"The gain {SHARPENING}.")
    return lines


def toy_world(cfg: RunConfig) -> float | None:
    """The retry_error_scale of the world a toy model was pretrained in (its recipe.json beside the weights,
    else the config's model.toy); None for a model that is not a toy one."""
    recipe = Path(str(cfg.get("model.path", ""))) / "recipe.json"
    if recipe.is_file():
        import json

        made = json.loads(recipe.read_text())
        return float(
            made.get("retry_error_scale", 0.5 if made.get("toy", 1) < 2 else 1.0)
        )  # version 1 halved it
    toy = cfg.get("model.toy")
    return float(toy.get("retry_error_scale", 1.0)) if isinstance(toy, dict) else None


def world_line(cfg: RunConfig) -> str:
    """The toy world's planted advantage for retrying, when the model was pretrained in one (empty for a
    neutral world or a model that is not a toy one)."""
    scale = toy_world(cfg)
    if scale is None or scale == 1.0:
        return ""
    return (
        f"Planted world: the toy model was pretrained on retries written at {scale:g}× the first attempt's "
        f"error rate (model.toy.retry_error_scale), so a retry beats a first attempt by construction, not by "
        f"finding."
    )


def _label(r: RoundResult) -> str:
    return "base" if r.round == 0 else f"round {r.round}"


def round_rows(history: list[RoundResult], metric: str, best: int | None) -> list[list[str]]:
    """stage | metric % [CI] | Δ base pp | (Δ base of the other pass@1) | Δ previous pp | decay | retry yield |
    examples | decision."""
    other = other_metric(history, metric)
    rows = []
    for r in history:
        f, train = r.figures, r.figures.train
        rows.append(
            [
                _label(r) + (" (reported)" if r.round == best else ""),
                pct(f.eval[metric]) if f.eval else "not trained",
                pct(f.comparison and f.comparison.delta_from_base, True),
                *([pct(gain(r, other), True)] if other else []),
                pct(f.comparison and f.comparison.delta_from_prev, True),
                ratio(f.comparison and f.comparison.decay),
                pct(train.retry_yield) if train else "–",
                (str(train.examples.kept) if train.examples else "–") if train else "–",
                _decision(r, last=r is history[-1]),
            ]
        )
    return rows


def _decision(r: RoundResult, last: bool) -> str:
    if r.round == 0:
        return ""
    if r.decision.stop:
        return "stop" if last else "would stop"  # stopping.enforce: false runs on past a stop
    return "continue"


def gap_rows(history: list[RoundResult]) -> list[list[str]]:
    """model | pass@1 | pass@N (retry) | gap | absorbed share of the base gap."""
    rows = []
    for r in history:
        e = r.figures.eval
        if e is None:
            continue
        comparison = r.figures.comparison
        rows.append(
            [
                _label(r),
                pct(e["pass1_sampled"]),
                pct(e["pass_n_retry"]),
                pct(e["gap"], True),
                ratio(comparison and comparison.absorbed_share, percent=True),
            ]
        )
    return rows


def split_rows(history: list[RoundResult], metric: str) -> tuple[list[str], list[list[str]]]:
    """The other evaluation sets (validation, transfer) by round: metric and Δ from base; empty if none."""
    splits = [s for s in ("validation", "transfer") if any(r.figures.on(s) for r in history)]
    head = ["stage"] + [h for s in splits for h in (f"{s} %", f"{s} Δ base pp")]

    def cells(r: RoundResult, split: str) -> tuple[str, str]:
        on = r.figures.on(split)
        return (pct(on.eval.rate(metric)), pct(on.delta_from_base, True)) if on else ("–", "–")

    rows = [
        [_label(r)] + [cell for s in splits for cell in cells(r, s)] for r in history if r.figures.evaluated
    ]
    return (head, rows) if splits else ([], [])


def flip_lines(history: list[RoundResult]) -> list[str]:
    """With evaluation.retry_all: what the retry turn does to right and to wrong first attempts."""
    lines = []
    for r in history:
        f = r.figures.eval.flips if r.figures.eval else None
        if f:
            lines.append(
                f"{_label(r)}: a retry turn on every test problem turned {f.wrong_to_right} wrong first "
                f"attempts right and {f.right_to_wrong} right ones wrong (net {pct(f.net, True)} pp, "
                f"McNemar p={p_text(f.mcnemar.p_value)})"
            )
    return lines


def cut_lines(history: list[RoundResult], floor: float = 0.05) -> list[str]:
    """Per round, the share of each set's generations cut at max_new_tokens (no ending: judged wrong); empty
    when no set of any round reached `floor`."""
    rows = [(r, cut_shares(r.figures)) for r in history]
    if not any(share >= floor for _, s in rows for _, share in s):
        return []
    return [f"{_label(r)}: " + ", ".join(f"{name} {share:.0%}" for name, share in s) for r, s in rows if s]


ROUND_HEAD = [
    "stage",
    "{metric} %",
    "Δ base pp",
    "Δ prev pp",
    "decay",
    "retry yield %",
    "examples",
    "decision",
]


def round_head(history: list[RoundResult], metric: str, name: str) -> list[str]:
    """The round table's header: `name` for the metric column, and the other pass@1's Δ base where measured."""
    other = other_metric(history, metric)
    head = [h.format(metric=name) for h in ROUND_HEAD]
    return (
        head[:3]
        + ([f"Δ base {'greedy' if other == 'pass1_greedy' else 'sampled'} pp"] if other else [])
        + head[3:]
    )


GAP_HEAD = ["model", "pass@1 %", "pass@N with retries %", "gap, pp", "gap absorbed"]


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


@dataclass(frozen=True)
class Narrow:
    """How a terminal table gives way when it is wider than the terminal, one step at a time until it fits
    without splitting a word:

    - ("short",) puts the shorter headers of `short` in;
    - ("replace", text, shorter, note) writes a cell's text shorter and puts the note under the table;
    - ("drop", header) leaves a column out (named under the table); ("drop", header, note) leaves out a column
      that needs no space of its own and puts note.format(its distinct values) under the table;
    - ("letters", header) writes a column of long names as A, B, C, with the key under the table.

    `full` names where every column stays (the Markdown file the command writes)."""

    steps: tuple[tuple[str, ...], ...] = (("short",),)
    short: dict[str, str] = field(default_factory=dict)
    full: str = "report/summary.md"


BORDER = 3  # a column's padding (one space each side) and its rule; the table's last rule adds one more


def _cells(row: list[str]) -> list[str]:
    return [cell.replace(" [", "\n[") for cell in row]  # each figure sits over its CI: narrower columns


def _span(text: str, words: bool) -> int:
    """The width a cell needs: its longest word (words) or its longest line."""
    parts = text.split() if words else text.splitlines()
    return max((len(p) for p in parts), default=0)


def column_widths(head: list[str], rows: list[list[str]], width: int) -> list[int] | None:
    """Widths that fit `width` terminal columns with no word cut (None if the words alone do not fit): every
    column its longest line where that fits, else its longest word plus a share of what is left."""
    cols = list(zip(head, *(_cells(r) for r in rows)))
    least = [max(_span(c, True) for c in col) for col in cols]
    most = [max(_span(c, False) for c in col) for col in cols]
    room = width - BORDER * len(cols) - 1
    if sum(most) <= room:
        return most
    spare = room - sum(least)
    if spare < 0:
        return None
    want = [m - w for m, w in zip(most, least)]
    give = [0] * len(cols)
    for i in sorted(range(len(cols)), key=lambda i: want[i]):  # whole lines for the columns that need least
        if want[i] <= spare:
            give[i], spare = want[i], spare - want[i]
    rest = [w - g for w, g in zip(want, give)]
    if any(rest):  # what is left, shared by the others in proportion to what they still need
        share = [spare * x // sum(rest) for x in rest]
        neediest = sorted(range(len(rest)), key=lambda i: rest[i] - share[i], reverse=True)
        for i in neediest[: spare - sum(share)]:
            share[i] += 1
        give = [g + x for g, x in zip(give, share)]
    return [w + g for w, g in zip(least, give)]


def fit(
    head: list[str], rows: list[list[str]], width: int, narrow: Narrow
) -> tuple[list[str], list[list[str]], list[int] | None, list[str]]:
    """The header, rows and column widths of a table made to fit `width` (see Narrow), and the notes that say
    what it left out or renamed (none if it fit as it was)."""
    notes: list[str] = []
    dropped: list[str] = []
    widths = column_widths(head, rows, width)
    for step in narrow.steps:
        if widths is not None:
            break
        if step[0] == "short":
            head = [narrow.short.get(h, h) for h in head]
        elif step[0] == "drop" and step[1] in head:
            i = head.index(step[1])
            if len(step) > 2:  # a column that needs no space: the note says what it held
                notes.append(step[2].format(*dict.fromkeys(r[i] for r in rows)))
            else:
                dropped.append(step[1])
            head, rows = head[:i] + head[i + 1 :], [r[:i] + r[i + 1 :] for r in rows]
        elif step[0] == "replace" and any(step[1] in c for r in rows for c in r):
            rows = [[c.replace(step[1], step[2]) for c in r] for r in rows]
            notes.append(step[3])
        elif step[0] == "letters" and step[1] in head:
            i = head.index(step[1])
            names = list(dict.fromkeys(r[i] for r in rows))
            letter = {n: chr(ord("A") + k) if k < 26 else str(k + 1) for k, n in enumerate(names)}
            notes.append(f"{step[1]}: " + ", ".join(f"{letter[n]} = {n}" for n in names))
            rows = [r[:i] + [letter[r[i]]] + r[i + 1 :] for r in rows]
        widths = column_widths(head, rows, width)
    if dropped:
        notes.append(f"left out at {width} columns: {', '.join(dropped)} (every column: {narrow.full})")
    return head, rows, widths, notes


def rich_table(
    title: str, head: list[str], rows: list[list[str]], width: int | None = None, narrow: Narrow | None = None
):
    """A terminal table; each figure sits over its CI, which keeps columns narrow. Given the terminal's
    `width` the table is made to fit it without cutting a word (`fit`), its notes under it."""
    from rich.table import Table

    widths, notes = None, []
    if width is not None:
        head, rows, widths, notes = fit(head, rows, width, narrow or Narrow())
    if widths:  # the title and notes wrap at the table's width: wide enough for their longest word
        longest = max((len(w) for line in [title, *notes] for w in line.split()), default=0)
        short = min(longest, width or longest) - (sum(widths) + BORDER * len(widths) + 1)
        if short > 0:
            widths = [*widths[:-1], widths[-1] + short]
    t = Table(title=title, caption="\n".join(notes) or None, caption_justify="left")
    for i, h in enumerate(head):
        t.add_column(h, overflow="fold", width=widths[i] if widths else None)
    for row in rows:
        t.add_row(*_cells(row))
    return t


def markdown(run: Path, metric: str = "pass1_sampled") -> str:
    v = load_run(run)
    history, summary = v.history, v.summary
    metric = summary.metric if summary else metric

    base = history[0].figures.eval
    assert base is not None, "round 0 is the base model's evaluation"
    n, retry_turns = base[metric].n, base.retry_n
    parts = [
        f"# {run.name}",
        "",
        f"Accuracy is `{metric}` on {n} test problems. "
        + CI_TEXT
        + f" pass@N: a first attempt plus up to {retry_turns - 1} retry turns.",
        "",
    ]
    world = world_line(v.cfg)
    parts += [world, ""] if world else []
    best = summary.best_round if summary else None
    parts += [
        markdown_table(round_head(history, metric, metric), round_rows(history, metric, best)),
        "",
        "Stochastic headroom:",
        "",
        markdown_table(GAP_HEAD, gap_rows(history)),
    ]
    undefined = undefined_lines(history)
    if undefined:
        parts += ["", *(f"- {line}" for line in undefined)]
    head, rows = split_rows(history, metric)
    if rows:
        parts += [
            "",
            "Other evaluation sets (validation: held-out training problems; transfer: another distribution):",
            "",
            markdown_table(head, rows),
        ]
    flips = flip_lines(history)
    if flips:
        parts += ["", "Retry turn given to every problem:", "", *(f"- {line}" for line in flips)]
    cut = cut_lines(history)
    if cut:
        parts += [
            "",
            "Generations cut at the length limit (no ending, so judged wrong):",
            "",
            *(f"- {line}" for line in cut),
        ]
    parts += ["", *(f"- {_label(r)}: {r.decision.reason}" for r in history if r.round)]
    if summary:
        parts += [
            "",
            *reported_lines(history, summary),
            f"Model: {summary.best_model}. Stopped: {summary.stopped}.",
        ]
    return "\n".join(parts) + "\n"


CI_TEXT = (
    "CIs are 95%: Wilson score intervals for rates of right/wrong outcomes (and for any rate near 0 or "
    "100%), bootstrap over problems otherwise, paired by problem for differences."
)


ROUND_NARROW = Narrow(
    steps=(
        ("short",),
        ("replace", " (reported)", " *", "* the reported round"),
        ("drop", "decay"),
        ("drop", "retry yield %"),
        ("drop", "Δ prev pp"),
    ),
    short={"examples": "kept"},
)


def print_tables(run: Path, console=None, decisions: bool = True) -> None:
    """The round table, the stochastic headroom and the other evaluation sets, each made to fit the terminal
    (summary.md has every column); with `decisions`, why each round went on or stopped (a run's log says it
    as each round ends, so a run prints the tables without them)."""
    from rich.console import Console

    console = console or Console()
    width = console.width
    v = load_run(run)
    history, summary = v.history, v.summary
    metric = summary.metric if summary else "pass1_sampled"
    name = METRIC_NAMES.get(metric, metric)
    n = history[0].figures.eval[metric].n if history[0].figures.eval else 0
    title = f"{run.name}: {name} by round on the {n} test problems [95% CI]"
    world = world_line(v.cfg)
    if world:
        console.print(world, highlight=False)
    best = summary.best_round if summary else None
    console.print(
        rich_table(
            title, round_head(history, metric, name), round_rows(history, metric, best), width, ROUND_NARROW
        )
    )
    console.print(rich_table("stochastic headroom (test set)", GAP_HEAD, gap_rows(history), width))
    for line in undefined_lines(history):
        console.print(line, highlight=False)
    head, rows = split_rows(history, metric)
    if rows:
        console.print(rich_table(f"other evaluation sets: {name}", head, rows, width))
    for line in flip_lines(history):
        console.print(line, highlight=False)
    if decisions:
        for r in history[1:]:
            policy = f" [{r.decision.policy}]" if r.decision.policy else ""
            console.print(f"{_label(r)}: {r.decision.reason}{policy}", highlight=False)
    for line in reported_lines(history, summary):
        console.print(line, highlight=False)
