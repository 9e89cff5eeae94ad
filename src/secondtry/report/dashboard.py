"""The experiment dashboard: a run's results as one self-contained HTML page, with PNG plots.

`build_dashboard(RUN)` writes, beside report/summary.md:

    RUN/report/index.html    the page: no network and nothing loaded from elsewhere (styles and script
                             inline, plots as data URIs), so it opens from file:// and can be mailed
    RUN/report/plots/*.png   the plots as files: accuracy, gap, retry_yield, training_set

The page, top to bottom: headline figures (the best round's gain from the base model with its CI,
each round's gain, regressions, why the run stopped, compute); the hypothesis (config.yaml's
`description`) and the key config; the round table; the stochastic headroom; the other evaluation
sets; what the retry turn does (its lift over a fresh sample, flips); compute per round and stage;
the plots; and a sample of transcripts, filterable by outcome with a few lines of inline script.
Model text is untrusted: all of it is escaped, and the page's Content-Security-Policy runs only
its own script.

`build_index(FOLDER, RUNS)` writes FOLDER/index.html, "Experiments": every run with its
description, rounds and best gain, linked to its dashboard, and the runs' conditions compared
(report/compare.py). `serve` serves a folder on 127.0.0.1 for browsing.

Every figure on the pages comes from the runs' round.json, summary.json and per-problem records.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..conditions import PRIVILEGED
from ..loop import eval_name
from ..records import RoundResult
from ..store import RunDirError, read_jsonl, write_text
from ..types import Attempt, Kind, attempt_from_dict
from .compare import Point, comparison_tables, notes
from .page import sections as written_sections
from .prose import Section, html_pieces
from .runs import RunConfig, RunView, has_results, load_run, read_config
from .tables import (
    CHOSEN,
    CI_TEXT,
    GAP_HEAD,
    METRIC_NAMES,
    SHARPENING,
    count,
    cut_lines,
    gain,
    gap_rows,
    other_metric,
    p_text,
    pct,
    ratio,
    sharpening,
    split_rows,
    toy_world,
    undefined_lines,
    world_line,
)

SAMPLE = 100  # transcripts shown per round and set
TEXT_CAP = 2400  # characters of a completion shown: its start and its end
SETS = ("test", "validation", "transfer")
OUTCOMES = {
    "right": "right first time",
    "wrong-right": "wrong → right on retry",
    "wrong-wrong": "wrong → wrong",
    "right-wrong": "right → wrong on retry",
    "unjudged": "cannot judge",
}
CI_NOTE = CI_TEXT


# ----------------------------------------------------------------------------- the run


def find_runs(paths: Iterable[Path]) -> tuple[list[Path], Path | None]:
    """The run directories named, a folder standing for the runs in it (sub-folders with a config.yaml),
    and the folder the index page goes in: the folder given, else the runs' common parent when there are
    several, else None."""
    paths = list(paths)
    runs: list[Path] = []
    folder: Path | None = None
    for p in paths:
        if (p / "config.yaml").is_file():
            runs.append(p)
            continue
        inside = sorted(c for c in p.iterdir() if (c / "config.yaml").is_file()) if p.is_dir() else []
        if not inside:
            raise RunDirError(
                f"{p}: not a secondtry run directory (no config.yaml), nor a folder of run directories"
            )
        runs += inside
        folder = p
    runs = list(dict.fromkeys(runs))
    if len(paths) == 1 and folder is not None:
        return runs, folder
    if len(runs) > 1:
        return runs, Path(os.path.commonpath([r.resolve() for r in runs]))
    return runs, None


# ----------------------------------------------------------------------------- HTML pieces


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


_FIGURE = re.compile(r"^(\S+) (\[[^\]]*\])$")  # "4.2 [1.0, 8.3]": a figure and its CI


def cell(text: str) -> str:
    """A table cell's content: a figure's CI in a muted span after it."""
    m = _FIGURE.match(text)
    return f'{esc(m[1])} <span class="ci">{esc(m[2])}</span>' if m else esc(text)


def table(
    head: list[str],
    rows: list[list[str]],
    *,
    ident: str = "",
    keys: list[str] | None = None,
    row_ids: list[str] | None = None,
    row_classes: list[str] | None = None,
) -> str:
    """A table; `keys` name the columns (data-col) and `row_ids` the rows (data-round), for readers and tests."""
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = []
    for i, row in enumerate(rows):
        attrs = (f' data-round="{esc(row_ids[i])}"' if row_ids else "") + (
            f' class="{esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        )
        tds = "".join(td(c, keys[j] if keys else None) for j, c in enumerate(row))
        body.append(f"<tr{attrs}>{tds}</tr>")
    ident_attr = f' id="{esc(ident)}"' if ident else ""
    return (
        f'<div class="scroll"><table{ident_attr}><thead><tr>{th}</tr></thead><tbody>{"".join(body)}</tbody>'
        f"</table></div>"
    )


def td(text: str, key: str | None = None) -> str:
    attrs = (' class="num"' if _FIGURE.match(text) else "") + (f' data-col="{esc(key)}"' if key else "")
    return f"<td{attrs}>{cell(text)}</td>"


def section(ident: str, title: str, body: str) -> str:
    return f'<section id="{esc(ident)}-section"><h2>{esc(title)}</h2>{body}</section>'


def caption(text: str) -> str:
    return f'<p class="caption">{esc(text)}</p>'


def card(title: str, big: str, lines: list[str], cls: str = "", unit: str = "") -> str:
    """A headline figure: `big` (a figure and its CI, or a word) in `unit`, and lines under it."""
    items = "".join(f"<p>{esc(line)}</p>" for line in lines)
    unit_html = f" {esc(unit)}" if unit and big != "–" else ""
    return (
        f'<div class="card"><h3>{esc(title)}</h3><div class="big {esc(cls)}">{cell(big)}{unit_html}</div>'
        f"{items}</div>"
    )


def _asset(name: str) -> str:
    return (files("secondtry.report") / "assets" / name).read_text(encoding="utf-8")


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def page(title: str, body: str) -> str:
    """A whole HTML document. Its policy allows no network, data: images, and only its own style and script."""
    css, js = _asset("dashboard.css"), _asset("dashboard.js")
    policy = f"default-src 'none'; img-src data:; style-src {_digest(css)}; script-src {_digest(js)}"
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        f'<link rel="icon" href="data:,"><title>{esc(title)}</title><style>{css}</style></head>\n'
        f"<body>{body}<script>{js}</script></body></html>\n"
    )


def label(r: RoundResult) -> str:
    return "base" if r.round == 0 else f"round {r.round}"


def _signed_class(fig: dict[str, Any] | None) -> str:
    if not fig or fig.get("value") is None or fig["value"] == 0:
        return ""
    return "up" if fig["value"] > 0 else "down"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


# ----------------------------------------------------------------------------- headline and config


def headline(v: RunView, compute: Compute) -> str:
    m, base = v.metric, v.history[0].figures.raw["eval"][v.metric]
    metric_name = METRIC_NAMES.get(m, m)
    if len(v.history) == 1:
        cards = [
            card(
                "Base model",
                pct(base),
                [f"{metric_name} on {v.n_test} test problems", "round 0 only: no training rounds"],
                unit="%",
            )
        ]
    else:
        cards = [_best_card(v), _gains_card(v), _regressions_card(v)]
    cards.append(_stop_card(v))
    cards.append(card("Compute", duration(compute.wall_s), compute.headline(v)))
    world = world_line(v.cfg)
    warning = f'<p class="planted" id="planted-world">{esc(world)}</p>' if world else ""
    return (
        f'<section id="headline-section">{warning}<div class="cards">{"".join(cards)}</div>'
        + caption(
            f"Accuracy is {metric_name} on {v.n_test} test problems; gains are in percentage points (pp). "
            + CI_NOTE
        )
        + "</section>"
    )


def _best_card(v: RunView) -> str:
    m, best = v.metric, v.best
    how = CHOSEN["test"] if v.optimistic else CHOSEN.get(v.chosen_on, v.chosen_on)
    base = pct(v.history[0].figures.raw["eval"][m])
    if not best.round:
        return card(
            "Reported gain over the base", "none", [f"reported: the base model ({how})", f"base: {base} %"]
        )
    main = best.figures.raw.get("delta_from_base")
    lines = [f"{label(best)}: {pct(best.figures.raw['eval'][m])} %, base {base} %", f"reported: {how}"]
    other = other_metric(v.history, m)
    if other:
        lines.append(f"{METRIC_NAMES.get(other, other)}: {pct(gain(best, other), True)} pp")
    if sharpening(gain(best, "pass1_sampled"), gain(best, "pass1_greedy")):
        lines.append(f"the gain {SHARPENING}")
    cls = "optimistic " + _signed_class(main) if v.optimistic else _signed_class(main)
    return card("Reported gain over the base", pct(main, True), lines, cls, unit="pp")


def _gains_card(v: RunView) -> str:
    other = other_metric(v.history, v.metric)
    lines = [
        f"{label(r)}: "
        + (
            f"{pct(r.figures.raw.get('delta_from_prev'), True)} pp"
            + (f" (greedy {pct(gain(r, other, 'from_prev'), True)})" if other == "pass1_greedy" else "")
            if r.trained
            else "not trained"
        )
        for r in v.history[1:]
    ]
    trained = sum(r.trained for r in v.history)
    return card("Gain of each round", f"{trained} trained", lines + ["each over the round before it"])


def _regressions_card(v: RunView) -> str:
    lines = []
    for r in v.history[1:]:
        d = r.figures.raw.get("delta_from_prev")
        if d and d.get("value") is not None and d["value"] < 0:
            sure = "CI below 0" if d["ci"][1] < 0 else "CI includes 0: may be noise"
            lines.append(f"{label(r)}: {pct(d, True)} pp ({sure})")
    return card(
        "Regressions",
        str(len(lines)) if lines else "none",
        lines or ["no round fell below the round before it"],
        "down" if lines else "",
    )


def _stop_card(v: RunView) -> str:
    last = v.history[-1]
    if not v.summary:
        return card("Stopped", "unfinished", ["summary.json is missing: the run has not finished"])
    lines = [v.summary.stopped] + ([f"policy: {v.summary.stopped_by}"] if v.summary.stopped_by else [])
    stop = v.summary.policy_stop
    if stop and not stop.enforced and stop.round != last.round:
        lines.append(f"the policies would have stopped at round {stop.round}: {stop.reason}")
    return card("Stopped", f"after {label(last)}" if last.round else "base only", lines)


def _task(task: dict[str, Any] | None) -> str:
    if not task:
        return "–"
    where = task.get("path") or ""
    opts = ", ".join(f"{k}={v}" for k, v in (task.get("options") or {}).items())
    parts = [task.get("name", "?") + (f" {where}" if where else ""), f"split {task.get('split')}"]
    parts += [f"limit {task['limit']}"] if task.get("limit") else []
    return " · ".join(parts + ([opts] if opts else []))


def config_rows(cfg: RunConfig) -> list[list[str]]:
    """The settings that define the experiment, one line per config section."""

    def g(key: str, default: Any = "?") -> Any:
        return cfg.get(key, default)

    validation, retry = g("evaluation.validation", 0), g("conditions.retry", "retry")
    growth, passes = g("training.steps_growth", 1.0), g("training.improve_steps", 1)
    condition = [
        f"first attempt: {g('conditions.first', 'first_attempt')}, {g('conditions.samples', 1)} a problem",
        f"retry: {retry}, up to {g('conditions.retries', 1)} turn(s)"
        + (f" of {g('conditions.retry_samples', 1)} samples" if g("conditions.retry_samples", 1) > 1 else ""),
        f"retry prompt “{g('conditions.retry_prompt')}”",
        f"a retry sees {g('conditions.history', 'all')} earlier attempts",
        f"privileged information: {PRIVILEGED.get(retry, 'none')}",
    ]
    filtering = [
        f"require {g('filter.require', 'answer')}",
        f"at most {g('filter.max_per_problem', 1)} a problem",
        f"first attempts {'kept' if g('filter.include_first_attempts', False) else 'not kept'}",
        f"dedupe {g('filter.dedupe', True)}",
        f"hint leaks: {g('filter.hint_leaks', 'drop')}",
    ]
    training = [
        f"{g('training.method', 'lora')} (rank {g('training.rank')}, alpha {g('training.alpha')})",
        f"{g('training.steps')} steps a round" + (f" (×{growth} each round)" if growth != 1.0 else ""),
        f"lr {g('training.lr')}",
        f"batch {g('training.batch_size')} × {g('training.grad_accum', 1)}",
        f"between rounds: {g('training.between_rounds', 'continue')}",
    ] + ([f"{passes} improve passes"] if passes > 1 else [])
    select = g("evaluation.select_on", None) or (
        "validation" if validation or g("evaluation.validation_task", None) else "last"
    )
    evaluation = [
        f"metric {g('evaluation.metric', 'pass1_sampled')}",
        f"greedy {g('evaluation.greedy', True)}",
        f"reported round: {CHOSEN.get(select, select)}",
        f"{g('evaluation.samples')} samples",
        f"pass@N with N = {g('evaluation.retry_n')}",
        f"retry turn to every problem: {g('evaluation.retry_all', False)}",
        f"{g('evaluation.bootstrap')} bootstrap resamples",
    ]
    stopping = [
        f"policies {', '.join(g('stopping.policies', []))}",
        f"min retry yield {g('stopping.min_retry_yield')}",
        f"max {g('stopping.max_rounds')} rounds",
        f"patience {g('stopping.patience')}",
        f"enforced {g('stopping.enforce', True)}",
    ]
    scale = toy_world(cfg)
    world = (
        ""
        if scale is None
        else (
            f" · toy world: retries written at {scale:g}× the first attempt's error rate"
            + (" (neutral)" if scale == 1.0 else " (planted)")
        )
    )
    cut = "judged on their text" if g("verifier.judge_cut_text", False) else "incorrect ('cut at length')"
    return [
        ["model", f"{g('model.path')} (dtype {g('model.dtype', 'auto')}){world}"],
        [
            "training problems",
            _task(g("train_task", None)) + (f" · {validation} held out for validation" if validation else ""),
        ],
        ["test problems", _task(g("eval_task", None))],
        *(
            [["validation problems", _task(g("evaluation.validation_task"))]]
            if g("evaluation.validation_task", None)
            else []
        ),
        *([["transfer problems", _task(g("transfer_task"))]] if g("transfer_task", None) else []),
        [
            "verifier",
            f"{g('verifier.name')}"
            + (f" {g('verifier.options')}" if g("verifier.options", None) else "")
            + f" · generations cut at the length limit: {cut}",
        ],
        ["condition", " · ".join(condition)],
        ["filter", " · ".join(filtering)],
        ["training", " · ".join(training)],
        [
            "sampling",
            f"temperature {g('sampling.temperature')} · top_p {g('sampling.top_p')} · "
            f"max {g('sampling.max_new_tokens')} new tokens",
        ],
        ["evaluation", " · ".join(evaluation)],
        ["stopping", " · ".join(stopping)],
        ["seed", str(g("seed"))],
    ]


def config_section(v: RunView) -> str:
    hypothesis = v.cfg.get("description", "")
    body = (
        f'<p class="hypothesis">{esc(hypothesis)}</p>'
        if hypothesis
        else '<p class="empty">No hypothesis: config.yaml has no description.</p>'
    )
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(val)}</td></tr>" for k, val in config_rows(v.cfg))
    text = (v.path / "config.yaml").read_text(encoding="utf-8") if (v.path / "config.yaml").exists() else ""
    body += f'<div class="scroll"><table class="config"><tbody>{rows}</tbody></table></div>'
    body += (
        f'<details class="config-file"><summary>config.yaml, as run</summary><pre>{esc(text)}</pre></details>'
    )
    return section("config", "Hypothesis and configuration", body)


# ----------------------------------------------------------------------------- the tables

ROUND_COLUMNS = {
    "stage": "round",
    "metric": "{metric} %",
    "delta_base": "Δ base pp",
    "delta_base_other": "Δ base {other} pp",
    "delta_prev": "Δ previous pp",
    "decay": "decay",
    "retry_yield": "retry yield %",
    "examples": "training examples",
    "decision": "decision",
    "reason": "why",
}


def round_columns(v: RunView) -> dict[str, str]:
    """The round table's columns; the other pass@1's gain only where the rounds measured it."""
    other = other_metric(v.history, v.metric)
    return {
        k: h.format(metric=METRIC_NAMES.get(v.metric, v.metric), other=METRIC_NAMES.get(other or "", ""))
        for k, h in ROUND_COLUMNS.items()
        if other or k != "delta_base_other"
    }


def round_cells(r: RoundResult, metric: str, best: int, last: bool, other: str | None = None) -> list[str]:
    f, train = r.figures.raw, r.figures.raw.get("train") or {}
    decision = "" if r.round == 0 else ("stop" if last else "would stop") if r.decision.stop else "continue"
    return [
        label(r) + (" (reported)" if r.round == best else ""),
        pct(f["eval"][metric]) if "eval" in f else "not trained",
        pct(f.get("delta_from_base"), True),
        *([pct(gain(r, other), True)] if other else []),
        pct(f.get("delta_from_prev"), True),
        ratio(f.get("decay")),
        pct(train.get("retry_yield")),
        str(train["examples"]["kept"]) if "examples" in train else "–",
        decision,
        r.decision.reason + (f" [{r.decision.policy}]" if r.decision.policy else ""),
    ]


def rounds_section(v: RunView) -> str:
    best = v.best.round
    other = other_metric(v.history, v.metric)
    rows = [round_cells(r, v.metric, best, r is v.history[-1], other) for r in v.history]
    columns = round_columns(v)
    body = table(
        list(columns.values()),
        rows,
        ident="rounds",
        keys=list(columns),
        row_ids=[str(r.round) for r in v.history],
        row_classes=["best" if r.round == best else "" for r in v.history],
    )
    body += caption(
        "Δ base: the change from the base model; Δ previous: from the round before, both paired over the "
        "same test problems. Decay: this round's gain divided by the previous round's. Retry yield: the "
        "share of the training problems whose first attempt failed (the frontier) that a retry solved; "
        "the verifier told the model it was wrong, so it is an oracle-assisted rate. Training examples: "
        "the correct retries kept by the filter. A round that stops before training is not trained and "
        "not evaluated. The reported round is "
        + (CHOSEN["test"] if v.optimistic else CHOSEN.get(v.chosen_on, v.chosen_on))
        + ". "
        + "".join(f"{line}. " for line in undefined_lines(v.history))
        + CI_NOTE
    )
    flips = gained_rows(v)
    if flips:
        body += "<h3>Problems gained and lost since the previous round</h3>"
        body += table(["round", "metric", "gained", "lost", "unchanged", "sign test p"], flips)
        body += caption(
            "Each test problem's value of the headline metric against the previous round's on "
            "the same problem. For sampled pass@1 that value is the share of its samples "
            "judged right: a problem is gained when more of its samples are right than before, "
            "lost when fewer are. For greedy pass@1 it is right or wrong: gained is wrong → "
            "right, lost is right → wrong. An exact sign test on the problems that moved "
            "(McNemar's exact test for right/wrong outcomes)."
        )
    return section("rounds", "Round by round", body)


def gained_rows(v: RunView) -> list[list[str]]:
    """Per round, the problems the headline metric gained and lost since the round before (records from before
    this was measured on the headline metric hold greedy right/wrong flips, shown as such)."""
    rows = []
    for r in v.history:
        f = r.figures.comparison.flips_vs_prev if r.figures.comparison else None
        if f is None:
            continue
        if f.legacy:
            rows.append(
                [label(r), f"{f.metric} right/wrong", str(f.gained), str(f.lost), "–", p_text(f.p_value)]
            )
        else:
            rows.append(
                [
                    label(r),
                    METRIC_NAMES.get(f.metric, f.metric),
                    str(f.gained),
                    str(f.lost),
                    str(f.unchanged),
                    p_text(f.p_value),
                ]
            )
    return rows


def headroom_section(v: RunView) -> str:
    n = v.history[0].figures.raw["eval"].get("retry_n", "N")
    body = table(GAP_HEAD, gap_rows(v.history), ident="headroom")
    body += caption(
        f"pass@1: mean success of the sampled first attempts. pass@N with retries (N = {n}): a problem "
        f"counts as solved when its first sample or a retry turn after it (up to {n} attempts in all, "
        "each retry seeing the failed attempts) is right. The gap between them is the stochastic "
        "headroom a round can absorb into the weights; gap absorbed = (base gap − this gap) / base gap. "
        + CI_NOTE
    )
    cut = cut_lines(v.history)
    if cut:
        body += caption(
            "Generations cut at the length limit (no ending, so judged wrong; a large share means too "
            "low a max_new_tokens, or a model that does not end its turns): " + "; ".join(cut) + "."
        )
    return section("headroom", "Stochastic headroom", body)


def sets_section(v: RunView) -> str:
    head, rows = split_rows(v.history, v.metric)
    if not rows:
        return ""
    body = table(head, rows, ident="sets")
    body += caption(
        "validation: training problems held out of every round (evaluation.validation); with it the best "
        "round and the stopping gains are chosen there, so the test figures are not picked on the test "
        "set. transfer: a second test set from another distribution (transfer_task), to see whether a "
        "gain is more than fitting the test distribution. " + CI_NOTE
    )
    return section("sets", "Other evaluation sets", body)


LIFT_HEAD = ["round", "lift pp", "retry turn solved %", "fresh sample solved %", "frontier problems", "test"]
FLIP_HEAD = [
    "round",
    "wrong → right",
    "right → wrong",
    "right → right",
    "wrong → wrong",
    "net pp",
    "McNemar p",
]


def retry_rows(v: RunView) -> tuple[list[list[str]], list[list[str]]]:
    """The retry lift per round, and the flips of a retry turn given to every problem (with retry_all)."""
    lift_rows, flip_rows = [], []
    for r in v.history:
        e = r.figures.raw.get("eval")
        if not e:
            continue
        lift = e.get("retry_lift") or {}
        if lift.get("value") is None:
            lift_rows.append([label(r), "–", "–", "–", str(lift.get("n", 0)), lift.get("reason") or "–"])
        else:
            lift_rows.append(
                [
                    label(r),
                    pct(lift, True),
                    pct(lift["retry"]),
                    pct(lift["fresh"]),
                    str(lift["n"]),
                    f"McNemar p={p_text(lift['mcnemar']['p_value'])}",
                ]
            )
        f = e.get("flips")
        if f:
            flip_rows.append(
                [
                    label(r),
                    str(f["wrong_to_right"]),
                    str(f["right_to_wrong"]),
                    str(f["right_to_right"]),
                    str(f["wrong_to_wrong"]),
                    pct(f["net"], True),
                    p_text(f["mcnemar"]["p_value"]),
                ]
            )
    return lift_rows, flip_rows


def retry_section(v: RunView) -> str:
    lift_rows, flip_rows = retry_rows(v)
    body = "<h3>Retry lift</h3>" + table(LIFT_HEAD, lift_rows, ident="retry-lift")
    body += caption(
        "On the test problems whose sample 0 was wrong: the first retry turn against an independent "
        "second sample, the same budget of one more attempt. A positive lift means the retry turn beats "
        "sampling again. " + CI_NOTE
    )
    if flip_rows:
        body += f"<h3>A retry turn for every problem</h3>{table(FLIP_HEAD, flip_rows, ident='flips')}"
        body += caption(
            "With evaluation.retry_all every test problem's sample 0 gets a retry turn, right or wrong: "
            "what the turn fixes and what it breaks; net is the change of accuracy it causes."
        )
    return section("retry", "What the retry turn does", body)


# ----------------------------------------------------------------------------- compute

_GPUS = re.compile(r"^(\d+)x ")
STAGES = {"attempts_s": "attempts", "filter_s": "filter", "train_s": "train", "eval_s": "evaluation"}


def gpus(device: str) -> int:
    """GPUs of a device string as round.json records it: "2x NVIDIA H200" -> 2, "cpu (2 cores)" -> 0."""
    m = _GPUS.match(device or "")
    return int(m[1]) if m else 0


@dataclass
class Compute:
    """Wall time and the hours it stands for: GPU-hours when every round ran on GPUs, else wall-clock hours."""

    rounds: list[tuple[RoundResult, float]]  # (round, its wall time, s)

    @classmethod
    def of(cls, v: RunView) -> Compute:
        return cls([(r, sum(r.cost.raw.get(k) or 0.0 for k in STAGES)) for r in v.history])

    @property
    def wall_s(self) -> float:
        return sum(s for _, s in self.rounds)

    @property
    def on_gpu(self) -> bool:
        return all(gpus(r.cost.raw.get("device", "")) for r, _ in self.rounds)

    @property
    def unit(self) -> str:
        """What the hours are: GPU-hours, or wall-clock hours (with where they ran)."""
        if self.on_gpu:
            return "GPU-hours"
        on_cpu = not any(gpus(r.cost.raw.get("device", "")) for r, _ in self.rounds)
        return "hours of wall time (CPU)" if on_cpu else "hours of wall time (some rounds on a GPU)"

    def hours(self, r: RoundResult, wall_s: float) -> float:
        return wall_s / 3600 * (gpus(r.cost.raw.get("device", "")) if self.on_gpu else 1)

    @property
    def total_hours(self) -> float:
        return sum(self.hours(r, s) for r, s in self.rounds)

    def hours_per_pp(self, v: RunView) -> str:
        """What one percentage point of the reported gain cost: the run's hours over the best round's gain
        from the base (test set, headline metric), with the range its 95% CI gives ("no bound" where the CI
        reaches 0); "–" without a positive gain."""
        gain = v.best.figures.raw.get("delta_from_base")
        if not v.best.round or not gain or (gain.get("value") or 0) <= 0 or self.total_hours <= 0:
            return "–"
        lo, hi = (None if x is None else x * 100 for x in gain["ci"])
        fewest = f"{self.total_hours / hi:.3g}" if hi else "–"
        most = f"{self.total_hours / lo:.3g}" if lo and lo > 0 else "no bound"
        return f"{self.total_hours / (gain['value'] * 100):.3g} [{fewest}, {most}]"

    def headline(self, v: RunView) -> list[str]:
        hours = f"{self.total_hours:.3g} {'GPU-hours' if self.on_gpu else 'hours of wall time'}"
        tokens = sum(r.cost.raw.get("tokens_generated", 0) for r, _ in self.rounds)
        lines = [f"{hours} · {count(tokens)} tokens generated"]
        if v.best.round and self.hours_per_pp(v) != "–":
            metric = METRIC_NAMES.get(v.metric, v.metric)
            lines.append(f"{self.unit} per pp of {metric} gained on the test set: {self.hours_per_pp(v)}")
        return lines


def compute_rows(compute: Compute) -> tuple[list[str], list[list[str]]]:
    """Per round: device, each stage's wall time, tokens generated and trained, hours; and the totals."""
    hours_head = "GPU-hours" if compute.on_gpu else "hours (wall)"
    rows = [
        [
            label(r),
            r.cost.raw.get("device", "–"),
            *(duration(r.cost.raw.get(k)) for k in STAGES),
            duration(s),
            count(r.cost.raw.get("tokens_generated")),
            count(r.cost.raw.get("tokens_trained")),
            f"{compute.hours(r, s):.3g}",
        ]
        for r, s in compute.rounds
    ]
    rows.append(
        [
            "total",
            "",
            *(duration(sum(r.cost.raw.get(k) or 0.0 for r, _ in compute.rounds)) for k in STAGES),
            duration(compute.wall_s),
            count(sum(r.cost.raw.get("tokens_generated", 0) for r, _ in compute.rounds)),
            count(sum(r.cost.raw.get("tokens_trained", 0) for r, _ in compute.rounds)),
            f"{compute.total_hours:.3g}",
        ]
    )
    return [
        "round",
        "device",
        *STAGES.values(),
        "wall time",
        "tokens generated",
        "tokens trained",
        hours_head,
    ], rows


