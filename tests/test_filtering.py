from dataclasses import replace

import pytest

from secondtry.conditions import first_attempt
from secondtry.config import build_config
from secondtry.filtering import select
from secondtry.types import Attempt, Message, Problem, Verdict

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


def att(pid, kind, ok, text="t", steps=None, turn=1):
    return Attempt(
        pid, kind, turn if kind == "retry" else 0, 0, (), text, 3, "stop", Verdict(ok, None, "", steps)
    )


def test_filter_keeps_correct_retries_as_single_turn_examples():
    problems = {"p1": P, "p2": Problem("p2", "1+1", "2")}
    attempts = [
        att("p1", "first", False),
        att("p1", "retry", True, "good"),
        att("p2", "first", True, "first"),
        att("p2", "retry", False),
        att("p1", "retry", True, "good"),
        att("p1", "retry", True, "other"),
        att("p2", "retry", None),
    ]
    examples, stats = select(attempts, problems, first_attempt, cfg())
    assert [(e.problem_id, e.completion, e.source) for e in examples] == [("p1", "good", "retry")]
    assert examples[0].messages == (Message("user", "2+3"),)  # the model never sees the failure
    assert stats["rejected"] == {"wrong": 1, "duplicate": 1, "over_cap": 1, "unjudged": 1}
    more, stats = select(
        attempts, problems, first_attempt, cfg(filter={"max_per_problem": 5, "include_first_attempts": True})
    )
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
    assert [(e.messages, e.source) for e in both] == [
        (seen[:1], "retry"),
        (seen, "retry_turn"),
        (seen[:1], "first"),
    ]
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
    attempts = [
        att("p1", "retry", True, "lucky", steps=(True, False)),
        att("p1", "retry", True, "sound", (True, True)),
    ]
    ex, stats = select(
        attempts, {"p1": P}, first_attempt, cfg(filter={"require": "steps", "max_per_problem": 3})
    )
    assert [e.completion for e in ex] == ["sound"] and stats["rejected"] == {"lucky": 1}
    assert stats["lucky_share"] == 0.5
    ex, stats = select(attempts, {"p1": P}, first_attempt, cfg(filter={"max_per_problem": 3}))
    assert len(ex) == 2
    with pytest.raises(ValueError, match="does not check steps"):
        select([att("p1", "retry", True)], {"p1": P}, first_attempt, cfg(filter={"require": "steps"}))


# ---------------------------------------------------------------- each rule on its own


def kinds(examples):
    return [(e.problem_id, e.completion, e.source) for e in examples]


def test_only_retries_are_kept_unless_first_attempts_are_asked_for():
    attempts = [
        att("p1", "first", True, "f"),
        att("p1", "retry", True, "r"),
        att("p1", "greedy", True, "g"),
        att("p1", "sample", True, "s"),
    ]
    config = cfg(filter={"max_per_problem": 9})
    assert kinds(select(attempts, {"p1": P}, first_attempt, config)[0]) == [("p1", "r", "retry")]
    both = cfg(filter={"max_per_problem": 9, "include_first_attempts": True})
    examples, stats = select(attempts, {"p1": P}, first_attempt, both)
    assert kinds(examples) == [("p1", "f", "first"), ("p1", "r", "retry")]  # evaluation kinds never train
    assert stats["rejected"] == {} and stats["kept_from"] == {"first": 1, "retry": 1}


def test_a_cut_generation_is_never_kept_whatever_its_verdict():
    cut = Attempt("p1", "retry", 1, 0, (), "2+3=5|Answer: 5", 3, "length", Verdict(True, "5", ""))
    cut_wrong = Attempt("p1", "retry", 1, 1, (), "2+3=6", 3, "length", Verdict(False, "6", ""))
    cut_unjudged = Attempt("p1", "retry", 1, 2, (), "2+3=", 3, "length", Verdict(None, None, ""))
    examples, stats = select([cut, cut_wrong, cut_unjudged], {"p1": P}, first_attempt, cfg())
    assert examples == [] and stats["rejected"] == {"cut": 3} and stats["problems"] == 0
    kept, _ = select([replace(cut, finish_reason="stop")], {"p1": P}, first_attempt, cfg())
    assert kinds(kept) == [("p1", "2+3=5|Answer: 5", "retry")]  # the same text, ended: kept


def test_dedupe_is_per_problem_and_can_be_turned_off():
    problems = {"p1": P, "p2": Problem("p2", "1+4", "5")}
    attempts = [
        att("p1", "retry", True, "same"),
        att("p1", "retry", True, "same"),
        att("p2", "retry", True, "same"),
    ]  # another problem's identical text is not a duplicate
    examples, stats = select(attempts, problems, first_attempt, cfg(filter={"max_per_problem": 5}))
    assert kinds(examples) == [("p1", "same", "retry"), ("p2", "same", "retry")]
    assert stats["rejected"] == {"duplicate": 1} and stats["problems"] == 2
    kept_twice, stats = select(
        attempts, problems, first_attempt, cfg(filter={"max_per_problem": 5, "dedupe": False})
    )
    assert [e.problem_id for e in kept_twice] == ["p1", "p1", "p2"] and stats["rejected"] == {}


