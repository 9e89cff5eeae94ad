import pytest

from secondtry.conditions import (
    CONDITIONS,
    PRIVILEGED,
    first_attempt,
    gold_hint,
    rationalize,
    resample,
    retry,
)
from secondtry.config import build_config
from secondtry.types import Message, Problem

BASE = {
    "name": "t",
    "model": {"path": "m/x"},
    "train_task": {"name": "synthetic"},
    "eval_task": {"name": "synthetic", "split": "test"},
    "evaluation": {"select_on": "test"},
}  # several rounds by default: where to choose must be said
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
    assert "5" in gold_hint(P, ["a1"], c)[-1].content and set(CONDITIONS) >= {
        "first_attempt",
        "retry",
        "gold_hint",
    }


# ---------------------------------------------------------------- each builder's conversation

Q = Problem("q1", "What is 6*7?", "42", solution="6*7=42")
HINT = "(Hint: the correct final answer is 42.)"


def contents(messages):
    return [(m.role, m.content) for m in messages]


def test_first_attempt_is_the_problem_alone_and_ignores_failures():
    assert contents(first_attempt(Q, ["41", "40"], cfg())) == [("user", "What is 6*7?")]
    assert contents(first_attempt(Q, [], cfg(model={"path": "m/x", "system_prompt": "Think."}))) == [
        ("system", "Think."),
        ("user", "What is 6*7?"),
    ]


def test_retry_shows_every_failure_in_order_or_only_the_last():
    every = retry(Q, ["41", "40"], cfg())
    assert contents(every) == [
        ("user", "What is 6*7?"),
        ("assistant", "41"),
        ("user", "Try again carefully."),
        ("assistant", "40"),
        ("user", "Try again carefully."),
    ]
    last = retry(Q, ["41", "40"], cfg(conditions={"history": "last"}))
    assert contents(last) == [("user", "What is 6*7?"), ("assistant", "40"), ("user", "Try again carefully.")]
    own = retry(Q, ["41"], cfg(conditions={"retry_prompt": "Check each step."}))
    assert own[-1] == Message("user", "Check each step.")
    assert all("42" not in m.content for m in every + last)  # a bare retry never shows the gold


def test_gold_hint_is_the_retry_with_the_gold_answer_in_each_retry_prompt():
    hinted = gold_hint(Q, ["41", "40"], cfg())
    assert contents(hinted) == [
        ("user", "What is 6*7?"),
        ("assistant", "41"),
        ("user", f"Try again carefully. {HINT}"),
        ("assistant", "40"),
        ("user", f"Try again carefully. {HINT}"),
    ]
    last = gold_hint(Q, ["41", "40"], cfg(conditions={"history": "last"}))
    assert [m.content for m in last] == ["What is 6*7?", "40", f"Try again carefully. {HINT}"]


def test_rationalize_asks_the_problem_again_with_the_gold_and_hides_the_failure():
    c = cfg(model={"path": "m/x", "system_prompt": "Think."})
    assert contents(rationalize(Q, ["41", "40"], c)) == [
        ("system", "Think."),
        ("user", f"What is 6*7?\n\n{HINT}"),
    ]
    assert rationalize(Q, [], cfg(conditions={"history": "last"})) == rationalize(Q, ["41"], cfg())


def test_resample_is_a_fresh_first_attempt():
    c = cfg(model={"path": "m/x", "system_prompt": "Think."})
    assert resample(Q, ["41", "40"], c) == first_attempt(Q, [], c)


@pytest.mark.parametrize("name", sorted(CONDITIONS))
def test_a_condition_shows_the_gold_answer_exactly_when_it_is_marked_privileged(name):
    shown = " ".join(m.content for m in CONDITIONS[name](Q, ["41"], cfg()))
    assert ("42" in shown) == (name in PRIVILEGED), shown
    assert Q.solution not in shown  # the reference solution is never shown