def compute_section(v: RunView, compute: Compute) -> str:
    body = table(*compute_rows(compute), ident="compute")
    metric = METRIC_NAMES.get(v.metric, v.metric)
    per = (
        f"Cost of the gain: {compute.hours_per_pp(v)} {compute.unit} per percentage point of {metric} "
        f"gained on the test set, the hours the whole run spent over the reported round's gain from the "
        f"base (the range from its 95% CI; no bound where the CI reaches 0)."
        if compute.hours_per_pp(v) != "–"
        else ""
    )
    body += caption(
        "Wall time of each stage as recorded when it ran: a resumed run keeps the timing of the stages it "
        "skipped, and a stage resumed from its checkpoints counts only its last part. Tokens generated: "
        "training attempts and evaluation; tokens trained: the SFT tokens the trainer saw. "
        + (
            "GPU-hours: GPUs × wall time. "
            if compute.on_gpu
            else "Not every round ran on a GPU, so hours are wall-clock hours. "
        )
        + per
    )
    return section("compute", "Compute", body)


# ----------------------------------------------------------------------------- plots


def _figure() -> tuple[Any, Any]:
    from matplotlib.figure import Figure  # a bare Figure renders with Agg: no pyplot, no display

    fig = Figure(figsize=(6.4, 3.5), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, alpha=0.3)
    return fig, ax


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _on_split(figures: dict[str, Any], split: str) -> dict[str, Any]:
    """A round's figures on one evaluation set, as round.json holds them (the test set's at the top)."""
    return figures if split == "test" else figures.get(split, {})


