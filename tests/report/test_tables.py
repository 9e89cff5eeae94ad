"""The summary's text parts that depend on a round's figures alone."""

from round_records import round_of
from secondtry.records import RoundResult
from secondtry.report.tables import cut_lines


def _round(k: int, **figures) -> RoundResult:
    return round_of(k, figures=figures, reason="go on")


def test_cut_generations_are_listed_per_round_and_set_once_any_set_reaches_the_floor():
    base = _round(0, eval={"cut_at_length": 0.02})
    one = _round(
        1,
        train={"cut_at_length": 0.3},
        eval={"cut_at_length": 0.01},
        transfer={"eval": {"cut_at_length": 0.08}},
    )
    assert cut_lines([base, one]) == ["base: test 2%", "round 1: training attempts 30%, test 1%, transfer 8%"]
    assert cut_lines([base, _round(1, train={"cut_at_length": 0.04})]) == []  # nothing reaches 5%
    old = _round(0, eval={"cut_at_length": None})  # a round.json from before the figure existed
    assert old.figures.eval.cut_at_length is None and cut_lines([old]) == []


def test_p_values_below_a_float_s_range_read_as_a_bound_not_zero():
    import doctest

    from secondtry.evaluation.stats import mcnemar_counts
    from secondtry.report import tables

    tiny = mcnemar_counts(27, 1478)["p_value"]  # exactly ~1e-400: a float holds 0
    assert tiny == 0.0 and tables.p_text(tiny) == "<1e-300"
    assert tables.p_text(mcnemar_counts(31, 1048)["p_value"]) != "<1e-300"
    assert doctest.testmod(tables).failed == 0


def test_a_sampled_gain_without_a_greedy_gain_reads_as_sharpening():
    from secondtry.records import Estimate
    from secondtry.report.tables import sharpening

    def fig(lo, hi):
        return Estimate((lo + hi) / 2, (lo, hi), 100)

    assert sharpening(fig(0.2, 0.3), fig(-0.01, 0.01))  # greedy CI includes 0
    assert sharpening(fig(0.2, 0.3), fig(-0.02, -0.001))  # greedy fell
    assert not sharpening(fig(0.2, 0.3), fig(0.01, 0.05))  # greedy rose too: a real gain
    assert not sharpening(fig(-0.1, 0.3), fig(-0.01, 0.01))  # no sampled gain shown
    assert not sharpening(fig(-0.3, -0.2), fig(-0.01, 0.01))  # a sampled loss
    assert not sharpening(fig(0.2, 0.3), None)  # no greedy attempts: nothing to say


def test_decay_after_a_round_that_did_not_gain_is_undefined_and_says_why():
    from secondtry.evaluation.metrics import compare_evals
    from secondtry.records import EvalRecord
    from secondtry.report.tables import ratio, undefined_lines

    def recs(rights):
        return [
            EvalRecord(str(i), bool(r), (bool(r), bool(r)), (bool(r),), {"1": float(r)})
            for i, r in enumerate(rights)
        ]

    base, r1, r2 = recs([1, 1, 0, 0, 0, 0]), recs([1, 0, 0, 0, 0, 0]), recs([1, 1, 1, 0, 0, 0])
    out = compare_evals(base, base, r1, r2, "pass1_sampled", 200, 0)  # round 1 lost, round 2 gained
    assert out.decay.value is None and "-16.7 pp" in out.decay.reason
    assert ratio(out.decay) == "–"
    line = undefined_lines([_round(2, decay=out.decay.to_json())])
    assert line == [f"round 2: decay –, {out.decay.reason}"]
    fine = compare_evals(base, recs([0, 0, 0, 0, 0, 0]), base, r2, "pass1_sampled", 200, 0)
    assert abs(fine.decay.value - 0.5) < 1e-9 and fine.decay.undefined_draws is not None


def test_a_planted_toy_world_is_stated_and_a_neutral_one_is_not(tmp_path):
    import json

    from secondtry.report.runs import RunConfig
    from secondtry.report.tables import toy_world as world_of
    from secondtry.report.tables import world_line as line_of

    def world_line(data):
        return line_of(RunConfig(data))

    def toy_world(data):
        return world_of(RunConfig(data))

    assert world_line({"model": {"path": "toy:demo", "toy": {"retry_error_scale": 0.5}}}).startswith(
        "Planted world"
    )
    assert world_line({"model": {"path": "toy:demo", "toy": {"retry_error_scale": 1.0}}}) == ""
    assert toy_world({"model": {"path": "Qwen/Qwen3-1.7B"}}) is None  # not a toy model: nothing to say
    folder = tmp_path / "demo-abc"  # a resolved toy model: its recipe.json is the truth
    folder.mkdir()
    (folder / "recipe.json").write_text(json.dumps({"toy": 2, "retry_error_scale": 0.5}))
    assert "0.5×" in world_line({"model": {"path": str(folder)}})
    (folder / "recipe.json").write_text(json.dumps({"toy": 1}))  # the first toy version halved retry errors
    assert toy_world({"model": {"path": str(folder)}}) == 0.5
    (folder / "recipe.json").write_text(json.dumps({"toy": 2, "retry_error_scale": 1.0}))
    assert (
        world_line({"model": {"path": str(folder)}}) == ""
        and toy_world({"model": {"path": str(folder)}}) == 1.0
    )
