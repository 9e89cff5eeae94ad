"""Typed rounds for the report tests, from the few figures a test is about (round.json's layout, partial).

`round_of` fills what a test leaves out with neutral figures (a 50 % rate, no cut generations, no undefined
ratio), then reads the whole through the same reader as a run directory's round.json, so a test states only
the figures its finding depends on and still gets real records.
"""

from __future__ import annotations

from typing import Any

from secondtry.records import RoundFigures, RoundResult, round_from_json


def est(value: float | None = 0.5, lo: float | None = 0.4, hi: float | None = 0.6, n: int = 100) -> dict:
    return {"value": value, "ci": [lo, hi], "n": n}


EVAL = {
    "pass1_sampled": est(),
    "retry_n": 1,
    "cut_at_length": 0.0,
    "retry_lift": {"value": None, "ci": [None, None], "n": 0, "reason": "no retry turns (N = 1)"},
}
FLIPS = {
    "wrong_to_right": 0,
    "right_to_wrong": 0,
    "right_to_right": 0,
    "wrong_to_wrong": 0,
    "n": 0,
    "net": {**est(None, None, None, 0), "method": None},
    "wrong_to_right_rate": None,
    "right_to_wrong_rate": None,
    "mcnemar": {"b": 0, "c": 0, "p_value": 1.0},
}
EXAMPLES = {"kept": 500, "kept_from": {"retry": 500}, "problems": 500, "rejected": {}, "lucky_share": None}
TRAIN = {
    "problems": 1000,
    "first_correct": est(),
    "unjudged": 0,
    "frontier": 500,
    "retried": 500,
    "retry_solved": 200,
    "retry_yield": est(0.4, 0.3, 0.5),
    "tokens_generated": 0,
    "cut_at_length": 0.0,
    "cut": 0,
    "first_samples": est(),
}
COMPARISON = {
    "delta_from_base": est(0.0, -0.05, 0.05),
    "delta_from_prev": est(0.0, -0.05, 0.05),
    "gains": {},
    "decay": None,
    "absorbed_share": {**est(0.0, -0.1, 0.1), "draws": 100},
    "flips_vs_prev": {"metric": "pass1_sampled", "gained": 0, "lost": 0, "unchanged": 100, "p_value": 1.0},
}


def _estimates(x: Any) -> Any:
    """Every {"value": ...} figure given its CI and n when the test left them out."""
    if isinstance(x, dict):
        x = {k: _estimates(v) for k, v in x.items()}
        if "value" in x and "gained" not in x:
            x = {"ci": [None, None], "n": 100, **x}
        return x
    return x


def _split(figures: dict, eval_default: dict | None) -> dict:
    out = dict(figures)
    if "eval" in out or eval_default is not None:
        e = {**(eval_default or EVAL), **out.get("eval", {})}
        if e.get("flips"):
            e["flips"] = {**FLIPS, **e["flips"]}
        out["eval"] = e
    if any(k in out for k in COMPARISON):
        out = {**COMPARISON, **out}
    return out


def figures_of(partial: dict | RoundFigures) -> RoundFigures:
    """Complete round figures from a partial round.json `figures` object (or figures already typed)."""
    if isinstance(partial, RoundFigures):
        return partial
    f = _split(partial, EVAL if any(k in partial for k in COMPARISON) else None)  # a comparison needs an eval
    if "train" in f:
        f["train"] = {**TRAIN, **f["train"]}
        if "examples" in f["train"]:
            f["train"]["examples"] = {**EXAMPLES, **f["train"]["examples"]}
    for split in ("validation", "transfer"):
        if split in f:
            f[split] = _split(f[split], EVAL)
    return RoundFigures.from_json(_estimates(f), "figures")


def round_of(
    k: int,
    trained: bool | None = None,
    figures: dict | RoundFigures | None = None,
    cost: dict | None = None,
    stop: bool = False,
    reason: str = "continue",
) -> RoundResult:
    """Round k (trained unless round 0) with the given figures and cost, and a decision to go on."""
    data = {
        "round": k,
        "model": f"m{k}",
        "trained": bool(k) if trained is None else trained,
        "figures": figures_of(figures or {}).to_json(),
        "cost": cost or {},
        "decision": {"stop": stop, "reason": reason},
    }
    return round_from_json(data, f"round_{k}/round.json")