def _errorbars(ax: Any, points: list[tuple[float, dict[str, Any] | None]], name: str, **style: Any) -> None:
    """Figures in percent with their CIs as error bars; figures without a value are left out."""
    pts = [(x, f) for x, f in points if f and f.get("value") is not None and None not in f["ci"]]
    if not pts:
        return
    xs = [x for x, _ in pts]
    ys = [100 * f["value"] for _, f in pts]
    err = [
        [max(0.0, y - 100 * f["ci"][0]) for y, (_, f) in zip(ys, pts)],
        [max(0.0, 100 * f["ci"][1] - y) for y, (_, f) in zip(ys, pts)],
    ]
    ax.errorbar(xs, ys, yerr=err, capsize=4, marker="o", label=name, **style)


def _round_axis(ax: Any, rounds: list[int]) -> None:
    ax.set_xticks(rounds, ["base" if k == 0 else str(k) for k in rounds])
    ax.set_xlabel("round")


def accuracy_plot(v: RunView) -> Any:
    fig, ax = _figure()
    evaluated = [r for r in v.history if "eval" in r.figures.raw]
    present = [s for s in SETS if any("eval" in _on_split(r.figures.raw, s) for r in evaluated)]
    for i, s in enumerate(present):
        shift = (i - (len(present) - 1) / 2) * 0.06
        _errorbars(
            ax,
            [(r.round + shift, _on_split(r.figures.raw, s).get("eval", {}).get(v.metric)) for r in evaluated],
            f"{s} set",
        )
    ax.axvline(v.best.round, color="grey", linestyle=":", label="best round")
    _round_axis(ax, [r.round for r in evaluated])
    ax.set_ylabel(f"{METRIC_NAMES.get(v.metric, v.metric)} %")
    ax.legend(fontsize=8)
    return fig


