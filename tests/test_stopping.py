from secondtry.config import build_config
from secondtry.stopping import STOPPING, StopState, decide

BASE = {
    "name": "t",
    "model": {"path": "m/x"},
    "train_task": {"name": "synthetic"},
    "eval_task": {"name": "synthetic", "split": "test"},
    "evaluation": {"select_on": "test"},
}  # several rounds by default: where to choose must be said


def cfg(**extra):
    return build_config({**BASE, **extra})


def test_stopping_policies_and_decision_record():
    s = cfg(stopping={"min_retry_yield": 0.15, "max_rounds": 3}).stopping
    low = decide(StopState(2, "before_train", retry_yield=0.1, examples=40), s)
    assert low.stop and low.policy == "retry_yield" and low.inputs["retry_yield"] == 0.1
    assert decide(StopState(1, "before_train", retry_yield=0.3, examples=0), s).policy == "no_examples"
    assert not decide(StopState(1, "before_train", retry_yield=0.3, examples=9), s).stop
    worse = decide(StopState(2, "after_eval", 0.3, 9, gain=-0.016), s)
    assert worse.stop and worse.policy == "negative_gain" and "-1.6 pp" in worse.reason
    assert decide(StopState(3, "after_eval", 0.3, 9, gain=0.01), s).policy == "max_rounds"
    assert not decide(StopState(2, "after_eval", 0.3, 9, gain=0.01), s).stop
    assert set(STOPPING) == {"retry_yield", "negative_gain", "ci_patience", "max_rounds"}


def test_ci_patience_waits_for_rounds_without_a_clear_gain():
    s = cfg(stopping={"policies": ["ci_patience"], "patience": 2, "max_rounds": 9}).stopping
    clear, unclear, worse = [0.01, 0.09], [-0.02, 0.05], [-0.08, -0.01]
    assert not decide(
        StopState(1, "after_eval", gain=0.02, gain_cis=[unclear]), s
    ).stop  # one round: too soon
    assert not decide(StopState(2, "after_eval", gain=0.02, gain_cis=[unclear, clear]), s).stop
    stop = decide(StopState(3, "after_eval", gain=-0.04, gain_cis=[clear, unclear, worse]), s)
    assert stop.stop and stop.policy == "ci_patience" and "-2.0 pp, -8.0 pp" in stop.reason
    assert stop.inputs["gain_cis"] == [clear, unclear, worse]  # the inputs are recorded with the decision
    assert not decide(
        StopState(3, "before_train", retry_yield=0.5, examples=9, gain_cis=[unclear, worse]), s
    ).stop
    one = cfg(stopping={"policies": ["ci_patience"], "patience": 1}).stopping
    assert decide(
        StopState(1, "after_eval", gain=0.0, gain_cis=[[None, None]]), one
    ).stop  # no CI: not a clear gain


def test_a_stop_reason_names_the_metric_and_the_set_its_gain_was_measured_on():
    s = cfg(stopping={"max_rounds": 3}).stopping
    worse = decide(
        StopState(2, "after_eval", 0.3, 9, gain=-0.018, gain_on="validation", metric="pass1_sampled"), s
    )
    assert worse.reason == (
        "sampled pass@1 on the validation split changed by -1.8 pp from the round "
        "before: the next round would not pay"
    )
    assert worse.inputs["metric"] == "pass1_sampled" and worse.inputs["gain_on"] == "validation"
    greedy = decide(StopState(2, "after_eval", gain=-0.02, gain_on="test", metric="pass1_greedy"), s)
    assert greedy.reason.startswith("greedy pass@1 on the test set changed by -2.0 pp")
    patience = cfg(stopping={"policies": ["ci_patience"], "patience": 1}).stopping
    flat = decide(
        StopState(
            1, "after_eval", gain=0.0, gain_cis=[[-0.01, 0.01]], gain_on="validation", metric="pass1_sampled"
        ),
        patience,
    )
    assert "gained sampled pass@1 on the validation split with a 95% CI above zero" in flat.reason
