"""A held-out validation split picks the best round and feeds the stopping policies; a transfer set is
evaluated every round; with evaluation.retry_all every problem gets a retry turn and its flips are counted."""

from pathlib import Path

import pytest

from secondtry.config import ConfigError, load_config
from secondtry.evaluation.metrics import summarize_eval
from secondtry.evaluation.retry import flips
from secondtry.loop import load_history, read_eval_records, run
from secondtry.store import read_json, read_jsonl

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny-cpu.yaml"
EXTRA = [
    "train_task.options.count=128",
    "evaluation.validation=12",
    "evaluation.select_on=validation",
    "evaluation.retry_all=true",
    "stopping.policies=[negative_gain, max_rounds]",
    "stopping.enforce=false",
    "transfer_task={name: synthetic, split: test, options: {count: 16, levels: [5]}}",
]


@pytest.fixture(scope="module")
def finished(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    cfg = load_config(CONFIG, [f"model.path={tiny_model}", f"run_dir={root}", *EXTRA])
    return cfg, run(cfg)


def test_validation_problems_are_held_out_and_evaluated_every_round(finished):
    cfg, history = finished
    held = [r["problem_id"] for r in read_jsonl(cfg.run_path / "round_0" / "eval_validation.jsonl")]
    assert len(held) == 12 == len(set(held))
    for k in (1, 2):
        trained_on = {a["problem_id"] for a in read_jsonl(cfg.run_path / f"round_{k}" / "attempts.jsonl")}
        assert len(trained_on) == 128 - 12 and not trained_on & set(held)
        assert [
            r["problem_id"] for r in read_jsonl(cfg.run_path / f"round_{k}" / "eval_validation.jsonl")
        ] == held


def test_the_best_round_and_the_stopping_gain_come_from_the_validation_split(finished):
    cfg, history = finished
    summary = read_json(cfg.run_path / "summary.json")
    metric = cfg.evaluation.metric
    val = {r.round: r.figures.validation.eval[metric].value for r in history}
    assert summary["chosen_on"] == "validation"
    assert summary["best_round"] == max(val, key=lambda k: (val[k], -k))
    assert summary["best_validation"]["value"] == val[summary["best_round"]]
    for r in history[1:]:
        inputs = r.figures.decisions.after_eval.inputs
        assert inputs["gain_on"] == "validation"
        assert inputs["gain"] == r.figures.validation.delta_from_prev.value
    last = history[-1].figures.decisions.after_eval.inputs
    assert last["gain_cis"] == [list(r.figures.validation.delta_from_prev.ci) for r in history[1:]]


def test_the_transfer_set_has_its_own_figures_and_gains(finished):
    cfg, history = finished
    for r in history:
        records = read_eval_records(cfg.run_path / f"round_{r.round}" / "eval_transfer.jsonl")
        assert len(records) == 16
        assert r.figures.transfer.eval == summarize_eval(
            records, cfg.evaluation.bootstrap, cfg.seed, cfg.evaluation.retry_n, True
        )
        if r.round:
            assert set(r.figures.transfer.to_json()) >= {
                "delta_from_base",
                "delta_from_prev",
                "flips_vs_prev",
            }
    problems = read_jsonl(cfg.run_path / "round_0" / "eval_transfer_attempts.jsonl")
    assert all(
        p["messages"][-1]["content"].count("+") + p["messages"][-1]["content"].count("-") >= 5
        for p in problems
        if p["turn"] == 0
    )  # level 5: five operations, another band than the test set's


def test_retry_all_gives_every_problem_one_retry_and_counts_its_flips(finished):
    cfg, history = finished
    for r in history:
        records = read_eval_records(cfg.run_path / f"round_{r.round}" / "eval.jsonl")
        assert all(len(x.chain) == 2 for x in records)  # retry_n 2: sample 0 and one retry, right or wrong
        assert any(x.chain[0] for x in records), "some first attempts were right, and still retried"
        got = r.figures.eval.flips
        want = flips(
            [x.chain[0] for x in records], [x.chain[1] for x in records], cfg.evaluation.bootstrap, cfg.seed
        )
        assert got == want and got.n == len(records)


def test_resume_skips_every_evaluation_set(finished):
    cfg, history = finished
    again = run(cfg)
    assert [r.figures for r in load_history(cfg.run_path)] == [r.figures for r in again]


def test_a_validation_split_as_large_as_the_training_set_is_refused(tiny_model, tmp_path):
    cfg = load_config(CONFIG, [f"model.path={tiny_model}", f"run_dir={tmp_path}", "evaluation.validation=64"])
    with pytest.raises(ConfigError, match="evaluation.validation=64 would hold out all 64"):
        run(cfg)


def test_the_report_shows_the_other_sets_and_the_flips(finished):
    from secondtry.report import markdown

    cfg, history = finished
    text = markdown(cfg.run_path)
    assert (
        "validation %" in text
        and "transfer Δ base pp" in text
        and "the best round on the held-out validation split" in text
    )
    f = history[-1].figures.eval.flips
    assert f"turned {f.wrong_to_right} wrong first attempts right and {f.right_to_wrong} right ones" in text