def gap_plot(v: RunView) -> Any:
    fig, ax = _figure()
    evaluated = [r for r in v.history if "eval" in r.figures.raw]
    n = evaluated[0].figures.raw["eval"].get("retry_n", "N")
    low = [(r.round, r.figures.raw["eval"]["pass1_sampled"]) for r in evaluated]
    high = [(r.round, r.figures.raw["eval"]["pass_n_retry"]) for r in evaluated]
    _errorbars(ax, low, "pass@1 (sampled)")
    _errorbars(ax, high, f"pass@{n} with retries")
    ax.fill_between(
        [x for x, _ in low],
        [100 * f["value"] for _, f in low],
        [100 * f["value"] for _, f in high],
        alpha=0.15,
        color="grey",
        label="gap",
    )
    _round_axis(ax, [r.round for r in evaluated])
    ax.set_ylabel("test problems solved %")
    ax.legend(fontsize=8)
    return fig


def _trained_rounds(v: RunView) -> list[RoundResult]:
    return [r for r in v.history if r.figures.raw.get("train")]


def retry_yield_plot(v: RunView) -> Any:
    rounds = _trained_rounds(v)
    if not rounds:
        return None
    fig, ax = _figure()
    _errorbars(ax, [(r.round, r.figures.raw["train"].get("retry_yield")) for r in rounds], "retry yield")
    threshold = v.cfg.get("stopping.min_retry_yield")
    if threshold is not None:
        active = "retry_yield" in v.cfg.get("stopping.policies", [])
        ax.axhline(
            100 * threshold,
            color="tab:red",
            linestyle="--",
            label=f"stopping.min_retry_yield{'' if active else ' (policy not used)'}",
        )
    _round_axis(ax, [r.round for r in rounds])
    ax.set_ylabel("frontier solved by a retry %")
    ax.legend(fontsize=8)
    return fig


