import json

import pytest

from secondtry.evaluation.retry import flips, ledger, retry_lift
from secondtry.records import EvalRecord, ProblemHistory, Rate, RoundLedger, SignTest


def rec(pid, samples, chain=None, greedy=None):
    return EvalRecord(pid, greedy, tuple(samples), tuple(chain if chain is not None else samples[:1]))


# ---------------------------------------------------------------- retry_lift


def test_retry_lift_counts_only_the_frontier_and_matches_budget():
    records = [
        rec("a", [False, False], [False, True]),  # retry fixes, fresh does not
        rec("b", [False, True], [False, True]),  # both fix
        rec("c", [False, True], [False, False, True]),  # fresh fixes, first retry turn does not
        rec("d", [False, False], [False, True]),  # retry fixes
        rec("e", [True, False], [True]),  # not on the frontier: ignored
        rec("f", [True, True], [True]),  # not on the frontier: ignored
    ]
    r = retry_lift(records, n_boot=300, seed=1)
    assert r.n == 4
    assert r.value == pytest.approx((1 + 0 - 1 + 1) / 4)
    assert r.retry.value == pytest.approx(3 / 4) and r.retry.n == 4
    assert r.fresh.value == pytest.approx(2 / 4) and r.fresh.n == 4
    assert r.mcnemar.c == 2 and r.mcnemar.b == 1  # c: only the retry solved; b: only fresh
    lo, hi = r.ci
    assert -1 <= lo <= r.value <= hi <= 1
    assert r.reason is None
    json.dumps(r.to_json())  # JSON-ready


def test_retry_lift_is_negative_when_resampling_does_better():
    records = [rec(p, [False, True], [False, False]) for p in "abc"]
    r = retry_lift(records, n_boot=100)
    assert r.value == -1.0 and r.ci[0] == -1.0 and -1.0 < r.ci[1] < 0  # three problems: a score interval
    assert r.mcnemar == SignTest(b=3, c=0, p_value=0.25)


def test_retry_lift_is_deterministic_in_the_seed():
    records = [
        rec("a", [False, False], [False, True]),
        rec("b", [False, True], [False, False]),
        rec("c", [False, False], [False, False]),
        rec("d", [False, False], [False, True]),
    ]
    assert retry_lift(records, n_boot=200, seed=3) == retry_lift(records, n_boot=200, seed=3)


def test_retry_lift_counts_a_missing_retry_turn_as_wrong():
    records = [rec("a", [False, False], [False, True]), rec("b", [False, True], [False])]
    r = retry_lift(records, n_boot=100)
    assert r.retry.value == 0.5 and r.fresh.value == 0.5 and r.value == 0.0


@pytest.mark.parametrize(
    "records, why",
    [
        ([rec("a", [True, False], [True]), rec("b", [True, True], [True])], "frontier"),
        ([], "frontier"),
        (
            [
                rec("a", [False, True], [False]),
                rec("b", [False, False], [False]),
                rec("c", [True, True], [True]),
            ],
            "N = 1",
        ),
        ([rec("a", [False, True], [False, True]), rec("b", [False], [False, True])], "fewer than 2 samples"),
    ],
)
def test_retry_lift_undefined_cases(records, why):
    r = retry_lift(records, n_boot=50)
    assert r.value is None and r.ci == (None, None) and r.n == 0
    assert r.retry is None and r.fresh is None and r.mcnemar is None
    assert why in r.reason


def test_retry_lift_ignores_single_samples_off_the_frontier():
    records = [rec("a", [True], [True]), rec("b", [False, True], [False, True])]
    assert retry_lift(records, n_boot=50).value == 0.0


def test_retry_lift_rejects_an_empty_chain():
    with pytest.raises(ValueError, match="'a'"):
        retry_lift([rec("a", [False, False], [])])


# ---------------------------------------------------------------- flips


def test_flips_counts_and_rates():
    first = [True, True, True, False, False, False, False, False]
    retried = [True, False, True, True, True, True, False, False]
    f = flips(first, retried, n_boot=300)
    assert (f.wrong_to_right, f.right_to_wrong, f.right_to_right, f.wrong_to_wrong) == (3, 1, 2, 2)
    assert f.n == 8
    assert f.net.value == pytest.approx((3 - 1) / 8) and f.net.n == 8
    assert f.wrong_to_right_rate == pytest.approx(3 / 5)
    assert f.right_to_wrong_rate == pytest.approx(1 / 3)
    assert f.mcnemar.b == 1 and f.mcnemar.c == 3
    assert f.mcnemar.p_value == pytest.approx(2 * (1 + 4) / 16)
    json.dumps(f.to_json())


def test_flips_rates_are_none_without_a_denominator():
    all_right = flips([True, True], [True, False], n_boot=50)
    assert all_right.wrong_to_right_rate is None and all_right.right_to_wrong_rate == 0.5
    all_wrong = flips([False, False], [True, False], n_boot=50)
    assert all_wrong.right_to_wrong_rate is None and all_wrong.wrong_to_right_rate == 0.5


def test_flips_of_nothing():
    f = flips([], [], n_boot=50)
    assert f.n == 0 and f.wrong_to_right == 0
    assert f.net == Rate(value=None, ci=(None, None), n=0, method=None)
    assert f.wrong_to_right_rate is None and f.right_to_wrong_rate is None
    assert f.mcnemar.p_value == 1.0


def test_flips_rejects_unaligned_lists_naming_both_lengths():
    with pytest.raises(ValueError, match=r"3 .*2 "):
        flips([True, False, True], [True, False])


# ---------------------------------------------------------------- ledger


