import json

from secondtry.types import (
    Attempt,
    Decision,
    Example,
    Message,
    RoundResult,
    Verdict,
    attempt_from_dict,
    example_from_dict,
    round_result_from_dict,
    to_dict,
)


def test_records_round_trip_through_json():
    v = Verdict(True, "2", "match", (True, False))
    a = Attempt("p", "retry", 1, 0, (Message("user", "1+1"), Message("assistant", "3")), "1+1=2", 4, "stop", v)
    assert attempt_from_dict(json.loads(json.dumps(to_dict(a)))) == a
    e = Example("p", (Message("user", "1+1"),), "1+1=2|Answer: 2", "retry", 1)
    assert example_from_dict(json.loads(json.dumps(to_dict(e)))) == e
    r = RoundResult(1, "m", True, {"eval": {"x": 1}}, {"train_s": 2.0}, Decision(True, "why", "max_rounds", {"k": 1}))
    assert round_result_from_dict(json.loads(json.dumps(to_dict(r)))) == r


def test_lucky_and_steps_ok():
    assert Verdict(True, "2", "", (True, False)).lucky and not Verdict(True, "2", "", (True, True)).lucky
    assert not Verdict(False, "2", "", (True, False)).lucky and not Verdict(True, "2").lucky
    assert Verdict(True, "2").steps_ok and not Verdict(True, "2", "", (False,)).steps_ok