def training_set_plot(v: RunView) -> Any:
    rounds = _trained_rounds(v)
    if not rounds:
        return None
    fig, ax = _figure()
    bars = {
        "frontier (first attempt wrong)": [r.figures.raw["train"].get("frontier", 0) for r in rounds],
        "solved by a retry": [r.figures.raw["train"].get("retry_solved", 0) for r in rounds],
        "training examples kept": [r.figures.raw["train"].get("examples", {}).get("kept", 0) for r in rounds],
    }
    width = 0.8 / len(bars)
    for i, (name, heights) in enumerate(bars.items()):
        ax.bar([r.round + (i - (len(bars) - 1) / 2) * width for r in rounds], heights, width, label=name)
    _round_axis(ax, [r.round for r in rounds])
    ax.set_ylabel("training problems / examples")
    ax.legend(fontsize=8)
    return fig


PLOT_MAKERS: dict[str, Callable[[RunView], Any]] = {
    "accuracy": accuracy_plot,
    "gap": gap_plot,
    "retry_yield": retry_yield_plot,
    "training_set": training_set_plot,
}
PLOTS = tuple(PLOT_MAKERS)


def plot_captions(v: RunView) -> dict[str, str]:
    n = v.history[0].figures.raw["eval"].get("retry_n", "N")
    return {
        "accuracy": f"{METRIC_NAMES.get(v.metric, v.metric)} per round on each evaluation set, with 95% bootstrap "
        "CIs over problems; the dotted line marks the best round.",
        "gap": f"Sampled pass@1 against pass@{n} with retries per round on the test set; the shaded band is the "
        "stochastic gap. Training on correct retries should lift pass@1 towards the upper line.",
        "retry_yield": "Share of the failed training problems that a retry solved, per round, against the stopping "
        "threshold stopping.min_retry_yield (the retry_yield policy stops before training below it).",
        "training_set": "Per round: training problems whose first attempt was wrong, those a retry solved, and the "
        "examples the filter kept for training.",
    }


