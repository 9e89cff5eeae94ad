from secondtry.conditions import CONDITIONS, first_attempt, gold_hint, retry
from secondtry.config import build_config
from secondtry.types import Message, Problem

BASE = {"name": "t", "model": {"path": "m/x"}, "train_task": {"name": "synthetic"},
        "eval_task": {"name": "synthetic", "split": "test"},
        "evaluation": {"select_on": "test"}}  # several rounds by default: where to choose must be said
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
