import pytest

from secondtry.conditions import CONDITIONS, first_attempt, gold_hint, retry
from secondtry.config import build_config
from secondtry.filtering import select
from secondtry.stopping import STOPPING, StopState, decide
from secondtry.types import Attempt, Message, Problem, Verdict

BASE = {"name": "t", "model": {"path": "m/x"}, "train_task": {"name": "synthetic"},
        "eval_task": {"name": "synthetic", "split": "test"}}
P = Problem("p1", "2+3", "5")


def cfg(**extra):
    return build_config({**BASE, **extra})


def test_retry_sees_the_failed_attempts_then_the_retry_prompt():
    c = cfg(model={"path": "m/x", "system_prompt": "Be brief."})
    assert first_attempt(P, [], c) == [Message("system", "Be brief."), Message("user", "2+3")]
    conv = retry(P, ["a1", "a2"], c)
    assert [m.role for m in conv] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert conv[-1].content == "Try again carefully." and conv[2].content == "a1"
    last = retry(P, ["a1", "a2"], cfg(conditions={"history": "last"}))
    assert [m.content for m in last] == ["2+3", "a2", "Try again carefully."]
    assert "5" in gold_hint(P, ["a1"], c)[-1].content and set(CONDITIONS) >= {"first_attempt", "retry", "gold_hint"}


def att(pid, kind, ok, text="t", steps=None, turn=1):
    return Attempt(pid, kind, turn if kind == "retry" else 0, 0, (), text, 3, "stop", Verdict(ok, None, "", steps))


def test_filter_keeps_correct_retries_as_single_turn_examples():
    problems = {"p1": P, "p2": Problem("p2", "1+1", "2")}
    attempts = [att("p1", "first", False), att("p1", "retry", True, "good"), att("p2", "first", True, "first"),
                att("p2", "retry", False), att("p1", "retry", True, "good"), att("p1", "retry", True, "other"),
                att("p2", "retry", None)]
    examples, stats = select(attempts, problems, first_attempt, cfg())
    assert [(e.problem_id, e.completion, e.source) for e in examples] == [("p1", "good", "retry")]
    assert examples[0].messages == (Message("user", "2+3"),)  # the model never sees the failure
    assert stats["rejected"] == {"wrong": 1, "duplicate": 1, "over_cap": 1, "unjudged": 1}
    more, stats = select(attempts, problems, first_attempt,
                         cfg(filter={"max_per_problem": 5, "include_first_attempts": True}))
    assert sorted(e.completion for e in more) == ["first", "good", "other"] and stats["kept"] == 3


def test_step_filter_rejects_lucky_retries_and_counts_them():
    attempts = [att("p1", "retry", True, "lucky", steps=(True, False)), att("p1", "retry", True, "sound", (True, True))]
    ex, stats = select(attempts, {"p1": P}, first_attempt, cfg(filter={"require": "steps", "max_per_problem": 3}))
    assert [e.completion for e in ex] == ["sound"] and stats["rejected"] == {"lucky": 1}
    assert stats["lucky_share"] == 0.5
    ex, stats = select(attempts, {"p1": P}, first_attempt, cfg(filter={"max_per_problem": 3}))
    assert len(ex) == 2
    with pytest.raises(ValueError, match="does not check steps"):
        select([att("p1", "retry", True)], {"p1": P}, first_attempt, cfg(filter={"require": "steps"}))


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