def make_plots(v: RunView) -> dict[str, bytes]:
    """PNG bytes by plot name; plots without data (no training round) are left out."""
    out = {}
    for name, make in PLOT_MAKERS.items():
        fig = make(v)
        if fig is not None:
            out[name] = _png(fig)
    return out


def plots_section(v: RunView, plots: dict[str, bytes]) -> str:
    captions = plot_captions(v)
    figs = "".join(
        f'<figure><img class="plot" id="plot-{name}" alt="{esc(name)} plot" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<figcaption>{esc(captions[name])} (plots/{name}.png)</figcaption></figure>"
        for name, png in plots.items()
    )
    missing = (
        ""
        if len(plots) == len(PLOTS)
        else caption(
            "Retry yield and training-set plots need a round with training attempts; this run has none."
        )
    )
    return section("plots", "Plots", f'<div class="plots">{figs}</div>{missing}')


# ----------------------------------------------------------------------------- transcripts


@dataclass
class Transcript:
    """One problem's attempts in a round: the chain (sample 0 and its retry turns) decides the outcome."""

    problem_id: str
    outcome: str
    chain: list[Attempt]
    others: list[Attempt]  # the greedy attempt and further samples

    @property
    def prompt(self) -> str:
        return next((m.content for m in reversed(self.chain[0].messages) if m.role == "user"), "")


def outcome_of(chain: list[Attempt]) -> str:
    """right / wrong-right / wrong-wrong / right-wrong / unjudged, from sample 0 and the retry turns after it."""
    first, retries = chain[0].verdict.correct, [a.verdict.correct for a in chain[1:]]
    if first is None:
        return "unjudged"
    if first:
        return "right-wrong" if retries and retries[0] is not True else "right"
    return "wrong-right" if any(x is True for x in retries) else "wrong-wrong"


def transcripts(attempts: list[Attempt]) -> list[Transcript]:
    """Transcripts of an attempts file (evaluation or training), problems in the order the file first names them."""
    by_problem: dict[str, list[Attempt]] = {}
    for a in attempts:
        by_problem.setdefault(a.problem_id, []).append(a)
    out = []
    for pid, mine in by_problem.items():
        first = [a for a in mine if a.turn == 0 and a.sample == 0 and a.kind != Kind.GREEDY]
        if not first:
            continue
        chain = first[:1] + sorted((a for a in mine if a.kind == Kind.RETRY), key=lambda a: a.turn)
        others = [a for a in mine if a not in chain]
        out.append(Transcript(pid, outcome_of(chain), chain, others))
    return out


def choose(items: list[Transcript], cap: int) -> list[Transcript]:
    """At most `cap` transcripts, the same ones every time: taken in turn from each outcome (in an order
    fixed by a hash of the problem id), so rare outcomes are shown too; returned in their original order."""
    if len(items) <= cap:
        return items
    key = {t.problem_id: hashlib.sha256(t.problem_id.encode()).hexdigest() for t in items}
    queues = [sorted((t for t in items if t.outcome == o), key=lambda t: key[t.problem_id]) for o in OUTCOMES]
    picked: set[str] = set()
    depth = 0
    while len(picked) < cap:
        for q in queues:
            if depth < len(q) and len(picked) < cap:
                picked.add(q[depth].problem_id)
        depth += 1
    return [t for t in items if t.problem_id in picked]


def clip(text: str, cap: int = TEXT_CAP) -> str:
    """At most about `cap` characters: the start and the end, where the answer usually is."""
    if len(text) <= cap:
        return text
    head, tail = cap // 3, cap - cap // 3
    return f"{text[:head]}\n[… {len(text) - cap} characters left out …]\n{text[-tail:]}"


def short(text: str, cap: int) -> str:
    """One line of at most `cap` characters."""
    line = " ".join(text.split())
    return line if len(line) <= cap else line[: cap - 1] + "…"


def _attempt_name(a: Attempt) -> str:
    if a.kind in (Kind.RETRY, Kind.GREEDY):
        return f"retry turn {a.turn}" if a.kind == Kind.RETRY else "greedy attempt"
    return f"sample {a.sample}" if a.sample else "first attempt (sample 0)"


