"""The figures of a round, computed from per-problem records only.

An evaluation record (one line of eval.jsonl) holds, per problem:
    greedy: bool | None      the greedy first attempt was right
    samples: [bool, ...]     the sampled first attempts (sample 0 starts the retry chain)
    chain: [bool, ...]       sample 0, then each retry turn, until one is right or N turns
A verdict of "cannot judge" counts as not solved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..records import (
    Comparison,
    Estimate,
    EvalFigures,
    EvalRecord,
    FilterStats,
    GainedLost,
    Gains,
    Rate,
    RoundFigures,
    TrainFigures,
)
from ..types import Attempt, Kind
from .retry import flips, retry_lift
from .stats import bootstrap_statistic, estimate, paired_delta, rate, sign_test


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k).

    >>> pass_at_k(4, 1, 1), pass_at_k(4, 1, 4), round(pass_at_k(5, 2, 2), 4)
    (0.25, 1.0, 0.7)
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def eval_record(
    problem_id: str,
    greedy: Attempt | None,
    samples: list[Attempt],
    chain: list[Attempt],
    pass_k: Sequence[int],
) -> EvalRecord:
    """One problem's evaluation outcome (one line of eval.jsonl)."""
    right = tuple(a.verdict.correct is True for a in samples)
    generated = ([greedy] if greedy else []) + samples + chain[1:]  # chain[0] is sample 0
    return EvalRecord(
        problem_id=problem_id,
        greedy=None if greedy is None else greedy.verdict.correct is True,
        samples=right,
        chain=tuple(a.verdict.correct is True for a in chain),
        pass_at_k={str(k): pass_at_k(len(right), sum(right), k) for k in pass_k},
        tokens=sum(a.n_tokens for a in generated),
        cut=sum(a.finish_reason == "length" for a in generated),
    )


def per_problem(records: Sequence[EvalRecord]) -> dict[str, list[float]]:
    """Per-problem vectors of every rate, in record order."""
    out: dict[str, list[float]] = {
        "pass1_sampled": [sum(r.samples) / len(r.samples) for r in records],
        "pass_n_retry": [float(any(r.chain)) for r in records],
    }
    if records and records[0].greedy is not None:
        out["pass1_greedy"] = [float(bool(r.greedy)) for r in records]
    for k in records[0].pass_at_k if records else []:
        out[f"pass_at_{k}"] = [r.pass_at_k[k] for r in records]
    out["gap"] = [n - p for n, p in zip(out["pass_n_retry"], out["pass1_sampled"])]
    return out


def summarize_eval(
    records: Sequence[EvalRecord], n_boot: int, seed: int, retry_n: int, retry_all: bool = False
) -> EvalFigures:
    """Every evaluation rate with its 95% CI (`stats.rate`: Wilson or bootstrap, named in "method"); the gap
    (pass@N-with-retries − sampled pass@1, a difference) with a bootstrap CI.

    With `retry_all` (every problem's sample 0 got a retry turn) also the wrong→right and
    right→wrong flips of that turn; otherwise "flips" is None (only failures were retried).
    """
    rates = {
        name: (estimate if name == "gap" else rate)(v, n_boot, seed)
        for name, v in per_problem(records).items()
    }
    generated = sum((r.greedy is not None) + len(r.samples) + len(r.chain) - 1 for r in records)
    retried = retry_all and retry_n > 1 and all(len(r.chain) > 1 for r in records)
    return EvalFigures(
        rates=rates,
        retry_n=retry_n,
        cut_at_length=sum(r.cut for r in records) / max(1, generated),
        retry_lift=retry_lift(records, n_boot, seed),  # retry turn vs a fresh sample, same budget
        flips=flips([r.chain[0] for r in records], [r.chain[1] for r in records], n_boot, seed)
        if retried
        else None,
    )


def _aligned(*evals: Sequence[EvalRecord]) -> None:
    ids = [[r.problem_id for r in e] for e in evals]
    if any(i != ids[0] for i in ids):
        raise ValueError("evaluations of different problem sets cannot be compared pairwise")


def gained_and_lost(prev: Sequence[EvalRecord], now: Sequence[EvalRecord], metric: str) -> GainedLost:
    """The problems whose value of the headline `metric` rose (gained) or fell (lost) since the previous
    round, with an exact two-sided sign test on them (ties say nothing).

    A problem's value is what the metric averages over problems: for greedy pass@1 right or wrong, so
    gained and lost are the wrong→right and right→wrong flips and the test is McNemar's exact test; for
    sampled pass@1 the share of its samples judged right, so a problem gains when more of its samples are
    right than in the previous round (2 of 4 → 3 of 4) and loses when fewer are. The counts then move with
    the metric itself.

    >>> rec = lambda *s: EvalRecord("p", True, tuple(map(bool, s)), (bool(s[0]),))
    >>> r = gained_and_lost([rec(1, 0), rec(1, 1), rec(0, 0)], [rec(1, 1), rec(1, 0), rec(0, 0)],
    ...                     "pass1_sampled")
    >>> r.gained, r.lost, r.unchanged
    (1, 1, 1)
    """
    before, after = per_problem(prev)[metric], per_problem(now)[metric]
    test = sign_test(before, after)
    return GainedLost(
        metric=metric,
        gained=int(test["c"]),
        lost=int(test["b"]),
        unchanged=len(before) - int(test["b"]) - int(test["c"]),
        p_value=test["p_value"],
    )


