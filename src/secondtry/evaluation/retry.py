"""What the retry turn adds, and which problems each round solves, gains and forgets.

All functions read evaluation records (one line of eval.jsonl each, see metrics.py):
    greedy: bool | None, samples: [bool, ...], chain: [bool, ...]
where chain[0] is sample 0 and chain[t] is retry turn t on the same conversation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..records import EvalRecord, Flips, Ledger, ProblemHistory, RetryLift, RoundLedger, SignTest
from .stats import mcnemar, paired_delta, rate

METRICS = ("greedy", "pass1_sampled", "any_sample")


def _undefined(reason: str) -> RetryLift:
    return RetryLift(value=None, ci=(None, None), n=0, reason=reason)


def retry_lift(records: Sequence[EvalRecord], n_boot: int = 2000, seed: int = 0) -> RetryLift:
    """Does a retry turn beat simply sampling again, at the same budget, where sample 0 failed?

    The frontier is the problems whose sample 0 was wrong (chain[0] is False). On each of them,
    `retry` is the first retry turn (chain[1]; a missing turn counts as wrong) and `fresh` is an
    independent second sample (samples[1]): both spend one more attempt on the problem.

    Returns {"value": mean of retry − fresh over the frontier, "ci": its paired CI (stats.paired_delta),
    "n": frontier size, "retry": rate of retry success, "fresh": rate of fresh success,
    "mcnemar": mcnemar(fresh, retry) (c = problems only the retry solved), "reason": None}.
    A positive value means the retry turn does better than a fresh sample.

    The figure is undefined — value None, n 0, and "reason" says why — when the frontier is
    empty, when no frontier problem has a retry turn (N = 1), or when a frontier problem has
    fewer than two samples (no fresh sample to match).

    >>> recs = [EvalRecord("a", None, (False, False), (False, True)),
    ...         EvalRecord("b", None, (False, True), (False, True)),
    ...         EvalRecord("c", None, (True, False), (True,))]
    >>> r = retry_lift(recs, n_boot=100)
    >>> r.value, r.n, r.retry.value, r.fresh.value
    (0.5, 2, 1.0, 0.5)
    """
    for r in records:
        if not r.chain:
            raise ValueError(f"problem {r.problem_id!r} has an empty chain (it must start with sample 0)")
    frontier = [r for r in records if not r.chain[0]]
    if not frontier:
        return _undefined("empty frontier: no problem has a wrong sample 0")
    if all(len(r.chain) < 2 for r in frontier):
        return _undefined("no retry turns (N = 1): the chains stop at sample 0")
    short = [r.problem_id for r in frontier if len(r.samples) < 2]
    if short:
        return _undefined(
            f"{len(short)} frontier problem(s) have fewer than 2 samples, e.g. {short[0]!r}: "
            "no fresh sample to compare with"
        )
    retry = [len(r.chain) > 1 and bool(r.chain[1]) for r in frontier]
    fresh = [bool(r.samples[1]) for r in frontier]
    lift = paired_delta(np.asarray(fresh, dtype=float), np.asarray(retry, dtype=float), n_boot, seed)
    return RetryLift(
        lift.value,
        lift.ci,
        lift.n,
        lift.method,
        retry=rate(retry, n_boot, seed),
        fresh=rate(fresh, n_boot, seed),
        mcnemar=SignTest.from_json(mcnemar(fresh, retry)),
        reason=None,
    )


def flips(first: Sequence[bool], retried: Sequence[bool], n_boot: int = 2000, seed: int = 0) -> Flips:
    """Outcome changes when every problem, right or wrong, gets a retry turn.

    `first[i]` and `retried[i]` are the first attempt and the retry turn on problem i. Returns
    the four transition counts, n, "net" (estimate of retried − first per problem: the accuracy
    change, with a paired CI: stats.paired_delta), "wrong_to_right_rate" (share of first-wrong problems the retry
    fixes; None when none were wrong), "right_to_wrong_rate" (share of first-right problems the
    retry breaks; None when none were right) and "mcnemar" (b = right→wrong, c = wrong→right).

    >>> f = flips([True, True, False, False], [True, False, True, True], n_boot=100)
    >>> f.wrong_to_right, f.right_to_wrong, f.net.value, f.right_to_wrong_rate
    (2, 1, 0.25, 0.5)
    """
    if len(first) != len(retried):
        raise ValueError(
            f"flips needs aligned outcomes: {len(first)} first attempts vs {len(retried)} retries"
        )
    a, b = [bool(x) for x in first], [bool(y) for y in retried]
    pairs = list(zip(a, b))
    w2r, r2w = pairs.count((False, True)), pairs.count((True, False))
    r2r, w2w = pairs.count((True, True)), pairs.count((False, False))
    n_wrong, n_right = w2r + w2w, r2w + r2r
    return Flips(
        wrong_to_right=w2r,
        right_to_wrong=r2w,
        right_to_right=r2r,
        wrong_to_wrong=w2w,
        n=len(pairs),
        net=paired_delta(np.asarray(a, dtype=float), np.asarray(b, dtype=float), n_boot, seed),
        wrong_to_right_rate=w2r / n_wrong if n_wrong else None,
        right_to_wrong_rate=r2w / n_right if n_right else None,
        mcnemar=SignTest.from_json(mcnemar(a, b)),
    )


def _solved(record: EvalRecord, metric: str, threshold: float) -> bool:
    """Whether one record counts as solved; no samples count as not solved."""
    samples = record.samples
    if metric == "greedy" and record.greedy is not None:
        return bool(record.greedy)
    if metric == "any_sample":
        return any(bool(s) for s in samples)
    return bool(samples) and sum(bool(s) for s in samples) / len(samples) >= threshold


def _check_aligned(rounds: list[list[EvalRecord]]) -> list[str]:
    ids = [r.problem_id for r in rounds[0]]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"round 0 lists problem {dup!r} more than once")
    for k, records in enumerate(rounds[1:], start=1):
        other = [r.problem_id for r in records]
        if other != ids:
            pos = next((i for i, (x, y) in enumerate(zip(ids, other)) if x != y), min(len(ids), len(other)))
            got = repr(other[pos]) if pos < len(other) else "nothing"
            want = repr(ids[pos]) if pos < len(ids) else "nothing"
            raise ValueError(
                f"round {k} differs from round 0 at position {pos}: {got} where round 0 has {want}"
            )
    return ids


def ledger(rounds: Sequence[Sequence[EvalRecord]], metric: str = "greedy", threshold: float = 0.5) -> Ledger:
    """Which problems each round solves, solves for the first time, forgets and regains.

    `rounds[k]` are the eval records of round k (round 0 is the base model), listing the same
    problems in the same order. A problem is solved in a round when, by `metric`:
      greedy         the greedy attempt was right (records without one fall back to pass1_sampled);
      pass1_sampled  the share of right samples is at least `threshold`;
      any_sample     at least one sample was right.

    Returns
      per_problem[id]: "solved" (one bool per round), "first_solved" (round index or None),
                       "forgotten_in" (rounds k where it was solved in k-1 but not in k);
      per_round[k]:    "solved", "newly_solved" (first solved in k), "forgotten" (solved in k-1,
                       not in k), "regained" (solved in k, not in k-1, but in some round before k-1);
      ever_solved, never_solved, and solved_then_forgotten_at_end (solved in some round, not in
      the last).

    >>> rec = lambda pid, g: EvalRecord(pid, g, (g,), (g,))
    >>> led = ledger([[rec("a", False), rec("b", True)], [rec("a", True), rec("b", False)]])
    >>> [(r.newly_solved, r.forgotten) for r in led.per_round], led.per_problem["b"].forgotten_in
    ([(1, 0), (1, 1)], (1,))
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    if not rounds:
        raise ValueError("ledger needs at least one round")
    ids = _check_aligned(rounds)
    table = [[_solved(r, metric, threshold) for r in records] for records in rounds]  # [round][problem]

    per_problem: dict[str, Any] = {}
    for i, pid in enumerate(ids):
        solved = [table[k][i] for k in range(len(rounds))]
        per_problem[pid] = {
            "solved": solved,
            "first_solved": next((k for k, s in enumerate(solved) if s), None),
            "forgotten_in": [k for k in range(1, len(solved)) if solved[k - 1] and not solved[k]],
        }

    per_round = []
    for k in range(len(rounds)):
        rows = [p["solved"] for p in per_problem.values()]
        per_round.append(
            {
                "round": k,
                "solved": sum(s[k] for s in rows),
                "newly_solved": sum(p["first_solved"] == k for p in per_problem.values()),
                "forgotten": sum(k > 0 and s[k - 1] and not s[k] for s in rows),
                "regained": sum(k > 1 and s[k] and not s[k - 1] and any(s[: k - 1]) for s in rows),
            }
        )

    ever = sum(p["first_solved"] is not None for p in per_problem.values())
    return Ledger(
        per_problem={
            pid: ProblemHistory(tuple(p["solved"]), p["first_solved"], tuple(p["forgotten_in"]))
            for pid, p in per_problem.items()
        },
        per_round=tuple(RoundLedger(**r) for r in per_round),
        ever_solved=ever,
        never_solved=len(ids) - ever,
        solved_then_forgotten_at_end=sum(
            any(p["solved"]) and not p["solved"][-1] for p in per_problem.values()
        ),
    )
