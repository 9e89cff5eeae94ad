import math

import numpy as np
import pytest

from secondtry.evaluation.metrics import pass_at_k
from secondtry.evaluation.stats import bootstrap_ci, estimate, mcnemar, paired_delta


def test_pass_at_k_matches_closed_form_and_sampling():
    assert pass_at_k(10, 0, 3) == 0.0 and pass_at_k(10, 10, 1) == 1.0
    for n, c, k in [(10, 3, 1), (10, 3, 4), (16, 5, 8), (5, 2, 2)]:
        closed = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert pass_at_k(n, c, k) == pytest.approx(closed)
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the mean
    rng = np.random.default_rng(0)  # pass@k = P(a random k-subset holds a correct one)
    pool = np.array([1] * 3 + [0] * 7)
    hits = np.mean([pool[rng.choice(10, 4, replace=False)].any() for _ in range(20000)])
    assert hits == pytest.approx(pass_at_k(10, 3, 4), abs=0.015)
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_bootstrap_ci_covers_the_true_rate_about_95_percent():
    rng = np.random.default_rng(1)
    p, n, covered, trials = 0.3, 200, 0, 300
    for t in range(trials):
        lo, hi = bootstrap_ci(rng.random(n) < p, n_boot=600, seed=t)
        covered += lo <= p <= hi
    assert 0.90 <= covered / trials <= 0.99


def test_estimate_and_paired_delta():
    e = estimate([1, 1, 0, 0], n_boot=500)
    assert e.value == 0.5 and e.n == 4 and e.ci[0] <= 0.5 <= e.ci[1]
    d = paired_delta([0] * 50 + [1] * 50, [1] * 100, n_boot=500)
    assert d.value == 0.5 and d.ci[0] > 0.35
    with pytest.raises(ValueError, match="same problems"):
        paired_delta([1, 0], [1])
    assert estimate([]).to_json() == {"value": None, "ci": [None, None], "n": 0}  # JSON has no NaN


def test_mcnemar_against_a_hand_computed_table():
    # b = 2 right->wrong, c = 8 wrong->right: two-sided exact p = 2 * P(X <= 2 | n=10, 1/2) = 112/1024
    before = [1, 1] + [0] * 8 + [1] * 5
    after = [0, 0] + [1] * 8 + [1] * 5
    r = mcnemar(before, after)
    assert (r["b"], r["c"]) == (2, 8)
    assert r["p_value"] == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert mcnemar([1, 0], [1, 0])["p_value"] == 1.0


def test_seed_intervals_are_t_intervals_cut_to_the_quantity_s_range():
    import doctest

    from secondtry.evaluation import stats

    free = stats.across_seeds([0.0, 0.02, 0.1])
    rate = stats.across_seeds([0.0, 0.02, 0.1], bounds=(0.0, 1.0))
    assert free.ci[0] < 0 and rate.ci == (0.0, free.ci[1]) and rate.value == free.value
    assert stats.across_seeds([-0.9, 0.9], bounds=(-1.0, 1.0)).ci == (-1.0, 1.0)
    assert doctest.testmod(stats).failed == 0