def cut_shares(figures: RoundFigures) -> list[tuple[str, float]]:
    """A round's share of generations cut at max_new_tokens, per set that records it: "training attempts",
    "test", "validation", "transfer"."""
    shares = [("training attempts", figures.train.cut_at_length)] if figures.train else []
    for split in ("test", "validation", "transfer"):
        on = figures.on(split)
        if on is not None and on.eval.cut_at_length is not None:  # None: recorded before the figure existed
            shares.append((split, on.eval.cut_at_length))
    return shares


GAIN_METRICS = ("pass1_sampled", "pass1_greedy")  # the gains reported side by side wherever one is headlined
METRIC_NAMES = {"pass1_sampled": "sampled pass@1", "pass1_greedy": "greedy pass@1"}  # in words


def compare_evals(
    base: Sequence[EvalRecord],
    before_prev: Sequence[EvalRecord] | None,
    prev: Sequence[EvalRecord],
    now: Sequence[EvalRecord],
    metric: str,
    n_boot: int,
    seed: int,
) -> Comparison:
    """Gains over the base and the previous round (paired CIs), the decay of the gain, the share of
    the base model's stochastic gap absorbed, and the problems `metric` gained and lost since the previous
    round (`gained_and_lost`). `before_prev` is the round before the previous one (None for round 1: no decay
    yet).

    "delta_from_base" and "delta_from_prev" are of `metric`; "gains" holds both for sampled and greedy
    pass@1 (where greedy attempts were made), so a sampled gain is never shown without the greedy one.
    """
    _aligned(base, prev, now, *([before_prev] if before_prev else []))
    vb, vp, vn = per_problem(base), per_problem(prev), per_problem(now)

    def decay(
        m: Sequence[float],
    ) -> float | None:  # this round's gain as a share of the last one (+4.4 after +10.1 -> 0.44)
        return None if m[1] - m[0] <= 0 else (m[2] - m[1]) / (m[1] - m[0])

    def absorbed(m: Sequence[float]) -> float | None:  # (base gap − gap now) / base gap
        return None if m[0] <= 0 else (m[0] - m[1]) / m[0]

    decay_figure = None
    if before_prev is not None:
        vbp = per_problem(before_prev)[metric]
        last_gain = (sum(vp[metric]) - sum(vbp)) / max(1, len(vbp))
        decay_figure = bootstrap_statistic(
            [vbp, vp[metric], vn[metric]],
            decay,
            n_boot,
            seed,
            undefined=f"the previous round's gain was {last_gain * 100:+.1f} pp: a decay factor (how much of a "
            "gain the next round repeats) needs a gain before it",
        )

    def delta(before: list[float], after: list[float]) -> Rate:
        return paired_delta(before, after, n_boot, seed)

    return Comparison(
        delta_from_base=delta(vb[metric], vn[metric]),
        delta_from_prev=delta(vp[metric], vn[metric]),
        gains={
            m: Gains(from_base=delta(vb[m], vn[m]), from_prev=delta(vp[m], vn[m]))
            for m in GAIN_METRICS
            if m in vn and m in vb
        },
        decay=decay_figure,
        absorbed_share=bootstrap_statistic(
            [vb["gap"], vn["gap"]],
            absorbed,
            n_boot,
            seed,
            undefined="the base model had no stochastic gap to absorb",
        ),
        flips_vs_prev=gained_and_lost(prev, now, metric),
    )


def train_figures(
    attempts: list[Attempt], n_boot: int, seed: int, examples: FilterStats | None = None
) -> TrainFigures:
    """First-attempt accuracy on the training problems and the retry yield on their failures (and what the filter
    kept of them, `examples`)."""
    first = {a.problem_id: a.verdict.correct for a in attempts if a.kind == Kind.FIRST and a.sample == 0}
    failed = [pid for pid, ok in first.items() if ok is False]  # "cannot judge" is not retried
    solved_by_retry = {a.problem_id for a in attempts if a.kind == Kind.RETRY and a.verdict.correct is True}
    retried = {a.problem_id for a in attempts if a.kind == Kind.RETRY}
    return TrainFigures(
        problems=len(first),
        first_correct=rate([float(v is True) for v in first.values()], n_boot, seed),
        unjudged=sum(v is None for v in first.values()),
        frontier=len(failed),  # first attempts judged wrong
        retried=len(retried),
        retry_solved=len(solved_by_retry),
        # success of the retry turn(s) on the frontier: the stopping rule watches this
        retry_yield=rate([float(pid in solved_by_retry) for pid in failed], n_boot, seed)
        if retried or not failed
        else Estimate(None, (None, None), 0),  # no retry turns (retries: 0)
        tokens_generated=sum(a.n_tokens for a in attempts),
        cut_at_length=sum(a.finish_reason == "length" for a in attempts) / max(1, len(attempts)),
        cut=sum(a.finish_reason == "length" for a in attempts),  # judged wrong, never trained on
        # every first attempt, with conditions.samples > 1 (ReST-EM's K samples a problem)
        first_samples=rate(
            [float(a.verdict.correct is True) for a in attempts if a.kind == Kind.FIRST], n_boot, seed
        ),
        examples=examples,
    )