def attempt_html(a: Attempt, prompt: str) -> str:
    v = a.verdict
    state, word = (
        ("ok", "✓ right")
        if v.correct
        else ("unk", "? cannot judge")
        if v.correct is None
        else ("bad", "✗ wrong")
    )
    meta = [_attempt_name(a), word, f"extracted: {v.extracted if v.extracted is not None else '–'}"]
    meta += [v.reason] if v.reason else []
    meta += [f"{a.n_tokens} tokens" + (" (cut at the length limit)" if a.finish_reason == "length" else "")]
    asked = next((m.content for m in reversed(a.messages) if m.role == "user"), "")
    sees = f'<div class="sees">asked: <q>{esc(clip(asked, 600))}</q></div>' if asked != prompt else ""
    details = f'<div class="meta">details: {esc(v.details)}</div>' if v.details else ""
    steps = f'<div class="meta">steps: {"".join("✓" if s else "✗" for s in v.steps)}</div>' if v.steps else ""
    return (
        f'<div class="attempt {state}"><div class="meta">{esc(" · ".join(meta))}</div>{sees}'
        f"<pre>{esc(clip(a.completion))}</pre>{steps}{details}</div>"
    )


def transcript_html(t: Transcript) -> str:
    answers = " → ".join(
        "–" if a.verdict.extracted is None else short(a.verdict.extracted, 40) for a in t.chain
    )
    body = "".join(attempt_html(a, t.prompt) for a in t.chain + t.others)
    return (
        f'<details class="tx" data-outcome="{esc(t.outcome)}" data-problem="{esc(t.problem_id)}"><summary>'
        f'<span class="badge o-{esc(t.outcome)}">{esc(OUTCOMES[t.outcome])}</span> <code>{esc(t.problem_id)}</code>'
        f' <span class="prompt">{esc(short(t.prompt, 160))}</span>'
        f' <span class="answers">answers: {esc(answers)}</span>'
        f"</summary><pre>{esc(clip(t.prompt))}</pre>{body}</details>"
    )


def transcript_blocks(v: RunView, cap: int) -> list[tuple[str, str, list[Transcript], int]]:
    """(block id, title, sampled transcripts, problems in all): each round's test evaluation and training attempts."""
    blocks = []
    for r in v.history:
        folder = v.path / f"round_{r.round}"
        for kind, file, what in (
            ("test", f"{eval_name('test')}_attempts.jsonl", "test evaluation"),
            ("train", "attempts.jsonl", "training attempts"),
        ):
            if (folder / file).exists():
                items = transcripts([attempt_from_dict(d) for d in read_jsonl(folder / file)])
                blocks.append((f"r{r.round}-{kind}", f"{label(r)} · {what}", choose(items, cap), len(items)))
    return blocks


def transcripts_section(v: RunView, cap: int) -> str:
    blocks = transcript_blocks(v, cap)
    if not blocks:
        return section(
            "transcripts", "Transcripts", '<p class="empty">No transcripts in this run directory.</p>'
        )
    options = "".join(
        f'<option value="{esc(b)}">{esc(title)} ({len(items)} of {n} problems)</option>'
        for b, title, items, n in blocks
    )
    buttons = '<button type="button" data-outcome="all">all<span class="n"></span></button>' + "".join(
        f'<button type="button" data-outcome="{esc(o)}">{esc(name)}<span class="n"></span></button>'
        for o, name in OUTCOMES.items()
    )
    rendered = "".join(
        f'<div class="tx-block" data-block="{esc(b)}">{"".join(map(transcript_html, items))}</div>'
        for b, _, items, _ in blocks
    )
    body = (
        f'<div id="transcripts"><div class="controls"><select aria-label="round and set">{options}</select>'
        f'{buttons}<span class="tx-count meta"></span></div>{rendered}</div>'
    )
    body += caption(
        f"Up to {cap} problems per round and set, the same ones on every build, taken in turn from each "
        "outcome so that rare ones show. The outcome follows sample 0 (the first attempt) and the retry "
        "turns after it: right first time; wrong → right when a retry fixed it; wrong → wrong when "
        "none did (or none was made); right → wrong when a retry turn given to a right answer "
        "(evaluation.retry_all) broke it. Greedy attempts and further samples are shown below the "
        "chain. Long completions are cut in the middle; full records: round_k/eval_attempts.jsonl "
        "and round_k/attempts.jsonl."
    )
    return section("transcripts", "Transcripts", body)


# ----------------------------------------------------------------------------- the pages

NAV = {
    "config": "configuration",
    "prediction": "prediction",
    "rounds": "rounds",
    "decay": "decay",
    "headroom": "headroom",
    "amortized": "amortized inference",
    "sets": "other sets",
    "retry": "retry turn",
    "conclusion": "conclusion",
    "related": "related approaches",
    "caveats": "caveats",
    "compute": "compute",
    "plots": "plots",
    "transcripts": "transcripts",
}


def written_html(s: Section) -> str:
    """A written section of the experiment page (report/page.py): its paragraphs, numbers linked to their tables."""
    body = "".join(f'<p class="{esc(p.kind)}">{html_pieces(p.pieces)}</p>' for p in s.paragraphs)
    for i, (title, head, rows) in enumerate(s.tables):
        body += f"<h3>{esc(title)}</h3>" + table(head, rows, ident=f"{s.ident}-{i}")
    return section(s.ident, s.title, f'<div class="written">{body}</div>')


def dashboard_html(
    v: RunView, plots: dict[str, bytes], sample: int = SAMPLE, index: str | None = None
) -> str:
    compute = Compute.of(v)
    written = {s.ident: written_html(s) for s in written_sections(v)}
    sections = {
        "config": config_section(v),
        "prediction": written.get("prediction", ""),
        "rounds": rounds_section(v),
        "decay": written.get("decay", ""),
        "headroom": headroom_section(v),
        "amortized": written.get("amortized", ""),
        "sets": sets_section(v),
        "retry": retry_section(v),
        "conclusion": written.get("conclusion", ""),
        "related": written.get("related", ""),
        "caveats": written.get("caveats", ""),
        "compute": compute_section(v, compute),
        "plots": plots_section(v, plots),
        "transcripts": transcripts_section(v, sample),
    }
    nav = "".join(f'<a href="#{k}-section">{esc(NAV[k])}</a>' for k, s in sections.items() if s)
    back = f'<a href="{esc(index)}">← all experiments</a>' if index else ""
    head = (
        f"<header>{back}<h1>{esc(v.name)}</h1>"
        f'<p class="lede">{esc(v.path.resolve())} · {len(v.history) - 1} round(s) after the base · '
        f"metric {esc(METRIC_NAMES.get(v.metric, v.metric))}</p><nav>{nav}</nav></header>"
    )
    main = headline(v, compute) + "".join(sections.values())
    return page(f"{v.name} · secondtry", f"{head}<main>{main}</main>")


