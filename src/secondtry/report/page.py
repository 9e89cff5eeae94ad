"""The experiment page's written sections, from a run's records: prediction vs result, decay analysis (why each
round worked or stopped), amortized inference, the practical conclusion, related approaches and the caveats.

Each section is a list of paragraphs; a paragraph mixes plain text and `Fig`s, the numbers, each carrying the
record it comes from (a file of the run directory and the key path inside it) and how it was printed. The HTML
dashboard and the Markdown page (`secondtry report RUN --markdown`) render the same sections, so their
figures are identical, and tests/report/test_page.py reads every number of the prose back from its record.
"""

from __future__ import annotations

from pathlib import Path

from ..config import StoppingConfig
from ..stopping import STOPPING, StopState
from .caveats import caveats
from .prose import (
    Fig,
    Piece,
    Quote,
    Section,
    count,
    delta,
    markdown,
    rate,
    ratio,
    round_file,
    round_name,
    round_no,
    share,
)
from .runs import RunView
from .tables import CHOSEN, METRIC_NAMES, excludes_zero

# ----------------------------------------------------------------------------- the sections


def prediction_section(v: RunView) -> Section:
    s = Section("prediction", "Prediction and result")
    pred = v.cfg.get("prediction") or {}
    if v.cfg.get("description", ""):
        s.add("Hypothesis: ", Quote(v.cfg.need("description"), "config.yaml", "description"))
    if pred.get("text"):
        s.add("Prediction: ", Quote(pred["text"], "config.yaml", "prediction.text"))
    best = v.best
    gain_pp, rounds = pred.get("gain_pp"), pred.get("rounds")
    if gain_pp is None and rounds is None:
        s.add(
            "The config states no checkable prediction (prediction.gain_pp: the least gain expected from the base; "
            "prediction.rounds: the best number of rounds expected), so the result is not judged against one."
        )
        return s
    metric = METRIC_NAMES.get(v.metric, v.metric)
    if gain_pp is not None:
        predicted = Fig(f"{gain_pp:+.1f}", "config.yaml", "prediction.gain_pp", scale=1.0)
        d = best.figures.raw.get("delta_from_base") if best.round else None
        if d is None:
            s.add(
                "Predicted: a gain of at least ",
                predicted,
                f" pp in {metric}. Result: no round beat the base "
                "model, so the prediction was not borne out.",
            )
        else:
            lo, hi = d["ci"][0] * 100, d["ci"][1] * 100
            verdict = (
                "borne out: the whole CI lies at or above it"
                if lo >= gain_pp
                else "not borne out: the whole CI lies below it"
                if hi < gain_pp
                else "not settled: the CI spans the predicted gain"
            )
            s.add(
                "Predicted: a gain of at least ",
                predicted,
                f" pp in {metric}. Result: ",
                *round_name(best.round),
                " gained ",
                delta(best, "delta_from_base"),
                f" pp from the base on the test set; {verdict}.",
            )
    if rounds is not None:
        predicted = Fig(str(rounds), "config.yaml", "prediction.rounds", scale=1.0, digits=0)
        as_said = "as predicted" if best.round == rounds else "not as predicted"
        s.add(
            "Predicted: the best number of rounds is ",
            predicted,
            ". Result: the reported round is ",
            Fig(str(best.round), "summary.json", "best_round", scale=1.0, digits=0, anchor="rounds"),
            f" ({CHOSEN['test'] if v.optimistic else CHOSEN.get(v.chosen_on, v.chosen_on)}), {as_said}.",
        )
    return s


