"""Statistics over problems: bootstrap confidence intervals, paired differences, McNemar.

Every rate in secondtry is a mean of per-problem values, so its uncertainty comes from
resampling problems (the test set is a sample of the task's distribution).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def bootstrap_ci(values: Sequence[float], n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
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


def estimate(values: Sequence[float], n_boot: int = 2000, seed: int = 0) -> dict[str, object]:
    """{"value": mean, "ci": [lo, hi], "n": count} — the shape of every figure in round.json.

    No values give {"value": None, "ci": [None, None], "n": 0} (JSON has no NaN).
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return {"value": None, "ci": [None, None], "n": 0}
    lo, hi = bootstrap_ci(x, n_boot, seed)
    return {"value": float(x.mean()), "ci": [lo, hi], "n": int(x.size)}


def bootstrap_statistic(columns: Sequence[Sequence[float]], statistic, n_boot: int = 2000, seed: int = 0,
                        level: float = 0.95) -> dict[str, object]:
    """A statistic of column means, with a percentile CI from resampling problems (rows) jointly.

    `statistic(means)` gets one mean per column; resamples where it is undefined (None) are
    dropped. For ratios of paired gains: decay, absorbed share of the gap.

    >>> r = bootstrap_statistic([[1, 0, 1, 1], [0, 0, 1, 1]], lambda m: m[0] - m[1], n_boot=200)
    >>> r["value"], r["n"]
    (0.25, 4)
    """
    x = np.asarray(columns, dtype=float)
    value = statistic(x.mean(axis=1))
    if value is None:
        return {"value": None, "ci": [None, None], "n": int(x.shape[1])}
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        v = statistic(x[:, rng.integers(0, x.shape[1], size=x.shape[1])].mean(axis=1))
        if v is not None and math.isfinite(v):
            draws.append(v)
    tail = (1 - level) / 2
    lo, hi = np.quantile(draws, [tail, 1 - tail]) if draws else (math.nan, math.nan)
    return {"value": float(value), "ci": [float(lo), float(hi)], "n": int(x.shape[1])}


def paired_delta(before: Sequence[float], after: Sequence[float], n_boot: int = 2000,
                 seed: int = 0) -> dict[str, object]:
    """Mean of after − before over the same problems, with a paired bootstrap CI."""
    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired figures need the same problems: {a.size} vs {b.size} values")
    return estimate(b - a, n_boot, seed)


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
    tail = sum(math.comb(n, i) for i in range(0, min(b, c) + 1)) / 2 ** n
    return {"b": b, "c": c, "p_value": min(1.0, 2 * tail)}


# two-sided 95% Student t quantiles, t(0.975, df) for df = 1..30
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]


def across_seeds(values: Sequence[float], bounds: tuple[float, float] | None = None) -> dict[str, object]:
    """Mean over seeds with a 95% t-interval (seeds are few; the bootstrap needs many), cut to `bounds`
    where the quantity has them (a rate lies in [0, 1], a difference of rates in [-1, 1]).

    >>> r = across_seeds([0.1, 0.2, 0.3]); round(r["value"], 3), [round(x, 3) for x in r["ci"]]
    (0.2, [-0.048, 0.448])
    >>> [round(x, 3) for x in across_seeds([0.1, 0.2, 0.3], bounds=(0.0, 1.0))["ci"]]
    [0.0, 0.448]
    """
    x = np.asarray(values, dtype=float)
    mean = float(x.mean()) if x.size else math.nan
    if x.size < 2:
        return {"value": mean, "ci": [math.nan, math.nan], "n": int(x.size)}
    t = _T975[x.size - 2] if x.size - 1 <= len(_T975) else 1.96
    half = t * float(x.std(ddof=1)) / math.sqrt(x.size)
    lo, hi = bounds or (-math.inf, math.inf)
    return {"value": mean, "ci": [max(lo, mean - half), min(hi, mean + half)], "n": int(x.size)}
