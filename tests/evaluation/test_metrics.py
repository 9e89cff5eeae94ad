import pytest

from secondtry.evaluation.metrics import (
    compare_evals,
    eval_record,
    per_problem,
    summarize_eval,
    train_figures,
)
from secondtry.records import GainedLost
from secondtry.types import Attempt, Message, Verdict


def att(pid, kind, turn, sample, ok, n_tokens=5):
    return Attempt(
        pid, kind, turn, sample, (Message("user", pid),), "x", n_tokens, "stop", Verdict(ok, "1", "")
    )


def rec(pid, greedy, samples, chain):
    g = att(pid, "greedy", 0, 0, greedy)
    s = [att(pid, "sample", 0, i, ok) for i, ok in enumerate(samples)]
    c = [s[0]] + [att(pid, "retry", t, 0, ok) for t, ok in enumerate(chain[1:], start=1)]
    return eval_record(pid, g, s, c, [1, 2])


def test_eval_record_and_summary():
    records = [
        rec("a", True, [True, False], [True]),
        rec("b", False, [False, False], [False, False, True]),
        rec("c", None, [False, True], [False, False, False]),
    ]
    assert records[1].chain == (False, False, True)
    assert records[2].greedy is False  # "cannot judge" counts as not solved
    assert records[0].pass_at_k == {"1": 0.5, "2": 1.0}
    assert records[1].tokens == 5 * (1 + 2 + 2)
    s = summarize_eval(records, n_boot=200, seed=0, retry_n=3)
    assert s["pass1_sampled"].value == pytest.approx(2 / 6)
    assert s["pass1_greedy"].value == pytest.approx(1 / 3)
    assert s["pass_n_retry"].value == pytest.approx(2 / 3)
    assert s["gap"].value == pytest.approx(2 / 3 - 2 / 6)
    assert s["pass_at_2"].value == pytest.approx(2 / 3)
    assert s.retry_n == 3


def test_compare_evals_gains_decay_absorbed_share_and_flips():
    base = [rec(p, False, [False, False], [False, True]) for p in "abcd"]  # pass@1 0, pass@N 1, gap 1
    mid = [rec(p, True, [True, True], [True]) for p in "abcd"[:1]] + [
        rec(p, False, [False, False], [False, True]) for p in "bcd"
    ]
    now = [rec(p, True, [True, True], [True]) for p in "ab"] + [
        rec(p, False, [False, False], [False, True]) for p in "cd"
    ]
    first = compare_evals(base, None, base, mid, "pass1_sampled", n_boot=300, seed=0)
    assert first.delta_from_base.value == pytest.approx(0.25) and first.decay is None
    out = compare_evals(base, base, mid, now, "pass1_sampled", n_boot=300, seed=0)
    assert out.delta_from_base.value == pytest.approx(0.5)
    assert out.delta_from_prev.value == pytest.approx(0.25)
    assert out.decay.value == pytest.approx(1.0)  # +25 pp after +25 pp
    assert out.absorbed_share.value == pytest.approx(0.5)  # gap 1.0 -> 0.5
    lo, hi = out.absorbed_share.ci
    assert 0 <= lo <= 0.5 <= hi <= 1
    assert out.flips_vs_prev == GainedLost(metric="pass1_sampled", gained=1, lost=0, unchanged=3, p_value=1.0)
    with pytest.raises(ValueError, match="different problem sets"):
        compare_evals(base, None, base, now[:3], "pass1_sampled", 200, 0)


def test_problems_gained_and_lost_follow_the_headline_metric_not_greedy_outcomes():
    """A sampled headline counts a problem as gained when more of its samples are right, whatever greedy
    did."""
    from secondtry.evaluation.metrics import gained_and_lost

    yes, no = True, False
    prev = [
        rec("a", yes, [yes, no, no, no], [yes]),
        rec("b", no, [yes, yes, no, no], [yes]),
        rec("c", yes, [yes, yes], [yes]),
    ]
    now = [
        rec("a", yes, [yes, yes, yes, no], [yes]),
        rec("b", yes, [no, no, no, no], [no]),
        rec("c", yes, [yes, yes], [yes]),
    ]
    sampled = gained_and_lost(prev, now, "pass1_sampled")
    assert (sampled.gained, sampled.lost, sampled.unchanged) == (1, 1, 1)  # a rose, b fell, c same
    greedy = gained_and_lost(prev, now, "pass1_greedy")
    assert (greedy.gained, greedy.lost, greedy.unchanged) == (1, 0, 2)  # b's greedy flipped right
    base = [rec(p, False, [False, False], [False]) for p in "abc"]
    both = compare_evals(base, None, prev, now, "pass1_greedy", 200, 0).flips_vs_prev
    assert both.metric == "pass1_greedy" and both.gained == 1


def test_train_figures_retry_yield_on_the_frontier():
    attempts = [
        att("a", "first", 0, 0, True),
        att("b", "first", 0, 0, False),
        att("c", "first", 0, 0, False),
        att("d", "first", 0, 0, None),
        att("b", "retry", 1, 0, True),
        att("c", "retry", 1, 0, False),
    ]
    f = train_figures(attempts, n_boot=200, seed=0)
    assert (f.problems, f.frontier, f.unjudged, f.retried, f.retry_solved) == (4, 2, 1, 2, 1)
    assert f.retry_yield.value == 0.5 and f.first_correct.value == 0.25
    assert f.tokens_generated == 30


def test_per_problem_vectors_align_with_records():
    records = [rec("a", True, [True, False], [True]), rec("b", False, [False, False], [False, True])]
    v = per_problem(records)
    assert v["pass_n_retry"] == [1.0, 1.0] and v["pass1_sampled"] == [0.5, 0.0] and v["gap"] == [0.5, 1.0]
