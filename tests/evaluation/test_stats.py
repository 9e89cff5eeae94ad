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
    assert e["value"] == 0.5 and e["n"] == 4 and e["ci"][0] <= 0.5 <= e["ci"][1]
    d = paired_delta([0] * 50 + [1] * 50, [1] * 100, n_boot=500)
    assert d["value"] == 0.5 and d["ci"][0] > 0.35
    with pytest.raises(ValueError, match="same problems"):
        paired_delta([1, 0], [1])
    assert estimate([]) == {"value": None, "ci": [None, None], "n": 0}  # JSON has no NaN


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
    assert free["ci"][0] < 0 and rate["ci"] == [0.0, free["ci"][1]] and rate["value"] == free["value"]
    assert stats.across_seeds([-0.9, 0.9], bounds=(-1.0, 1.0))["ci"] == [-1.0, 1.0]
    assert doctest.testmod(stats).failed == 0
