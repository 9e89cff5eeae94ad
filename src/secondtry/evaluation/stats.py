"""Statistics: intervals over problems within a run, and tests over seeds across runs.

Within one run every rate is a mean of per-problem values, so its uncertainty comes from the
problems (the test set is a sample of the task's distribution): Wilson score intervals for rates
of right/wrong outcomes (and for any rate near 0 or 100 %, where a percentile bootstrap collapses
to zero width), percentile bootstrap intervals otherwise, paired over problems for differences.

Across runs the unit is the seed: a training run is one draw, and the problems of three runs are
not three times the evidence of one. A condition-vs-condition comparison is a paired t-test on the
per-seed differences (`seed_test`), with a hierarchical bootstrap that resamples seeds, then
problems within each seed (`hierarchical_bootstrap`), beside it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats as sps

from ..records import Estimate, Rate, Ratio, SeedTest


def bootstrap_ci(
    values: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `values` (one value per problem).

    >>> lo, hi = bootstrap_ci([1, 0] * 50, seed=1)
    >>> 0.38 < lo < 0.45 < 0.55 < hi < 0.62
    True
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 256):  # blocks bound the memory for large test sets
        stop = min(n_boot, start + 256)
        means[start:stop] = x[rng.integers(0, x.size, size=(stop - start, x.size))].mean(axis=1)
    tail = (1 - level) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    return (float(lo), float(hi))


def estimate(values: Sequence[float], n_boot: int = 2000, seed: int = 0) -> Estimate:
    """The mean with its CI and count — the shape of every figure in round.json; the CI is a percentile
    bootstrap over the values (for differences and other quantities that are not rates).

    No values give value None, CI (None, None), n 0 (JSON has no NaN).
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Estimate(None, (None, None), 0)
    lo, hi = bootstrap_ci(x, n_boot, seed)
    return Estimate(float(x.mean()), (lo, hi), int(x.size))


