"""Each stopping policy at its boundary, the order decide() asks them in, and stopping.enforce."""

import pytest

from secondtry.config import build_config
from secondtry.stopping import (
    STOPPING,
    StopState,
    ci_patience,
    decide,
    max_rounds,
    negative_gain,
    retry_yield,
)
from test_stopping import BASE  # the smallest valid config


def stopping(**section):
    return build_config({**BASE, "stopping": section}).stopping


def test_retry_yield_stops_strictly_below_its_threshold_and_only_before_training():
    s = stopping(min_retry_yield=0.2)
    assert retry_yield(StopState(1, "before_train", retry_yield=0.2, examples=5), s) is None  # at: go on
    reason = retry_yield(StopState(1, "before_train", retry_yield=0.1999, examples=5), s)
    assert reason and "retry yield 20.0% on the training frontier is below 20%" in reason
    assert retry_yield(StopState(1, "after_eval", retry_yield=0.0, examples=5), s) is None
    assert retry_yield(StopState(1, "before_train", retry_yield=None, examples=5), s) is None  # not measured
    assert retry_yield(StopState(1, "before_train", retry_yield=0.0), stopping(min_retry_yield=0)) is None


def test_negative_gain_stops_on_any_loss_and_not_on_a_flat_round():
    s = stopping()
    assert negative_gain(StopState(2, "after_eval", gain=0.0), s) is None
    assert negative_gain(StopState(2, "after_eval", gain=-1e-9), s)
    assert negative_gain(StopState(2, "after_eval", gain=None), s) is None  # no gain measured
    assert negative_gain(StopState(2, "before_train", gain=-0.5), s) is None


def test_max_rounds_stops_at_the_last_round_after_its_evaluation():
    s = stopping(max_rounds=3)
    assert max_rounds(StopState(2, "after_eval"), s) is None
    assert max_rounds(StopState(3, "after_eval"), s) == "reached stopping.max_rounds=3"
    assert max_rounds(StopState(4, "after_eval"), s)
    assert max_rounds(StopState(3, "before_train"), s) is None


def test_ci_patience_looks_at_the_last_rounds_only_and_a_bound_at_zero_is_no_gain():
    s = stopping(policies=["ci_patience"], patience=2)
    clear, at_zero, barely = [0.01, 0.05], [0.0, 0.04], [1e-6, 0.03]
    assert (
        ci_patience(StopState(1, "after_eval", gain_cis=[at_zero]), s) is None
    )  # fewer rounds than patience
    assert ci_patience(StopState(2, "after_eval", gain_cis=[at_zero, at_zero]), s)  # 0 is not above zero
    assert ci_patience(StopState(2, "after_eval", gain_cis=[at_zero, barely]), s) is None
    # a clear gain three rounds back is outside the window of two
    assert ci_patience(StopState(3, "after_eval", gain_cis=[clear, at_zero, at_zero]), s)
    assert ci_patience(StopState(3, "after_eval", gain_cis=[at_zero, clear, at_zero]), s) is None
    assert ci_patience(StopState(2, "before_train", gain_cis=[at_zero, at_zero]), s) is None
    assert ci_patience(StopState(2, "after_eval", gain_cis=None), s) is None


@pytest.mark.parametrize(
    "name,state",
    [
        ("retry_yield", StopState(1, "before_train", retry_yield=0.0, examples=3)),
        ("negative_gain", StopState(1, "after_eval", gain=-0.1)),
        ("ci_patience", StopState(1, "after_eval", gain_cis=[[-0.1, 0.1]])),
        ("max_rounds", StopState(1, "after_eval")),
    ],
)
def test_each_policy_decides_only_when_the_config_lists_it(name, state):
    on = decide(state, stopping(policies=[name], max_rounds=1))
    assert on.stop and on.policy == name and on.reason == STOPPING[name](state, stopping(max_rounds=1))
    others = [p for p in STOPPING if p != name and not STOPPING[p](state, stopping(max_rounds=5))]
    off = decide(state, stopping(policies=others, max_rounds=5))
    assert not off.stop and off.policy is None and off.reason == "continue"


def test_decide_asks_the_policies_in_the_configs_order_and_the_first_stop_wins():
    state = StopState(3, "after_eval", retry_yield=0.5, examples=7, gain=-0.02, gain_cis=[[-0.05, 0.01]])
    assert (
        decide(state, stopping(policies=["max_rounds", "negative_gain"], max_rounds=3)).policy == "max_rounds"
    )
    assert (
        decide(state, stopping(policies=["negative_gain", "max_rounds"], max_rounds=3)).policy
        == "negative_gain"
    )
    assert decide(state, stopping(policies=["ci_patience", "negative_gain"])).policy == "ci_patience"


def test_no_examples_stops_before_any_policy_is_asked_and_only_before_training():
    s = stopping(policies=["retry_yield"], min_retry_yield=0.5)
    none = decide(StopState(1, "before_train", retry_yield=0.1, examples=0), s)
    assert none.stop and none.policy == "no_examples" and none.reason == "no correct retries to train on"
    assert decide(StopState(1, "before_train", retry_yield=0.1, examples=2), s).policy == "retry_yield"
    assert not decide(StopState(1, "after_eval", retry_yield=0.1, examples=0), s).stop


def test_the_decision_records_the_measured_inputs_only():
    d = decide(StopState(2, "after_eval", retry_yield=0.3, examples=4, gain=0.01), stopping(max_rounds=5))
    assert dict(d.inputs) == {
        "round": 2,
        "phase": "after_eval",
        "retry_yield": 0.3,
        "examples": 4,
        "gain": 0.01,
    }


def test_enforce_false_records_where_the_policies_would_have_stopped():
    """With stopping.enforce: false the run goes on; its summary names the first round a policy stopped."""
    import dataclasses

    from round_records import round_of
    from secondtry.loop import summarize_run
    from secondtry.records import PolicyStop
    from secondtry.types import Decision

    def result(k, stop, policy=None):
        r = round_of(k, figures={"eval": {"pass1_sampled": {"value": 0.1 * k}}})
        return dataclasses.replace(r, decision=Decision(stop, policy or "continue", policy))

    history = [result(0, False), result(1, True, "negative_gain"), result(2, True, "max_rounds")]
    for enforce in (True, False):
        cfg = build_config({**BASE, "stopping": {"enforce": enforce, "max_rounds": 2}})
        summary = summarize_run(cfg, history)
        assert summary.policy_stop == PolicyStop(1, "negative_gain", "negative_gain", enforce)
        assert summary.stopped_by == "max_rounds" and summary.rounds == 2
