from secondtry.config import build_config
from secondtry.stopping import STOPPING, StopState, decide

BASE = {"name": "t", "model": {"path": "m/x"}, "train_task": {"name": "synthetic"},
        "eval_task": {"name": "synthetic", "split": "test"}}


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
    assert set(STOPPING) == {"retry_yield", "negative_gain", "max_rounds"}