def wilson_ci(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a rate: sensible at 0 and 100 %, where the percentile bootstrap has zero width.

    >>> [round(x, 4) for x in wilson_ci(0, 50)]
    [0.0, 0.0713]
    >>> [round(x, 4) for x in wilson_ci(50, 50)]
    [0.9287, 1.0]
    """
    if n <= 0:
        return (math.nan, math.nan)
    z = float(sps.norm.ppf(1 - (1 - level) / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


NEAR_EDGE = 5  # a rate with fewer than this many successes or failures (in problems) is near 0 or 100 %


def rate(values: Sequence[float], n_boot: int = 2000, seed: int = 0) -> Rate:
    """A rate over problems (each value in [0, 1]) with its 95% CI, and the method that gave it.

    Right/wrong outcomes get the Wilson score interval. Per-problem shares (sampled pass@1: the share of
    a problem's samples that were right) get a percentile bootstrap, except near 0 or 100 % (fewer than
    NEAR_EDGE problems' worth of successes or failures), where they get the Wilson interval over problems:
    conservative there, since a value in [0, 1] with mean p varies no more than a right/wrong one.

    >>> r = rate([1] * 20); r.value, [round(x, 3) for x in r.ci], r.method
    (1.0, [0.839, 1.0], 'wilson')
    >>> rate([0.5, 0.25, 1.0, 0.75] * 10, n_boot=200).method
    'bootstrap'
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Rate(None, (None, None), 0, None)
    if x.min() < 0 or x.max() > 1:
        raise ValueError(f"a rate needs values in [0, 1], got {x.min()}..{x.max()}")
    if _binary(x) or _near_edge(x):
        return Rate(float(x.mean()), wilson_ci(float(x.sum()), int(x.size)), int(x.size), "wilson")
    return Rate(float(x.mean()), bootstrap_ci(x, n_boot, seed), int(x.size), "bootstrap")


def bootstrap_statistic(
    columns: Sequence[Sequence[float]],
    statistic: Callable[[np.ndarray], float | None],
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    undefined: str = "",
) -> Ratio:
    """A statistic of column means, with a percentile CI from resampling problems (rows) jointly.

    `statistic(means)` gets one mean per column and returns None where it is undefined. For ratios of
    paired gains: decay, absorbed share of the gap. Undefined on the data itself: value None and
    `undefined` as the reason. Resamples where it is undefined are left out of the CI and counted
    ("undefined_draws" of "draws"), so a reader sees how much of the interval rests on them.

    >>> r = bootstrap_statistic([[1, 0, 1, 1], [0, 0, 1, 1]], lambda m: m[0] - m[1], n_boot=200)
    >>> r.value, r.n, r.undefined_draws
    (0.25, 4, 0)
    """
    x = np.asarray(columns, dtype=float)
    value = statistic(x.mean(axis=1))
    if value is None:
        return Ratio(None, (None, None), int(x.shape[1]), reason=undefined or "undefined")
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        v = statistic(x[:, rng.integers(0, x.shape[1], size=x.shape[1])].mean(axis=1))
        if v is not None and math.isfinite(v):
            draws.append(v)
    tail = (1 - level) / 2
    lo, hi = np.quantile(draws, [tail, 1 - tail]) if draws else (math.nan, math.nan)
    return Ratio(
        float(value),
        (float(lo), float(hi)),
        int(x.shape[1]),
        draws=n_boot,
        undefined_draws=n_boot - len(draws),
    )


def _binary(x: np.ndarray) -> bool:
    return bool(np.all((x == 0) | (x == 1)))


def _near_edge(x: np.ndarray) -> bool:
    """A rate (values in [0, 1]) with fewer than NEAR_EDGE problems' worth of successes or of failures."""
    total = float(x.sum())
    return bool(x.min() >= 0 and x.max() <= 1) and min(total, x.size - total) < NEAR_EDGE


def newcombe_paired_ci(before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    """Newcombe's score interval (1998, method 10) for the paired difference of two rates, after − before:
    the two Wilson intervals combined through the correlation of the paired values (the phi coefficient for
    right/wrong outcomes). It keeps a width where the bootstrap collapses (both rates at 100 %: every paired
    difference 0).

    >>> lo, hi = newcombe_paired_ci(np.ones(1000), np.ones(1000)); round(lo, 4), round(hi, 4)
    (-0.0038, 0.0038)
    """
    n = before.size
    p1, p2 = float(after.mean()), float(before.mean())
    l1, u1 = wilson_ci(float(after.sum()), n)
    l2, u2 = wilson_ci(float(before.sum()), n)
    phi = 0.0
    if before.std() > 0 and after.std() > 0:
        phi = float(np.corrcoef(before, after)[0, 1])
    theta = p1 - p2
    lo = theta - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    hi = theta + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return (max(-1.0, lo), min(1.0, hi))


def paired_delta(before: Sequence[float], after: Sequence[float], n_boot: int = 2000, seed: int = 0) -> Rate:
    """Mean of after − before over the same problems (each value a rate in [0, 1]), with its 95% CI: Newcombe's
    paired score interval where both sides are right/wrong outcomes or either rate is near 0 or 100 %, a
    paired bootstrap otherwise; "method" names which.

    >>> d = paired_delta([0] * 50 + [1] * 50, [1] * 100); d.value, d.method
    (0.5, 'newcombe')
    """
    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired figures need the same problems: {a.size} vs {b.size} values")
    if a.size == 0:
        return Rate(None, (None, None), 0, None)
    rates = bool(a.min() >= 0 and a.max() <= 1 and b.min() >= 0 and b.max() <= 1)
    if rates and ((_binary(a) and _binary(b)) or _near_edge(a) or _near_edge(b)):
        return Rate(float((b - a).mean()), newcombe_paired_ci(a, b), int(a.size), "newcombe")
    e = estimate(b - a, n_boot, seed)
    return Rate(e.value, e.ci, e.n, "bootstrap")


def mcnemar(before: Sequence[bool], after: Sequence[bool]) -> dict[str, float]:
    """Exact McNemar test on paired binary outcomes: b = right→wrong, c = wrong→right.

    >>> mcnemar([0, 0, 0, 1], [1, 1, 1, 1])["p_value"]
    0.25
    """
    b = sum(1 for x, y in zip(before, after) if x and not y)
    c = sum(1 for x, y in zip(before, after) if y and not x)
    return mcnemar_counts(b, c)


def mcnemar_counts(b: int, c: int) -> dict[str, float]:
    """Exact two-sided McNemar test from the discordant counts b and c.

    >>> mcnemar_counts(1, 6)["p_value"]
    0.125
    """
    n = b + c
    if n == 0:
        return {"b": 0, "c": 0, "p_value": 1.0}
    tail = sum(math.comb(n, i) for i in range(0, min(b, c) + 1)) / 2**n
    return {"b": b, "c": c, "p_value": min(1.0, 2 * tail)}


def t_quantile(df: int, level: float = 0.95) -> float:
    """The two-sided Student t quantile for `df` degrees of freedom (exact, every df).

    >>> round(t_quantile(2), 3), round(t_quantile(40), 3)
    (4.303, 2.021)
    """
    return float(sps.t.ppf(1 - (1 - level) / 2, df))


def across_seeds(values: Sequence[float], bounds: tuple[float, float] | None = None) -> Estimate:
    """Mean over seeds with a 95% t-interval (seeds are few; the bootstrap needs many), cut to `bounds`
    where the quantity has them (a rate lies in [0, 1], a difference of rates in [-1, 1]).

    >>> r = across_seeds([0.1, 0.2, 0.3]); round(r.value, 3), [round(x, 3) for x in r.ci]
    (0.2, [-0.048, 0.448])
    >>> [round(x, 3) for x in across_seeds([0.1, 0.2, 0.3], bounds=(0.0, 1.0)).ci]
    [0.0, 0.448]
    """
    x = np.asarray(values, dtype=float)
    mean = float(x.mean()) if x.size else math.nan
    if x.size < 2:
        return Estimate(mean, (math.nan, math.nan), int(x.size))
    half = t_quantile(x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    lo, hi = bounds or (-math.inf, math.inf)
    return Estimate(mean, (max(lo, mean - half), min(hi, mean + half)), int(x.size))


def seed_test(differences: Sequence[float], bounds: tuple[float, float] = (-1.0, 1.0)) -> SeedTest:
    """Two conditions compared at the level of seeds: a paired t-test on the per-seed differences.

    Each value is one seed's difference (condition − reference, the mean over that seed's problems).
    Returns the mean, its t-interval (cut to `bounds`), the two-sided p-value, df = seeds − 1, and a
    "reason" where no test is possible: one seed (a single training run cannot tell a condition from
    its seed), or seeds that all differ by exactly the same amount (no spread to test against).

    The example of a pooled test gone wrong: per-seed differences of +12, −12 and +13 pp are not
    evidence of a difference (p = 0.65), although the problems that rose and fell, summed over the
    seeds, give p = 0.005.

    >>> r = seed_test([0.12, -0.12, 0.13]); round(r.p_value, 2), r.df
    (0.65, 2)
    """
    x = np.asarray(differences, dtype=float)
    e = across_seeds(x, bounds)
    out = SeedTest(e.value, e.ci, e.n, p_value=None, df=max(0, int(x.size) - 1), reason=None)
    if x.size < 2:
        return dataclasses.replace(
            out, reason="one seed: a single training run cannot separate the condition from its seed"
        )
    if float(np.ptp(x)) == 0.0:
        return dataclasses.replace(
            out, reason="every seed differs by the same amount: no spread to test against"
        )
    return dataclasses.replace(out, p_value=float(sps.ttest_1samp(x, 0.0).pvalue))


def unpaired_seed_test(
    reference: Sequence[float], condition: Sequence[float], bounds: tuple[float, float] = (-1.0, 1.0)
) -> SeedTest:
    """Two conditions whose runs share no seed, compared at the level of seeds without pairing: Welch's
    t-test on the per-seed means (condition − reference), with its t-interval (Welch–Satterthwaite df, cut
    to `bounds`).
    A "reason" where no test is possible: fewer than two seeds on a side, or no spread within either side.

    >>> r = unpaired_seed_test([0.50, 0.52, 0.48], [0.60, 0.63, 0.57])
    >>> round(r.value, 3), round(r.p_value, 3), r.df
    (0.1, 0.012, 3.5)
    """
    a, b = np.asarray(reference, dtype=float), np.asarray(condition, dtype=float)
    diff = float(b.mean() - a.mean()) if a.size and b.size else math.nan
    out = SeedTest(diff, (math.nan, math.nan), int(min(a.size, b.size)), p_value=None, df=None, reason=None)
    if a.size < 2 or b.size < 2:
        return dataclasses.replace(out, reason="fewer than two seeds on a side: no test without paired seeds")
    va, vb = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
    if va + vb == 0.0:
        return dataclasses.replace(
            out, reason="every seed of each condition scored the same: no spread to test against"
        )
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = float(sps.t.ppf(0.975, df)) * math.sqrt(va + vb)
    lo, hi = bounds
    return dataclasses.replace(
        out,
        ci=(max(lo, diff - half), min(hi, diff + half)),
        df=round(df, 1),
        p_value=float(sps.ttest_ind(b, a, equal_var=False).pvalue),
    )


def hierarchical_bootstrap(
    pairs: Sequence[tuple[Sequence[float], Sequence[float]]],
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """The mean difference across seeds, with a CI from resampling seeds, then problems within each.

    `pairs[s]` = (reference values, condition values) of seed s, per problem, paired. A draw picks as
    many seeds as there are, with replacement, then each picked seed's problems with replacement, and
    averages the per-seed mean differences. Both levels of noise are in the interval: which training
    runs happened, and which problems were drawn. With three seeds the seed level has only ten distinct
    resamples, so read it beside the t-interval, which is the test.

    >>> r = hierarchical_bootstrap([([0, 0, 1, 1], [1, 1, 1, 1]), ([0, 1, 1, 1], [1, 1, 1, 1])], n_boot=200)
    >>> r.value, r.n
    (0.375, 2)
    """
    diffs = []
    for before, after in pairs:
        a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
        if a.shape != b.shape or a.size == 0:
            raise ValueError(
                f"a seed's paired values need the same, non-empty problems: {a.size} vs {b.size}"
            )
        diffs.append(b - a)
    if not diffs:
        return Estimate(None, (None, None), 0)
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for i in range(n_boot):
        picked = rng.integers(0, len(diffs), size=len(diffs))
        draws[i] = np.mean(
            [diffs[s][rng.integers(0, diffs[s].size, size=diffs[s].size)].mean() for s in picked]
        )
    tail = (1 - level) / 2
    lo, hi = np.quantile(draws, [tail, 1 - tail])
    return Estimate(float(np.mean([d.mean() for d in diffs])), (float(lo), float(hi)), len(diffs))


def sign_test(before: Sequence[float], after: Sequence[float]) -> dict[str, float]:
    """Exact two-sided sign test on paired per-problem values: the problems where `after` is higher (c)
    against those where it is lower (b); ties say nothing. McNemar's exact test when values are right/wrong.

    >>> r = sign_test([0, 0, 0, 0, 1, 0.5], [1, 1, 1, 1, 1, 0.25]); r["c"], r["b"], r["p_value"]
    (4, 1, 0.375)
    """
    b = sum(1 for x, y in zip(before, after) if x > y)
    c = sum(1 for x, y in zip(before, after) if y > x)
    return mcnemar_counts(b, c)
