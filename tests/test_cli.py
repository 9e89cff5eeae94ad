"""The command line: bad input gives one clear message, exit code 2, and writes nothing."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from secondtry.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def config_file(tmp_path, **changes):
    data = yaml.safe_load((ROOT / "configs" / "tiny-cpu.yaml").read_text())
    data["run_dir"] = str(tmp_path / "runs")
    for key, value in changes.items():
        node = data
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    path = tmp_path / "c.yaml"
    path.write_text("# secondtry run c.yaml\n" + yaml.safe_dump(data))
    return path


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_ls_lists_every_extension_point():
    code, out = invoke("ls")
    assert code == 0
    for name in ("synthetic", "gsm8k", "math", "numeric", "retry", "gold_hint", "hf", "retry_yield", "max_rounds"):
        assert name in out


def test_validate_accepts_the_shipped_configs():
    for path in (ROOT / "configs").rglob("*.yaml"):
        code, out = invoke("validate", path, "--no-data")
        assert code == 0, out


def test_validate_loads_local_data(tmp_path):
    data = tmp_path / "t.jsonl"
    data.write_text('{"problem": "1+1", "answer": "2"}\n')
    path = config_file(tmp_path, **{"train_task": {"name": "math", "path": str(data)},
                                    "eval_task": {"name": "math", "path": str(data)}, "verifier.name": "math"})
    code, out = invoke("validate", path)
    assert code == 0 and "1 training and 1 test problems" in out


@pytest.mark.parametrize("args, message", [
    (["missing.yaml"], "config file not found"),
    (["{cfg}", "training.lrr=1"], "training.lrr: unknown key — did you mean training.lr"),
    (["{cfg}", "training.steps=many"], "training.steps:"),
    (["{cfg}", "verifier.name=maths"], "verifier.name: unknown name 'maths'"),
    (["{cfg}", "train_task={{name: math, path: {bad}}}"], "bad.jsonl:2: malformed JSON"),
    (["{cfg}", "train_task={{name: math, path: {nofield}}}"], "nofield.jsonl:1: missing field 'problem'"),
    (["{cfg}", "model.path={tmp}/no-model"], "model not found"),
    (["{cfg}", "model.path=toy:huge"], "model.path: unknown toy model 'huge'"),
    (["{cfg}", "train_task.options.count=0"], "option count must be a positive integer"),
    (["{cfg}", "eval_task.split=validation"], "split must be one of"),
    (["{cfg}", "verifier.name=math", "filter.require=steps"], "filter.require: `steps` needs a verifier"),
    (["{cfg}", "evaluation.retry=gold_hint"], "evaluation.retry: 'gold_hint' shows the gold answer"),
    (["{cfg}", "train_task.name=math", "train_task.path={bad}"], "takes no options"),
])
def test_bad_input_is_named_exits_2_and_writes_nothing(tmp_path, args, message):
    (tmp_path / "bad.jsonl").write_text('{"problem": "x", "answer": "1"}\n{"problem": \n')
    (tmp_path / "nofield.jsonl").write_text(json.dumps({"question": "x", "answer": "1"}) + "\n")
    cfg = config_file(tmp_path, **{"model.path": str(tmp_path)})  # a folder, not a model
    args = [a.format(cfg=cfg, bad=tmp_path / "bad.jsonl", nofield=tmp_path / "nofield.jsonl", tmp=tmp_path)
            for a in args]
    code, out = invoke("run", *args)
    assert code == 2, out
    assert message in " ".join(out.split()), out
    runs = tmp_path / "runs"
    written = [p for p in runs.rglob("*") if p.is_file() and p.name not in {".lock", "config.yaml"}] \
        if runs.exists() else []
    assert not written


def test_report_needs_a_run_directory(tmp_path):
    code, out = invoke("report", tmp_path)
    assert code == 2 and "not a secondtry run directory" in out


def test_eval_runs_round_0_only_and_prints_the_tables(tmp_path, tiny_model):
    code, out = invoke("eval", ROOT / "configs" / "tiny-cpu.yaml", f"model.path={tiny_model}",
                       f"run_dir={tmp_path}", "name=ev")
    assert code == 0, out
    assert (tmp_path / "ev" / "round_0" / "eval.jsonl").exists() and not (tmp_path / "ev" / "round_1").exists()
    assert "stochastic headroom" in out and (tmp_path / "ev" / "report" / "summary.md").exists()
    code, out = invoke("eval", ROOT / "configs" / "tiny-cpu.yaml", f"model.path={tiny_model}",
                       f"run_dir={tmp_path}", "name=ev", "seed=1")
    assert code == 2 and "was run with another config" in out and "+seed: 1" in out