def decay_section(v: RunView) -> Section:
    s = Section("decay", "Decay analysis: why each round worked or stopped")
    for r in v.history[1:]:
        train = r.figures.raw.get("train") or {}
        if not train:
            continue
        examples = train.get("examples") or {}
        pieces: list[Piece] = [
            "Round ",
            round_no(r.round),
            ": of ",
            count(r, "train.problems"),
            " training problems, ",
            count(r, "train.frontier"),
            " failed their first attempt (first-attempt accuracy ",
            rate(r, "train.first_correct", "decay"),
            " %)",
        ]
        if train.get("retry_yield", {}).get("value") is not None:
            pieces += [
                "; a retry solved ",
                rate(r, "train.retry_yield", "decay"),
                " % of them (the retry yield, an oracle-assisted rate)",
            ]
        pieces += ["; the filter kept ", count(r, "train.examples.kept"), " examples"]
        rejected = examples.get("rejected") or {}
        if rejected:
            pieces.append(" (rejected: ")
            for i, reason in enumerate(sorted(rejected)):
                pieces += [", " if i else "", count(r, f"train.examples.rejected.{reason}"), f" {reason}"]
            pieces.append(")")
        if examples.get("lucky_share") is not None:
            pieces += [
                "; ",
                share(r, "train.examples.lucky_share"),
                " of the right answers came through a wrong step",
            ]
        if train.get("cut_at_length"):
            pieces += [
                "; ",
                share(r, "train.cut_at_length"),
                " of the training attempts ran to the length limit",
            ]
        pieces.append(". ")
        if r.trained and r.figures.raw.get("training"):
            pieces += ["It trained ", count(r, "training.steps"), " steps. "]
        if "delta_from_prev" in r.figures.raw:
            pieces += [
                f"{METRIC_NAMES.get(v.metric, v.metric).capitalize()} on the test set changed by ",
                delta(r, "delta_from_prev"),
                " pp from the round before",
            ]
            pieces.append(
                " (a change within noise: its CI includes 0)"
                if not excludes_zero(r.figures.raw["delta_from_prev"])
                else ""
            )
            d = r.figures.raw.get("decay") or {}
            if d.get("value") is not None:
                pieces += [", a decay factor of ", ratio(r, "decay"), " against the previous round's gain"]
            elif d.get("reason"):
                pieces += [
                    "; no decay factor: ",
                    Quote(d["reason"], round_file(r.round), "figures.decay.reason"),
                ]
            pieces.append(". ")
        decisions = r.figures.raw.get("decisions") or {}
        stop = [
            (phase, d)
            for phase in ("before_train", "after_eval")
            if (d := decisions.get(phase)) and d.get("stop")
        ]
        if stop:
            phase, d = stop[0]
            pieces += [
                f"Stop ({d.get('policy') or 'no policy'}): ",
                Quote(d["reason"], round_file(r.round), f"figures.decisions.{phase}.reason"),
                ".",
            ]
        else:
            pieces.append("No stopping policy said stop.")
        s.add(*pieces)
    if not s.paragraphs:
        s.add("No round ran: this run evaluated the base model only.")
    return s


def amortized_section(v: RunView) -> Section:
    s = Section("amortized", "Amortized inference: what the weights absorbed")
    base, best = v.history[0], v.best
    e0 = base.figures.raw["eval"]
    n = e0.get("retry_n")
    s.add(
        "The base model solved ",
        rate(base, "eval.pass_n_retry", "headroom"),
        " % of the test problems within ",
        Fig(str(n), round_file(0), "figures.eval.retry_n", 1.0, 0, "headroom"),
        " attempts (a first attempt and retry turns) against ",
        rate(base, "eval.pass1_sampled", "headroom"),
        " % for a sampled first attempt: a stochastic gap of ",
        delta(base, "eval.gap", "headroom"),
        " pp.",
    )
    if not best.round:
        s.add("No round is reported over the base, so nothing of the gap was absorbed into first attempts.")
        return s
    e, e0 = best.figures.raw["eval"], base.figures.raw["eval"]
    pieces: list[Piece] = [
        "At the reported ",
        *round_name(best.round),
        ", first attempts solve ",
        rate(best, "eval.pass1_sampled", "headroom"),
        " % and the gap is ",
        delta(best, "eval.gap", "headroom"),
        " pp",
    ]
    absorbed = best.figures.raw.get("absorbed_share") or {}
    if absorbed.get("value") is not None:
        pieces += [
            "; the weights absorbed ",
            ratio(best, "absorbed_share", percent=True, anchor="headroom"),
            " of the base model's gap",
        ]
    elif absorbed.get("reason"):
        pieces += [
            "; the absorbed share is undefined: ",
            Quote(absorbed["reason"], round_file(best.round), "figures.absorbed_share.reason"),
        ]
    reached = e["pass1_sampled"]["value"] >= e0["pass_n_retry"]["value"]
    pieces.append(
        ". First attempts now "
        + (
            "reach what the base model reached with retries."
            if reached
            else "fall short of what the base model reached with retries."
        )
    )
    s.add(*pieces)
    return s


def _stops(v: RunView) -> dict[str, int | None]:
    """For each stopping policy, the round after which it would have stopped the run, replayed on the decisions'
    recorded inputs with this run's stopping settings (None: it would not have stopped)."""
    try:
        cfg = StoppingConfig.model_validate(
            {k: val for k, val in (v.cfg.get("stopping") or {}).items() if k in StoppingConfig.model_fields}
        )
    except ValueError:
        cfg = StoppingConfig()
    out: dict[str, int | None] = {}
    for name, policy in STOPPING.items():
        out[name] = None
        for r in v.history[1:]:
            decisions = r.figures.raw.get("decisions") or {}
            hits = [
                d
                for d in (decisions.get("before_train"), decisions.get("after_eval"))
                if d
                and d.get("inputs")
                and policy(
                    StopState(
                        **{k: x for k, x in d["inputs"].items() if k in StopState.__dataclass_fields__}
                    ),
                    cfg,
                )
            ]
            if hits:
                out[name] = r.round if hits[0]["inputs"].get("phase") == "after_eval" else r.round - 1
                break
    return out


