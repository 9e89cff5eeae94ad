"""A reduced demo through the command line: both filter presets, the tables and the records agree."""

import shutil

import pytest
from typer.testing import CliRunner

from secondtry.cli import app
from secondtry.evaluation.metrics import summarize_eval
from secondtry.loop import load_history, read_eval_records
from secondtry.report import compare_rows, round_rows
from secondtry.report.tables import pct
from secondtry.store import read_json, read_jsonl

pytestmark = pytest.mark.integration  # pretraining and whole demo runs


@pytest.fixture(scope="module")
def demo_runs(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    small = [
        f"model.path={tiny_model}",
        f"run_dir={root}",
        "train_task.options.count=96",
        "eval_task.options.count=32",
        "training.steps=8",
        "stopping.max_rounds=2",
        "evaluation.bootstrap=300",
        "evaluation.validation=16",
        "transfer_task.options.count=16",
    ]
    result = CliRunner().invoke(app, ["demo", "--filter", "both", *small])
    assert result.exit_code == 0, result.output
    return root, result.output


def test_both_presets_ran_with_their_filters(demo_runs):
    root, output = demo_runs
    assert {p.name for p in root.iterdir() if p.is_dir()} == {"demo", "demo-answer"}
    assert "filter:\n  require: steps" in (root / "demo" / "config.yaml").read_text()
    assert "filter:\n  require: answer" in (root / "demo-answer" / "config.yaml").read_text()
    assert "conditions compared" in output and (root / "comparison.md").exists()
    for run in ("demo", "demo-answer"):  # the steps filter never keeps a lucky retry
        files = list((root / run).glob("round_*/sft.jsonl"))
        assert files
        for sft in files:
            attempts = {
                (a["problem_id"], a["completion"]): a for a in read_jsonl(sft.parent / "attempts.jsonl")
            }
            kept = [attempts[(e["problem_id"], e["completion"])]["verdict"] for e in read_jsonl(sft)]
            assert all(v["correct"] for v in kept)
            if run == "demo":
                assert all(all(v["steps"]) for v in kept)


def test_tables_agree_with_the_records(demo_runs):
    root, output = demo_runs
    for run in (root / "demo", root / "demo-answer"):
        history = load_history(run)
        for r in history:
            if r.figures.evaluated:
                records = read_eval_records(run / f"round_{r.round}" / "eval.jsonl")
                assert summarize_eval(records, 300, 42, 4, retry_all=True) == r.figures.eval
        rows = round_rows(history, "pass1_sampled", None)
        assert rows[0][1] == pct(history[0].figures.eval["pass1_sampled"])
    head, rows = compare_rows([root / "demo", root / "demo-answer"])
    col = {h: i for i, h in enumerate(head)}
    assert [r[0] for r in rows] == ["demo", "demo-answer"] and [r[col["filter"]] for r in rows] == [
        "steps",
        "answer",
    ]
    assert [r[col["privileged information"]] for r in rows] == ["none", "none"]
    base = load_history(root / "demo")[0].figures.eval["pass1_sampled"]
    assert rows[0][col["base %"]] == pct(base) == rows[1][col["base %"]]  # same base model, same evaluation
    from secondtry.report.compare import budget_rows

    head, rows = budget_rows([root / "demo", root / "demo-answer"])
    for row, run in zip(rows, ("demo", "demo-answer")):
        history = load_history(root / run)
        best = read_json(root / run / "summary.json")["best_round"]
        assert row[head.index("rounds trained")] == str(sum(r.trained for r in history[1 : best + 1]))


def test_conditions_are_tested_against_each_other_paired_by_problem(demo_runs):
    from secondtry.evaluation.metrics import per_problem
    from secondtry.evaluation.stats import paired_delta, sign_test
    from secondtry.report.compare import pairwise_rows, within_seed_rows
    from secondtry.report.tables import p_text

    root, _ = demo_runs
    runs = [root / "demo", root / "demo-answer"]
    head, rows = pairwise_rows(runs)  # one seed each: no test across seeds, and the table says so
    assert rows and all(r[:2] == ["demo-answer", "demo"] and r[-1] == "one seed: no test" for r in rows)
    head, rows = within_seed_rows(runs)  # the runs' evaluation.bootstrap: 300
    assert len(rows) == 1 and rows[0][:3] == ["demo-answer", "demo", "42"]
    best = [
        read_eval_records(
            root / run / f"round_{read_json(root / run / 'summary.json')['best_round']}" / "eval.jsonl"
        )
        for run in ("demo", "demo-answer")
    ]
    a, b = (per_problem(records)["pass1_sampled"] for records in best)  # the metric the Δ is of, not greedy
    delta = paired_delta(a, b, 300, 42)
    higher, lower = sum(y > x for x, y in zip(a, b)), sum(x > y for x, y in zip(a, b))
    test = sign_test(a, b)
    assert (test["c"], test["b"]) == (higher, lower)
    assert rows[0][3:] == [pct(delta, True), str(higher), str(lower), p_text(test["p_value"])]


def test_the_retry_turn_is_shown_every_round(demo_runs):
    """evaluation.retry_all's flips per condition and round: net change, right->wrong share (round.json)."""
    from secondtry.evaluation.stats import wilson_ci
    from secondtry.records import Estimate
    from secondtry.report.compare import retry_turn_rows

    root, _ = demo_runs
    head, rows = retry_turn_rows([root / "demo", root / "demo-answer"])
    assert head[:3] == ["condition", "figure", "base"] and len(rows) == 4
    for run, net, broken in zip(("demo", "demo-answer"), rows[0::2], rows[1::2]):
        assert net[:2] == [run, "net Δ pp"] and broken[:2] == [run, "right → wrong %"]
        history = load_history(root / run)
        for k, r in enumerate(history):
            if not r.figures.evaluated:  # a round that stopped before training was not evaluated
                assert net[2 + k] == broken[2 + k] == "–"
                continue
            flips = r.figures.eval.flips
            assert net[2 + k] == pct(flips.net, True)
            right = flips.right_to_wrong + flips.right_to_right
            broke = flips.right_to_wrong
            share = Estimate(broke / right, wilson_ci(broke, right), right) if right else None
            assert broken[2 + k] == pct(share)
        assert all(cell == "–" for cell in net[2 + len(history) :])


def test_seeds_pool_as_mean_and_t_interval(demo_runs, tmp_path):
    from secondtry.evaluation.stats import across_seeds

    root, _ = demo_runs
    seeded = []
    for i, run in enumerate(("demo", "demo-answer")):  # two runs posing as two seeds of one condition
        shutil.copytree(root / run, tmp_path / f"x-seed{i}")
        seeded.append(tmp_path / f"x-seed{i}")
    head, rows = compare_rows(seeded)
    assert len(rows) == 1 and rows[0][head.index("seeds")] == "2"
    best = []
    for p in seeded:  # each run's best round, chosen on its validation split
        top = load_history(p)[read_json(p / "summary.json")["best_round"]]
        best.append(top.figures.comparison.delta_from_base.value if top.round else 0.0)
    assert rows[0][head.index("Δ sampled pp")] == pct(across_seeds(best, bounds=(-1.0, 1.0)), True)
