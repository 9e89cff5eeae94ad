"""The summary's text parts that depend on a round's figures alone."""

from secondtry.report.tables import cut_lines
from secondtry.types import Decision, RoundResult


def _round(k: int, **figures) -> RoundResult:
    return RoundResult(k, f"m{k}", bool(k), figures, {}, Decision(False, "go on"))


def test_cut_generations_are_listed_per_round_and_set_once_any_set_reaches_the_floor():
    base = _round(0, eval={"cut_at_length": 0.02})
    one = _round(1, train={"cut_at_length": 0.3}, eval={"cut_at_length": 0.01},
                 transfer={"eval": {"cut_at_length": 0.08}})
    assert cut_lines([base, one]) == ["base: test 2%", "round 1: training attempts 30%, test 1%, transfer 8%"]
    assert cut_lines([base, _round(1, train={"cut_at_length": 0.04})]) == []  # nothing reaches 5%
    assert cut_lines([_round(0, eval={"pass1_sampled": {}})]) == []  # records from before the figure existed


def test_p_values_below_a_float_s_range_read_as_a_bound_not_zero():
    import doctest

    from secondtry.evaluation.stats import mcnemar_counts
    from secondtry.report import tables

    tiny = mcnemar_counts(27, 1478)["p_value"]  # exactly ~1e-400: a float holds 0
    assert tiny == 0.0 and tables.p_text(tiny) == "<1e-300"
    assert tables.p_text(mcnemar_counts(31, 1048)["p_value"]) != "<1e-300"
    assert doctest.testmod(tables).failed == 0
