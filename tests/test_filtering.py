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



def test_retry_example_keeps_the_whole_retry_turn_or_both():
    failed = "2+3=6|Answer: 6"
    seen = (Message("user", "2+3"), Message("assistant", failed), Message("user", "Try again carefully."))
    retry = Attempt("p1", "retry", 1, 0, seen, "2+3=5|Answer: 5", 3, "stop", Verdict(True, "5", ""))
    first = Attempt("p1", "first", 0, 1, seen[:1], "3+2=5|Answer: 5", 3, "stop", Verdict(True, "5", ""))
    single, _ = select([retry], {"p1": P}, first_attempt, cfg())
    assert [(e.messages, e.source) for e in single] == [((Message("user", "2+3"),), "retry")]
    turn, stats = select([retry], {"p1": P}, first_attempt, cfg(filter={"retry_example": "turn"}))
    assert [(e.messages, e.completion, e.source) for e in turn] == [(seen, "2+3=5|Answer: 5", "retry_turn")]
    config = cfg(filter={"retry_example": "both", "include_first_attempts": True, "max_per_problem": 2})
    both, stats = select([retry, first], {"p1": P}, first_attempt, config)
    assert [(e.messages, e.source) for e in both] == [(seen[:1], "retry"), (seen, "retry_turn"),
                                                      (seen[:1], "first")]
    assert stats["kept"] == 3 and stats["problems"] == 1
    assert stats["kept_from"] == {"retry": 1, "retry_turn": 1, "first": 1}
    resampled = Attempt("p1", "retry", 1, 0, seen[:1], "2+3=5|Answer: 5", 3, "stop", Verdict(True, "5", ""))
    assert len(select([resampled], {"p1": P}, first_attempt, cfg(filter={"retry_example": "both"}))[0]) == 1


def test_retry_turn_examples_are_refused_where_the_retry_prompt_shows_the_gold_answer():
    from secondtry.config import ConfigError
    from secondtry.loop import check_names

    check_names(cfg(filter={"retry_example": "turn"}))
    with pytest.raises(ConfigError, match="retry_example.*gold answer"):
        check_names(cfg(filter={"retry_example": "turn"}, conditions={"retry": "gold_hint"}))


def test_step_filter_rejects_lucky_retries_and_counts_them():
    attempts = [att("p1", "retry", True, "lucky", steps=(True, False)), att("p1", "retry", True, "sound", (True, True))]
    ex, stats = select(attempts, {"p1": P}, first_attempt, cfg(filter={"require": "steps", "max_per_problem": 3}))
    assert [e.completion for e in ex] == ["sound"] and stats["rejected"] == {"lucky": 1}
    assert stats["lucky_share"] == 0.5
    ex, stats = select(attempts, {"p1": P}, first_attempt, cfg(filter={"max_per_problem": 3}))
    assert len(ex) == 2
    with pytest.raises(ValueError, match="does not check steps"):
        select([att("p1", "retry", True)], {"p1": P}, first_attempt, cfg(filter={"require": "steps"}))
