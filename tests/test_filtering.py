import pytest

from secondtry.conditions import first_attempt
from secondtry.config import build_config
from secondtry.filtering import select
from secondtry.types import Attempt, Message, Problem, Verdict

BASE = {"name": "t", "model": {"path": "m/x"}, "train_task": {"name": "synthetic"},
        "eval_task": {"name": "synthetic", "split": "test"},
        "evaluation": {"select_on": "test"}}  # several rounds by default: where to choose must be said
P = Problem("p1", "2+3", "5")


def cfg(**extra):
    return build_config({**BASE, **extra})


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
