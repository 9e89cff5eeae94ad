import json

import pytest

from secondtry.records import RecordError, RoundCost, RoundFigures, RoundResult, round_from_json
from secondtry.types import (
    Attempt,
    Decision,
    Example,
    Kind,
    Message,
    Verdict,
    attempt_from_dict,
    example_from_dict,
    to_dict,
)


def test_records_round_trip_through_json():
    v = Verdict(True, "2", "match", (True, False))
    a = Attempt(
        "p", "retry", 1, 0, (Message("user", "1+1"), Message("assistant", "3")), "1+1=2", 4, "stop", v
    )
    assert attempt_from_dict(json.loads(json.dumps(to_dict(a)))) == a
    e = Example("p", (Message("user", "1+1"),), "1+1=2|Answer: 2", "retry", 1)
    assert example_from_dict(json.loads(json.dumps(to_dict(e)))) == e
    assert (
        attempt_from_dict(to_dict(a)).kind is Kind.RETRY
        and a.kind == Kind.RETRY
        and json.loads(json.dumps(to_dict(a)))["kind"] == "retry"
    )
    r = RoundResult(
        1, "m", False, RoundFigures(), RoundCost(train_s=2.0), Decision(True, "why", "max_rounds", {"k": 1})
    )
    data = json.loads(json.dumps(r.to_json()))
    assert data["version"] == 2 and data["cost"] == {
        "train_s": 2.0,
        "tokens_generated": 0,
        "tokens_trained": 0,
        "device": "",
    }
    assert round_from_json(data) == r
    del data["version"]  # the first release's round.json: no version, the same keys
    assert round_from_json(data) == r


def test_a_malformed_round_file_names_the_key():
    def malformed(figures):
        return round_from_json(
            {
                "round": 3,
                "model": "m",
                "trained": False,
                "cost": {},
                "decision": {"stop": False, "reason": "r"},
                "figures": figures,
            },
            "round_3/round.json",
        )

    with pytest.raises(RecordError, match=r"round_3/round.json.figures.eval.pass1_sampled.n: missing"):
        malformed({"eval": {"pass1_sampled": {"value": 0.5, "ci": [0.4, 0.6]}, "cut_at_length": 0.0}})
    with pytest.raises(RecordError, match=r"round_3/round.json.figures.transfer.eval: missing"):
        malformed({"transfer": {"delta_from_base": {"value": 0.0, "ci": [0.0, 0.0], "n": 1}}})
    with pytest.raises(RecordError, match=r"figures.train: expected an object, got list"):
        malformed({"train": []})
    with pytest.raises(RecordError, match="version 9"):
        round_from_json({"version": 9}, "round.json")
    older = malformed({"eval": {"pass1_sampled": {"value": 0.5, "ci": [0.4, 0.6], "n": 10}}})
    assert (
        older.figures.eval.cut_at_length is None and older.figures.eval.retry_n is None
    )  # before those figures


def test_lucky_and_steps_ok():
    assert Verdict(True, "2", "", (True, False)).lucky and not Verdict(True, "2", "", (True, True)).lucky
    assert not Verdict(False, "2", "", (True, False)).lucky and not Verdict(True, "2").lucky
    assert Verdict(True, "2").steps_ok and not Verdict(True, "2", "", (False,)).steps_ok