def page_markdown(v: RunView) -> str:
    """The experiment page as Markdown (for a paper's appendix or a pull request): the same sections, tables and
    figures as the HTML page, without plots and transcripts."""
    from .page import markdown_section
    from .tables import gap_rows, markdown_table, reported_lines

    compute = Compute.of(v)
    written = {s.ident: markdown_section(s) for s in written_sections(v)}
    best = v.best.round
    other = other_metric(v.history, v.metric)
    rounds = [round_cells(r, v.metric, best, r is v.history[-1], other) for r in v.history]
    parts = [
        f"# {v.name}",
        "",
        *(f"{line}" for line in [world_line(v.cfg)] if line),
        *reported_lines(v.history, v.summary),
        "",
        CI_NOTE,
        "",
        "## Configuration",
        "",
        markdown_table(["", "setting"], config_rows(v.cfg)),
        "",
        written.get("prediction", ""),
        "## Round by round",
        "",
        markdown_table(list(round_columns(v).values()), rounds),
        "",
        written.get("decay", ""),
        "## Stochastic headroom",
        "",
        markdown_table(GAP_HEAD, gap_rows(v.history)),
        "",
        written.get("amortized", ""),
    ]
    head, rows = split_rows(v.history, v.metric)
    if rows:
        parts += ["## Other evaluation sets", "", markdown_table(head, rows), ""]
    lift_rows, flip_rows = retry_rows(v)
    parts += ["## What the retry turn does", "", markdown_table(LIFT_HEAD, lift_rows), ""]
    if flip_rows:
        parts += [markdown_table(FLIP_HEAD, flip_rows), ""]
    parts += [written.get(k, "") for k in ("conclusion", "related", "caveats")]
    parts += ["## Compute", "", markdown_table(*compute_rows(compute)), ""]
    return "\n".join(parts).rstrip() + "\n"


def build_dashboard(run: Path, sample: int = SAMPLE, index: Path | None = None) -> Path:
    """Write RUN/report/index.html and RUN/report/plots/*.png; `index`: an index page to link back to."""
    v = load_run(run)
    out = run / "report"
    plots = make_plots(v)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    for name in PLOTS:
        file = out / "plots" / f"{name}.png"
        if name in plots:
            file.write_bytes(plots[name])
        else:
            file.unlink(missing_ok=True)  # left by an earlier build; this run has no data for it now
    back = os.path.relpath(index, out) if index else None
    write_text(out / "index.html", dashboard_html(v, plots, sample, back and Path(back).as_posix()))
    return out / "index.html"


INDEX_HEAD = [
    "run",
    "description",
    "model",
    "retry condition",
    "rounds trained",
    "base %",
    "reported round",
    "Δ base pp",
    "Δ base greedy pp",
    "stopped",
    "wall time",
]


def index_row(folder: Path, run: Path) -> tuple[str, list[str]]:
    """The run's name cell (a link to its dashboard when it has results) and its other cells."""
    cfg = read_config(run)
    desc = cfg.get("description", "")
    model = Path(str(cfg.get("model.path", "?"))).name
    retry = cfg.get("conditions.retry", "retry")
    condition = retry + (f" (privileged: {PRIVILEGED[retry]})" if retry in PRIVILEGED else "")
    if not has_results(run):
        return esc(run.name), [desc, model, condition, "–", "–", "–", "–", "–", "not started", "–"]
    v = load_run(run)
    link = Path(os.path.relpath(run / "report" / "index.html", folder)).as_posix()
    best = v.best
    chosen = " (chosen on the test set: optimistic)" if v.optimistic else f" ({v.chosen_on})"
    return f'<a href="{esc(link)}">{esc(v.name)}</a>', [
        desc,
        model,
        condition,
        str(sum(r.trained for r in v.history)),
        pct(v.history[0].figures.raw["eval"][v.metric]),
        label(best) + chosen,
        pct(best.figures.raw.get("delta_from_base"), True) if best.round else "none",
        pct(gain(best, "pass1_greedy"), True) if best.round else "none",
        v.summary.stopped if v.summary else "unfinished",
        duration(Compute.of(v).wall_s),
    ]


def index_html(folder: Path, runs: list[Path]) -> str:
    rows = []
    for run in runs:
        name, cells = index_row(folder, run)
        rows.append(f"<tr><td>{name}</td>{''.join(map(td, cells))}</tr>")
    th = "".join(f"<th>{esc(h)}</th>" for h in INDEX_HEAD)
    body = section(
        "runs",
        "Runs",
        f'<div class="scroll"><table id="runs"><thead><tr>{th}</tr></thead><tbody>'
        f"{''.join(rows)}</tbody></table></div>"
        + caption(
            "Each run's reported round (the best on its validation split when it held one out; the "
            "last round; or the best on the test set, marked optimistic) and its gains from its own "
            "base model on its test set, sampled and greedy. " + CI_NOTE
        ),
    )
    done = [r for r in runs if has_results(r)]
    if len(done) > 1:
        body += section("compare", "Conditions compared", _comparison(done))
    head = f'<header><h1>Experiments</h1><p class="lede">{esc(folder.resolve())} · {len(runs)} run(s)</p></header>'
    return page("Experiments · secondtry", head + "<main>" + body + "</main>")


def _comparison(runs: list[Path]) -> str:
    body = ""
    for key, title, (head, rows) in comparison_tables(runs, Point()):
        body += f"<h3>{esc(title[0].upper() + title[1:])}</h3>" + table(head, rows, ident=f"comparison-{key}")
    body += "".join(caption(line) for line in notes(runs, Point()))
    body += caption(
        "Runs named <name>-seed<N> are seeds of one condition. A condition's figure over several seeds "
        "is the mean with a t-interval over seeds; with one seed, the run's CI over test problems. A "
        "condition against the first is tested on the per-seed differences (paired t-test), never on "
        "problems pooled over seeds; problem-level tests are shown within each seed."
    )
    return body


def build_index(folder: Path, runs: list[Path]) -> Path:
    """Write FOLDER/index.html: every run, linked to its dashboard, and the conditions compared."""
    write_text(folder / "index.html", index_html(folder, runs))
    return folder / "index.html"


# ----------------------------------------------------------------------------- serving


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass  # no line per request in the terminal


def server(root: Path, port: int = 8000) -> ThreadingHTTPServer:
    """An HTTP server for `root`, bound to 127.0.0.1 only (port 0: any free port)."""
    return ThreadingHTTPServer(("127.0.0.1", port), partial(_Handler, directory=str(root)))


def serve(root: Path, page_path: Path, port: int = 8000, echo: Callable[[str], None] = print) -> None:
    """Serve `root` on localhost until Ctrl-C, after printing the URL of `page_path`."""
    with server(root, port) as httpd:
        host, bound = httpd.server_address[:2]
        echo(
            f"serving {root} at http://{host}:{bound}/{page_path.resolve().relative_to(root.resolve()).as_posix()}"
            " — Ctrl-C stops"
        )
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            echo("stopped")