def test_the_cap_counts_kept_examples_per_problem_and_duplicates_do_not_use_it_up():
    problems = {"p1": P, "p2": Problem("p2", "1+4", "5")}
    attempts = [
        att("p1", "retry", True, "a"),
        att("p1", "retry", True, "a"),
        att("p1", "retry", True, "b"),
        att("p1", "retry", True, "c"),
        att("p2", "retry", True, "x"),
        att("p2", "retry", True, "y"),
    ]
    examples, stats = select(attempts, problems, first_attempt, cfg(filter={"max_per_problem": 2}))
    assert kinds(examples) == [
        ("p1", "a", "retry"),
        ("p1", "b", "retry"),
        ("p2", "x", "retry"),
        ("p2", "y", "retry"),
    ]
    assert stats["rejected"] == {"duplicate": 1, "over_cap": 1}
    # with retry_example=both one kept retry makes two examples but uses one place under the cap
    both, stats = select(
        attempts[:3], {"p1": P}, first_attempt, cfg(filter={"max_per_problem": 1, "retry_example": "both"})
    )
    assert [(e.completion, e.source) for e in both] == [("a", "retry"), ("a", "retry_turn")]
    assert stats["rejected"] == {"duplicate": 1, "over_cap": 1}


def test_the_step_requirement_keeps_lucky_answers_only_when_answers_are_enough():
    sound, lucky = (
        att("p1", "retry", True, "sound", steps=(True, True)),
        att("p1", "retry", True, "lucky", steps=(False, True)),
    )
    wrong = att("p1", "retry", False, "wrong", steps=(True, False))
    steps = cfg(filter={"require": "steps", "max_per_problem": 5})
    examples, stats = select([lucky, wrong, sound], {"p1": P}, first_attempt, steps)
    assert [e.completion for e in examples] == ["sound"]
    assert stats["rejected"] == {"lucky": 1, "wrong": 1}  # a wrong answer is wrong before it is lucky
    assert stats["lucky_share"] == 0.5  # among the right answers
    answers, stats = select(
        [lucky, wrong, sound], {"p1": P}, first_attempt, cfg(filter={"max_per_problem": 5})
    )
    assert [e.completion for e in answers] == ["lucky", "sound"] and stats["rejected"] == {"wrong": 1}
    no_steps = select([att("p1", "retry", True)], {"p1": P}, first_attempt, cfg())[1]
    assert no_steps["lucky_share"] is None  # the verifier checks no steps: no share to report
    with pytest.raises(ValueError, match="the math verifier does not check steps; use filter.require=answer"):
        select([att("p1", "retry", True, steps=None)], {"p1": P}, first_attempt, steps)


def test_the_example_prompt_is_the_first_attempt_conversation_with_its_system_prompt():
    system = cfg(model={"path": "m/x", "system_prompt": "Be brief."})
    seen = (
        Message("system", "Be brief."),
        Message("user", "2+3"),
        Message("assistant", "6"),
        Message("user", "Try again carefully."),
    )
    retry = Attempt("p1", "retry", 1, 0, seen, "5", 3, "stop", Verdict(True, "5", ""))
    (example,), _ = select([retry], {"p1": P}, first_attempt, system)
    assert example.messages == seen[:2] and example.turn == 1
    (turn,), _ = select(
        [retry],
        {"p1": P},
        first_attempt,
        system.model_copy(update={"filter": system.filter.model_copy(update={"retry_example": "turn"})}),
    )
    assert turn.messages == seen and turn.source == "retry_turn" and turn.turn == 1


def test_a_correct_first_attempt_is_never_made_a_retry_turn_example():
    first = Attempt("p1", "first", 0, 0, (Message("user", "2+3"),), "5", 3, "stop", Verdict(True, "5", ""))
    for form in ("problem", "turn", "both"):
        examples, _ = select(
            [first],
            {"p1": P},
            first_attempt,
            cfg(filter={"include_first_attempts": True, "retry_example": form}),
        )
        assert kinds(examples) == [("p1", "5", "first")], form


def test_hint_leaks_are_dropped_or_kept_and_counted_only_where_the_prompt_showed_the_gold():
    leak, clean = att("p1", "retry", True, "The hint says 5."), att("p1", "retry", True, "2+3=5")
    gold = {"conditions": {"retry": "gold_hint"}, "filter": {"max_per_problem": 5}}
    dropped, stats = select([leak, clean], {"p1": P}, first_attempt, cfg(**gold))
    assert [e.completion for e in dropped] == ["2+3=5"]
    assert stats["rejected"] == {"hint_leak": 1} and stats["hint_leaks"] == 1
    kept, stats = select(
        [leak, clean],
        {"p1": P},
        first_attempt,
        cfg(conditions={"retry": "gold_hint"}, filter={"max_per_problem": 5, "hint_leaks": "keep"}),
    )
    assert len(kept) == 2 and stats["rejected"] == {} and stats["hint_leaks"] == 1  # kept, still reported
    plain, stats = select([leak, clean], {"p1": P}, first_attempt, cfg(filter={"max_per_problem": 5}))
    assert len(plain) == 2 and stats["hint_leaks"] is None  # a bare retry showed no hint to leak


def test_the_counts_add_up_to_the_attempts_considered():
    problems = {f"p{i}": Problem(f"p{i}", f"{i}+1", str(i + 1)) for i in range(4)}
    attempts = [
        att("p0", "retry", True, "a"),
        att("p0", "retry", True, "a"),
        att("p0", "retry", True, "b"),
        att("p1", "retry", False),
        att("p1", "retry", None),
        att("p2", "first", True, "skip"),
        Attempt("p3", "retry", 1, 0, (), "c", 3, "length", Verdict(True, "4", "")),
        att("p3", "retry", True, "d"),
    ]
    examples, stats = select(attempts, problems, first_attempt, cfg())
    considered = [a for a in attempts if a.kind == "retry"]
    assert stats["kept"] == len(examples) == 2 and stats["problems"] == 2
    assert stats["rejected"] == {"duplicate": 1, "over_cap": 1, "wrong": 1, "unjudged": 1, "cut": 1}
    assert stats["kept"] + sum(stats["rejected"].values()) == len(considered)
    assert stats["kept_from"] == {"retry": 2} and stats["lucky_share"] is None