def greedy_rounds(table):
    """table[pid] = greedy outcome per round -> rounds of records."""
    n = len(next(iter(table.values())))
    return [[rec(pid, [ok], greedy=ok) for pid, row in table.items() for ok in [row[k]]] for k in range(n)]


def test_ledger_tracks_first_solves_forgetting_and_regains():
    rounds = greedy_rounds(
        {
            "a": [True, True, True, True],  # always solved
            "b": [False, True, False, True],  # learned in 1, forgotten in 2, regained in 3
            "c": [False, False, True, False],  # learned in 2, forgotten in 3
            "d": [False, False, False, False],  # never
            "e": [True, False, False, True],  # forgotten in 1, regained in 3
        }
    )
    led = ledger(rounds, metric="greedy")
    pp = led.per_problem
    assert pp["b"] == ProblemHistory(solved=(False, True, False, True), first_solved=1, forgotten_in=(2,))
    assert pp["c"].first_solved == 2 and pp["c"].forgotten_in == (3,)
    assert pp["d"].first_solved is None and pp["d"].forgotten_in == ()
    assert pp["e"].first_solved == 0 and pp["e"].forgotten_in == (1,)
    assert list(pp) == ["a", "b", "c", "d", "e"]
    assert led.per_round == (
        RoundLedger(round=0, solved=2, newly_solved=2, forgotten=0, regained=0),
        RoundLedger(round=1, solved=2, newly_solved=1, forgotten=1, regained=0),
        RoundLedger(round=2, solved=2, newly_solved=1, forgotten=1, regained=0),
        RoundLedger(round=3, solved=3, newly_solved=0, forgotten=1, regained=2),
    )
    assert led.ever_solved == 4 and led.never_solved == 1
    assert led.solved_then_forgotten_at_end == 1  # c
    json.dumps(led.to_json())


def test_ledger_regained_needs_a_solve_before_the_previous_round():
    # solved in 1, not in 2, solved in 3: regained in 3; round 1 itself is a first solve, not a regain
    led = ledger(greedy_rounds({"x": [False, True, False, True]}))
    assert [r.regained for r in led.per_round] == [0, 0, 0, 1]
    assert [r.newly_solved for r in led.per_round] == [0, 1, 0, 0]


def test_ledger_sampled_metrics_and_threshold():
    r0 = [rec("a", [True, False, False, False]), rec("b", [True, True, False, False]), rec("c", [False] * 4)]
    r1 = [rec("a", [True, True, True, False]), rec("b", [False, False, False, True]), rec("c", [False] * 4)]
    half = ledger([r0, r1], metric="pass1_sampled")
    assert [half.per_problem[p].solved for p in "abc"] == [(False, True), (True, False), (False, False)]
    strict = ledger([r0, r1], metric="pass1_sampled", threshold=0.75)
    assert [strict.per_problem[p].solved for p in "abc"] == [(False, True), (False, False), (False, False)]
    anyone = ledger([r0, r1], metric="any_sample")
    assert [anyone.per_problem[p].solved for p in "abc"] == [(True, True), (True, True), (False, False)]
    assert anyone.ever_solved == 2 and anyone.solved_then_forgotten_at_end == 0
    assert half.solved_then_forgotten_at_end == 1


def test_ledger_greedy_falls_back_to_sampled_pass1_without_a_greedy_attempt():
    r0 = [rec("a", [True, True], greedy=None), rec("b", [True, True], greedy=False)]
    r1 = [rec("a", [True, False], greedy=None), rec("b", [False, False], greedy=True)]
    r2 = [rec("a", [False, False], greedy=None), rec("b", [False, False], greedy=True)]
    led = ledger([r0, r1, r2], metric="greedy", threshold=0.5)
    assert led.per_problem["a"].solved == (True, True, False)  # fallback: mean(samples) >= 0.5
    assert led.per_problem["b"].solved == (False, True, True)  # greedy decides, samples ignored


def test_ledger_single_round():
    led = ledger([[rec("a", [True], greedy=True), rec("b", [False], greedy=False)]])
    assert led.per_round == (RoundLedger(round=0, solved=1, newly_solved=1, forgotten=0, regained=0),)
    assert led.solved_then_forgotten_at_end == 0 and led.never_solved == 1


def test_ledger_empty_samples_are_unsolved():
    led = ledger([[rec("a", [], chain=[], greedy=None)]], metric="greedy")
    assert led.per_problem["a"].solved == (False,)
    assert ledger([[rec("a", [], chain=[])]], metric="any_sample").never_solved == 1


def test_ledger_rejects_misaligned_rounds():
    r0 = [rec(p, [True]) for p in "abc"]
    with pytest.raises(ValueError, match=r"round 2 .*position 1"):
        ledger([r0, r0, [rec(p, [True]) for p in "acb"]])
    with pytest.raises(ValueError, match=r"round 1 .*position 2"):
        ledger([r0, [rec(p, [True]) for p in "ab"]])
    with pytest.raises(ValueError, match=r"round 1 .*position 3"):
        ledger([r0, [rec(p, [True]) for p in "abcd"]])


def test_ledger_rejects_bad_input():
    with pytest.raises(ValueError, match="metric"):
        ledger([[rec("a", [True])]], metric="pass_at_2")
    with pytest.raises(ValueError, match="round"):
        ledger([])
    with pytest.raises(ValueError, match="'a'"):
        ledger([[rec("a", [True]), rec("a", [False])]])


def test_the_examples_in_the_docstrings_hold():
    import doctest

    from secondtry.evaluation import metrics, retry

    assert doctest.testmod(retry).failed == 0 and doctest.testmod(metrics).failed == 0
