"""Two whole rounds on CPU with a tiny model built here: records, figures, decisions, resume."""

import dataclasses
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from secondtry.config import load_config
from secondtry.evaluation.metrics import compare_evals, eval_record, summarize_eval, train_figures
from secondtry.loop import load_history, read_eval_records, run
from secondtry.store import read_json, read_jsonl
from secondtry.types import attempt_from_dict

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny-cpu.yaml"


@pytest.fixture(scope="module")
def finished(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    cfg = load_config(
        CONFIG, [f"model.path={tiny_model}", f"run_dir={root}", "stopping.policies=[max_rounds]"]
    )
    start = time.perf_counter()
    history = run(cfg)
    return cfg, history, time.perf_counter() - start


def weights(path):
    return AutoModelForCausalLM.from_pretrained(path).state_dict()


def test_two_rounds_ran_and_weights_changed(finished, tiny_model):
    cfg, history, wall = finished
    print(f"\ntwo rounds on CPU: {wall:.1f} s")
    assert [r.round for r in history] == [0, 1, 2] and all(r.trained for r in history[1:])
    base, r1, r2 = weights(tiny_model), weights(cfg.run_path / "round_1" / "model"), weights(history[2].model)
    assert any(not torch.equal(base[k], r1[k]) for k in base)
    assert any(not torch.equal(r1[k], r2[k]) for k in r1)


def test_every_stage_left_per_problem_records(finished):
    cfg, history, _ = finished
    n_train, n_test = 64, 48
    for k in (1, 2):
        attempts = [attempt_from_dict(d) for d in read_jsonl(cfg.run_path / f"round_{k}" / "attempts.jsonl")]
        firsts = [a for a in attempts if a.kind == "first"]
        assert len(firsts) == n_train == len({a.problem_id for a in firsts})
        failed = {a.problem_id for a in firsts if a.verdict.correct is False}
        assert {
            a.problem_id for a in attempts if a.kind == "retry"
        } == failed  # every failure, and only those
        assert all(a.messages[-1].content == "Try again carefully." for a in attempts if a.kind == "retry")
        sft = read_jsonl(cfg.run_path / f"round_{k}" / "sft.jsonl")
        assert all(len(e["messages"]) == 1 for e in sft)  # single turn: problem -> correct retry
    for k in (0, 1, 2):
        assert len(read_jsonl(cfg.run_path / f"round_{k}" / "eval.jsonl")) == n_test
        assert (cfg.run_path / f"round_{k}" / "round.json").exists()
    assert (cfg.run_path / "config.yaml").exists() and (cfg.run_path / "summary.json").exists()
    assert (cfg.run_path / "round_1" / "model" / "README.md").exists()


def test_round_figures_recompute_from_records(finished):
    cfg, history, _ = finished
    ev = cfg.evaluation
    for r in history:
        folder = cfg.run_path / f"round_{r.round}"
        records = read_eval_records(folder / "eval.jsonl")
        assert summarize_eval(records, ev.bootstrap, cfg.seed, ev.retry_n) == r.figures.eval
        attempts = [attempt_from_dict(d) for d in read_jsonl(folder / "eval_attempts.jsonl")]
        cut = sum(a.finish_reason == "length" for a in attempts) / len(attempts)
        assert r.figures.eval.cut_at_length == pytest.approx(cut)
        for rec in records:  # eval.jsonl itself follows from the transcripts
            mine = [a for a in attempts if a.problem_id == rec.problem_id]
            greedy = next(a for a in mine if a.kind == "greedy")
            samples = sorted((a for a in mine if a.kind == "sample"), key=lambda a: a.sample)
            chain = [samples[0]] + sorted((a for a in mine if a.kind == "retry"), key=lambda a: a.turn)
            assert eval_record(rec.problem_id, greedy, samples, chain, ev.pass_k) == rec
        if r.round:
            evals = [
                read_eval_records(cfg.run_path / f"round_{j}" / "eval.jsonl") for j in range(r.round + 1)
            ]
            before_prev = evals[r.round - 2] if r.round >= 2 else None
            gains = compare_evals(
                evals[0], before_prev, evals[r.round - 1], evals[r.round], ev.metric, ev.bootstrap, cfg.seed
            )
            assert gains == r.figures.comparison
            attempts = [attempt_from_dict(d) for d in read_jsonl(folder / "attempts.jsonl")]
            figures = dataclasses.replace(r.figures.train, examples=None, retry_sees=None)
            assert train_figures(attempts, ev.bootstrap, cfg.seed) == figures
            assert r.figures.train.examples.kept == len(read_jsonl(folder / "sft.jsonl"))
            assert r.cost.tokens_trained > 0 and r.cost.tokens_generated > 0 and r.cost.train_s > 0


def test_decisions_and_reasons_are_recorded(finished):
    cfg, history, _ = finished
    r1, r2 = (read_json(cfg.run_path / f"round_{k}" / "round.json") for k in (1, 2))
    assert r2["decision"]["stop"] and r2["decision"]["reason"]
    assert r2["decision"]["policy"] == "max_rounds" and "max_rounds=2" in r2["decision"]["reason"]
    assert not r1["decision"]["stop"] and "gain" in r1["decision"]["inputs"]
    summary = read_json(cfg.run_path / "summary.json")
    metric = summary["metric"]
    best = max(history, key=lambda r: (r.figures.eval[metric].value, -r.round))
    assert summary["best_round"] == best.round and summary["stopped"] == r2["decision"]["reason"]
    assert "Try again carefully." in r1["figures"]["train"]["retry_sees"]


def test_resume_skips_finished_stages(finished):
    cfg, history, wall = finished
    manifest = read_json(cfg.run_path / "manifest.json")
    again = run(cfg)
    assert (
        [r.figures for r in again]
        == [r.figures for r in load_history(cfg.run_path)]
        == [r.figures for r in history]
    )
    assert read_json(cfg.run_path / "manifest.json")["stages"] == manifest["stages"]  # nothing ran again


def test_report_tables_follow_round_json(finished):
    from secondtry.report import gap_rows, markdown, round_rows

    cfg, history, _ = finished
    text = markdown(cfg.run_path)
    assert "| base" in text and "| round 2" in text and "Stochastic headroom" in text
    rows = round_rows(history, "pass1_sampled", best=None)
    v = history[1].figures.eval["pass1_sampled"].value * 100
    assert rows[1][1].startswith(f"{v:.1f} [")
    assert len(gap_rows(history)) == 3


def test_continue_starts_each_round_from_the_last_merged_model_and_the_card_says_so(finished):
    cfg, history, _ = finished
    starts = [r.figures.training.start_model for r in history[1:]]
    assert starts == [cfg.model.path, str(cfg.run_path / "round_1" / "model")]
    assert history[2].figures.training.between_rounds == "continue"
    card = (cfg.run_path / "round_2" / "model" / "README.md").read_text()
    assert "round 2" in card and "previous round's merged model" in card
    value = history[2].figures.eval[cfg.evaluation.metric].value
    assert f"| {cfg.evaluation.metric} | {value:.4g} |" in card and "delta_from_base" in card


def test_retry_lift_and_the_ledger_come_from_the_records(finished):
    from secondtry.evaluation.retry import ledger, retry_lift

    cfg, history, _ = finished
    evals = [read_eval_records(cfg.run_path / f"round_{k}" / "eval.jsonl") for k in (0, 1, 2)]
    for k, records in enumerate(evals):
        assert history[k].figures.eval.retry_lift.value == retry_lift(records, 200).value
    summary = read_json(cfg.run_path / "summary.json")
    book = read_json(cfg.run_path / "ledger.json")
    assert book["rounds"] == [0, 1, 2] and len(book["per_problem"]) == len(evals[0])
    assert summary["ledger"]["per_round"] == ledger(evals).to_json()["per_round"] == book["per_round"]
    assert summary["ledger"]["ever_solved"] + summary["ledger"]["never_solved"] == len(evals[0])


def test_reset_trains_every_round_from_the_base_model(tiny_model, tmp_path):
    cfg = load_config(
        CONFIG,
        [
            f"model.path={tiny_model}",
            f"run_dir={tmp_path}",
            "stopping.policies=[max_rounds]",
            "training.between_rounds=reset",
            "train_task.options.count=128",
            "eval_task.options.count=8",
        ],
    )
    history = run(cfg)
    starts = [r.figures.training.start_model for r in history[1:]]
    assert starts == [str(tiny_model)] * 2
    assert history[2].model.endswith("round_2/model")


def test_a_changed_config_reruns_exactly_the_stages_it_touches(finished, tmp_path):
    import shutil

    cfg, _, _ = finished
    copy = tmp_path / cfg.name
    shutil.copytree(cfg.run_path, copy)
    before = read_json(copy / "manifest.json")["stages"]
    changed = load_config(
        CONFIG,
        [
            f"model.path={cfg.model.path}",
            f"run_dir={tmp_path}",
            "stopping.policies=[max_rounds]",
            "evaluation.bootstrap=400",
            "training.steps=13",
        ],
    )
    run(changed, allow_change=True)
    after = read_json(copy / "manifest.json")["stages"]
    rerun = {
        name
        for name in after
        if after[name]["finished"] != before[name]["finished"]
        or after[name]["inputs_hash"] != before[name]["inputs_hash"]
    }
    # bootstrap touches no stage; training.steps touches training, then everything downstream of its model
    assert rerun == {
        "round_1/train",
        "round_1/eval",
        "round_2/attempts",
        "round_2/filter",
        "round_2/train",
        "round_2/eval",
    }


def test_allow_change_reruns_the_stages_a_changed_field_feeds(finished, tmp_path):
    """A field that feeds no stage reruns nothing; one that feeds the sft stage reruns it, not what comes before."""
    import shutil

    cfg, _, _ = finished
    copy = tmp_path / cfg.name
    shutil.copytree(cfg.run_path, copy)
    stages = lambda: read_json(copy / "manifest.json")["stages"]  # noqa: E731
    same = [f"model.path={cfg.model.path}", f"run_dir={tmp_path}", "stopping.policies=[max_rounds]"]
    before = stages()
    run(
        load_config(
            CONFIG, [*same, "training.report_to=[]", "verifier.workers=1", "checkpoint.train_steps=7"]
        ),
        allow_change=True,
    )
    assert stages() == before
    run(load_config(CONFIG, [*same, "filter.max_per_problem=2"]), allow_change=True)
    after = stages()
    rerun = {name for name in after if after[name] != before[name]}
    assert (
        "round_1/filter" in rerun
        and after["round_1/filter"]["inputs_hash"] != before["round_1/filter"]["inputs_hash"]
    )
    assert not rerun & {"round_0/eval", "round_1/attempts"}


def test_stale_rounds_of_an_earlier_longer_run_are_not_reported(finished, tmp_path):
    import shutil

    cfg, _, _ = finished
    shutil.copytree(cfg.run_path, tmp_path / cfg.name)
    shorter = load_config(
        CONFIG,
        [
            f"model.path={cfg.model.path}",
            f"run_dir={tmp_path}",
            "stopping.policies=[max_rounds]",
            "stopping.max_rounds=1",
        ],
    )
    history = run(shorter, allow_change=True)
    assert [r.round for r in history] == [0, 1]
    assert [r.round for r in load_history(tmp_path / cfg.name)] == [0, 1]  # round_2/ is still on disk


def test_observed_stopping_goes_on_but_an_untrained_round_ends_the_run(tiny_model, tmp_path):
    cfg = load_config(
        CONFIG,
        [
            f"model.path={tiny_model}",
            f"run_dir={tmp_path}",
            "stopping.enforce=false",
            "train_task.options.count=3",
            "eval_task.options.count=4",
        ],
    )
    history = run(cfg)  # three training problems: no correct retry, nothing to train on
    assert [r.round for r in history] == [0, 1] and not history[1].trained
    assert history[1].decision.policy == "no_examples"
    summary = read_json(cfg.run_path / "summary.json")
    assert summary["policy_stop"]["round"] == 1 and summary["best_round"] == 0


def test_a_round_whose_generations_run_to_the_length_limit_warns(finished):
    from types import SimpleNamespace

    from round_records import figures_of
    from secondtry.loop import warn_if_cut

    cfg, history, _ = finished
    warnings = []
    ctx = SimpleNamespace(cfg=cfg, log=SimpleNamespace(warn=warnings.append))
    figures = figures_of(
        {
            "train": {"cut_at_length": 0.6},
            "eval": {"cut_at_length": 0.1},
            "transfer": {"eval": {"cut_at_length": 0.3}},
        }
    )
    warn_if_cut(ctx, 2, figures)
    limit = cfg.sampling.max_new_tokens
    assert warnings == [
        f"round 2: 60% of the training attempts (at {limit} new tokens), 30% of the transfer "
        "evaluation (at {limit} new tokens) ran to the length limit and were judged without an "
        "ending: raise max_new_tokens, or check that the model ends its turns (its EOS token)".replace(
            "{limit}", str(cfg.eval_sampling.max_new_tokens)
        )
    ]
    warnings.clear()
    warn_if_cut(ctx, 1, figures_of({"train": {"cut_at_length": 0.2}, "eval": {"cut_at_length": 0.25}}))
    assert warnings == []


def test_a_resumed_run_says_where_it_takes_up_its_work(finished, tmp_path):
    import shutil

    from secondtry.log import Log

    class Told(Log):
        def __init__(self) -> None:
            self.said: list[str] = []

        def info(self, message: str) -> None:
            self.said.append(message)

    cfg, _, _ = finished
    shutil.copytree(cfg.run_path, tmp_path / cfg.name)
    (tmp_path / cfg.name / "round_2" / "eval.jsonl").unlink()  # round 2's evaluation must run again
    told = Told()
    again = load_config(
        CONFIG, [f"model.path={cfg.model.path}", f"run_dir={tmp_path}", "stopping.policies=[max_rounds]"]
    )
    run(again, told, allow_change=True)  # the copy's run_dir differs from its config.yaml; no stage reads it
    resumed = [m for m in told.said if m.startswith("resumed at ")]
    assert resumed == ["resumed at round 2, stage eval (8 finished stages kept)"], told.said
    kept = told.said.index("round_2/train: finished earlier with the same inputs, skipped")
    assert told.said.index(resumed[0]) > kept