def conclusion_section(v: RunView) -> Section:
    s = Section("conclusion", "Practical conclusion: how many rounds, and when to stop")
    best = v.best
    how = CHOSEN["test"] if v.optimistic else CHOSEN.get(v.chosen_on, v.chosen_on)
    if not best.round:
        s.add(f"No round beat the base model ({how}): zero rounds paid here.")
    else:
        pieces: list[Piece] = [
            "The number of rounds that paid here is ",
            Fig(str(best.round), "summary.json", "best_round", 1.0, 0, "rounds"),
            f" ({how}), with a test gain of ",
            delta(best, "delta_from_base"),
            " pp from the base",
        ]
        if "delta_from_prev" in best.figures.raw and best.round > 1:
            pieces += ["; its own step over the round before was ", delta(best, "delta_from_prev"), " pp"]
            if not excludes_zero(best.figures.raw["delta_from_prev"]):
                pieces.append(", within noise: one round fewer may have done as well")
        after = next(
            (r for r in v.history if r.round == best.round + 1 and "delta_from_prev" in r.figures.raw), None
        )
        if after is not None:
            metric = METRIC_NAMES.get(v.metric, v.metric)
            pieces += [
                f"; the round after it changed {metric} on the test set by ",
                delta(after, "delta_from_prev"),
                " pp",
            ]
        pieces.append(".")
        s.add(*pieces)
    stops = _stops(v)
    found = [name for name, k in stops.items() if k == best.round and best.round]
    said = [(name, k) for name, k in stops.items() if k is not None]
    replay: list[Piece] = [
        "Each stopping policy, replayed on the recorded decisions with this run's settings: "
    ]
    for i, (name, k) in enumerate(said):
        replay += ["; " if i else "", f"{name} would have stopped after ", *round_name(k)]
    quiet = [name for name, k in stops.items() if k is None]
    replay.append(("; " if said else "") + (f"{', '.join(quiet)} would not have stopped it" if quiet else ""))
    replay.append(
        f". The rule that would have found the reported round: {', '.join(found)}."
        if found
        else ". None would have stopped exactly at the reported round."
    )
    s.add(*replay)
    return s


def related_section(v: RunView) -> Section | None:
    """This run's condition against the other conditions in its folder, at the level of seeds."""
    from .compare import Point, comparison_tables, condition_of

    folder = v.path.parent
    mine = condition_of(v.path)
    runs = [p for p in sorted(folder.iterdir()) if p.is_dir() and (p / "summary.json").exists()]
    others = sorted({condition_of(p) for p in runs} - {mine})
    if not others:
        return None
    ordered = [p for p in runs if condition_of(p) == mine] + [p for p in runs if condition_of(p) != mine]
    s = Section("related", "Comparison with related approaches")
    s.add(
        f"Conditions run beside this one in {folder.name}/: {', '.join(others)}. Each is tested against this "
        "run's condition at the level of seeds (docs/conditions.md); the tables are `secondtry compare`'s."
    )
    for key, title, (head, rows) in comparison_tables(ordered, Point()):
        if key in ("conditions", "budget", "pairwise"):
            s.tables.append((title[0].upper() + title[1:], head, rows))
    return s


def caveats_section(v: RunView) -> Section:
    s = Section("caveats", "Caveats this run reveals")
    for c in caveats(v):
        s.add(f"{c.title}. ", *c.finding)
        s.add(f"Remedy: {c.remedy}", kind="remedy")
    if not s.paragraphs:
        s.add("None of the caveat rules fired.")
    return s


def sections(v: RunView) -> list[Section]:
    """The written sections of the experiment page, in the page's order."""
    made = [
        prediction_section(v),
        decay_section(v),
        amortized_section(v),
        conclusion_section(v),
        related_section(v),
        caveats_section(v),
    ]
    return [x for x in made if x is not None]


def markdown_section(s: Section) -> str:
    from .tables import markdown_table

    parts = [f"## {s.title}", ""]
    for p in s.paragraphs:
        parts += [("_" + markdown(p.pieces) + "_") if p.kind == "remedy" else markdown(p.pieces), ""]
    for title, head, rows in s.tables:
        parts += [f"{title}:", "", markdown_table(head, rows), ""]
    return "\n".join(parts)


def figure_sources(v: RunView) -> list[tuple[Fig, Path]]:
    """Every figure of the prose with the file it comes from (for readers and tests)."""
    return [
        (p, v.path / p.file)
        for s in sections(v)
        for para in s.paragraphs
        for p in para.pieces
        if isinstance(p, Fig)
    ]