def _seed_outcomes(up: int, down: int, n: int = 500) -> tuple[list[float], list[float]]:
    """Per-problem right/wrong of a reference and a condition in one seed: `up` problems only the condition
    solves, `down` only the reference, the rest tied (half solved by both)."""
    ties = n - up - down
    ref = [0.0] * up + [1.0] * down + [1.0] * (ties // 2) + [0.0] * (ties - ties // 2)
    cond = [1.0] * up + [0.0] * down + [1.0] * (ties // 2) + [0.0] * (ties - ties // 2)
    return ref, cond


def test_three_seeds_that_disagree_are_not_called_significant_at_the_seed_level():
    """Per-seed counts (120 up, 60 down), (50, 110), (125, 60) on 500 problems: summed over seeds and taken as
    independent, the problems give p = 0.005; the seeds, the unit that was randomised, give nothing."""
    from secondtry.evaluation.stats import hierarchical_bootstrap, mcnemar_counts, seed_test

    seeds = [_seed_outcomes(120, 60), _seed_outcomes(50, 110), _seed_outcomes(125, 60)]
    pooled = mcnemar_counts(60 + 110 + 60, 120 + 50 + 125)["p_value"]  # the invalid pooled sign test
    assert 0.004 < pooled < 0.006
    diffs = [np.mean(c) - np.mean(r) for r, c in seeds]
    assert [round(d * 100) for d in diffs] == [12, -12, 13]
    test = seed_test(diffs)
    assert test.p_value > 0.5 and test.df == 2
    lo, hi = test.ci
    assert (
        lo < 0 < hi and round(lo * 100) == -31 and round(hi * 100) == 39
    )  # the seeds' t-interval: [-31, +39] pp
    boot = hierarchical_bootstrap(seeds, n_boot=1000, seed=1)
    assert boot.ci[0] < 0 < boot.ci[1]


def test_seed_test_says_why_it_cannot_test():
    from secondtry.evaluation.stats import seed_test

    one = seed_test([0.1])
    assert one.p_value is None and "one seed" in one.reason
    same = seed_test([0.05, 0.05, 0.05])
    assert same.p_value is None and "same amount" in same.reason
    consistent = seed_test([0.10, 0.12, 0.11, 0.09, 0.13])
    assert consistent.p_value < 0.001 and consistent.ci[0] > 0.08


def test_rates_at_the_edges_get_score_intervals_not_zero_width_ones():
    from secondtry.evaluation.stats import rate

    for values in ([1.0] * 40, [0.0] * 40):
        r = rate(values, n_boot=200)
        lo, hi = r.ci
        assert r.method == "wilson" and hi - lo > 0.05 and 0 <= lo <= r.value <= hi <= 1
    near = rate([1.0] * 37 + [0.75] * 3, n_boot=200)  # shares of samples, 0.75 failures' worth: near 100%
    assert near.method == "wilson" and near.ci[0] < near.value < near.ci[1]
    middle = rate([0.25, 0.5, 0.75, 1.0] * 25, n_boot=200)
    assert middle.method == "bootstrap"
    rng = np.random.default_rng(3)  # the score interval covers a rare rate about 95% of the time
    hits = [rate((rng.random(60) < 0.03).astype(float)).ci for _ in range(400)]
    assert 0.90 <= np.mean([lo <= 0.03 <= hi for lo, hi in hits]) <= 0.995


def test_t_quantiles_are_exact_for_every_degree_of_freedom():
    from secondtry.evaluation.stats import across_seeds, t_quantile

    assert t_quantile(1) == pytest.approx(12.706, abs=1e-3) and t_quantile(30) == pytest.approx(
        2.042, abs=1e-3
    )
    assert t_quantile(40) == pytest.approx(2.021, abs=1e-3) and t_quantile(40) > 1.96  # no switch to 1.96
    x = list(np.linspace(0, 1, 41))
    r = across_seeds(x)
    half = (r.ci[1] - r.ci[0]) / 2
    assert half == pytest.approx(t_quantile(40) * np.std(x, ddof=1) / np.sqrt(41))


def test_undefined_bootstrap_draws_are_counted_and_an_undefined_ratio_says_why():
    from secondtry.evaluation.stats import bootstrap_statistic

    def ratio(m):
        return None if m[1] == 0 else m[0] / m[1]

    r = bootstrap_statistic([[1, 0, 0, 0, 1], [1, 0, 0, 0, 0]], ratio, n_boot=400, seed=0)
    assert r.undefined_draws > 0 and r.draws == 400  # resamples without the one nonzero denominator
    none = bootstrap_statistic([[1, 0], [0, 0]], ratio, n_boot=50, undefined="no denominator")
    assert none.value is None and none.reason == "no denominator"


def test_paired_differences_at_the_ceiling_keep_a_width():
    """Both rounds at 100 %: every paired difference is 0 and a bootstrap says [0, 0]; the score interval keeps
    the uncertainty 1000 problems leave."""
    from secondtry.evaluation.stats import paired_delta

    d = paired_delta([1.0] * 1000, [1.0] * 1000, n_boot=200)
    assert d.method == "newcombe" and d.value == 0.0 and d.ci[0] < -0.003 and d.ci[1] > 0.003
    rng = np.random.default_rng(5)  # coverage of a small paired difference of right/wrong outcomes
    hits = 0
    for _ in range(300):
        before = rng.random(200) < 0.5
        after = np.where(rng.random(200) < 0.9, before, rng.random(200) < 0.6)
        lo, hi = paired_delta(before.astype(float), after.astype(float)).ci
        hits += lo <= 0.1 * (0.6 - 0.5) <= hi
    assert 0.9 <= hits / 300 <= 0.995
    middle = paired_delta([0.25, 0.5, 0.75] * 30, [0.5, 0.75, 1.0] * 30, n_boot=200)
    assert middle.method == "bootstrap"
