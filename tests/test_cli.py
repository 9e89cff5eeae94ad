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
    for name in (
        "synthetic",
        "gsm8k",
        "math",
        "numeric",
        "retry",
        "gold_hint",
        "hf",
        "retry_yield",
        "max_rounds",
    ):
        assert name in out


def test_validate_accepts_the_shipped_configs():
    for path in (ROOT / "configs").rglob("*.yaml"):
        code, out = invoke("validate", path, "--no-data")
        assert code == 0, out


def test_validate_loads_local_data(tmp_path):
    data = tmp_path / "t.jsonl"
    data.write_text('{"problem": "1+1", "answer": "2"}\n')
    path = config_file(
        tmp_path,
        **{
            "train_task": {"name": "math", "path": str(data)},
            "eval_task": {"name": "math", "path": str(data)},
            "verifier.name": "math",
        },
    )
    code, out = invoke("validate", path)
    assert code == 0 and "1 training problems; 1 test" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.yaml"], "config file not found"),
        (["{cfg}", "training.lrr=1"], "training.lrr: unknown key — did you mean training.lr"),
        (["{cfg}", "training.steps=many"], "training.steps:"),
        (["{cfg}", "verifier.name=maths"], "verifier.name: unknown name 'maths'"),
        (
            ["{cfg}", "transfer_task={{name: gsm8kk, split: test}}"],
            "transfer_task.name: unknown name 'gsm8kk'",
        ),
        (["{cfg}", "evaluation.validation=100000"], "evaluation.validation=100000 would hold out all"),
        (["{cfg}", "train_task={{name: math, path: {bad}}}"], "bad.jsonl:2: malformed JSON"),
        (["{cfg}", "train_task={{name: math, path: {nofield}}}"], "nofield.jsonl:1: missing field 'problem'"),
        (["{cfg}", "model.path={tmp}/no-model"], "model not found"),
        (["{cfg}", "model.path=toy:huge"], "model.path: unknown toy model 'huge'"),
        (["{cfg}", "train_task.options.count=0"], "option count must be a positive integer"),
        (["{cfg}", "train_task.options.count=1000000000000"], "option count must be at most 1,000,000"),
        (["{cfg}", "seed=-1"], "seed: Input should be greater than or equal to 0 (got -1)"),
        (
            ["{cfg}", "training.steps=1000000000000"],
            "training.steps: Input should be less than or equal to 1000000",
        ),
        (["{cfg}", "--seeds", "-1,4"], "--seeds -1,4: seeds lie in 0..4294967295"),
        (["{cfg}", "eval_task.split=validation"], "split must be one of"),
        (["{cfg}", "verifier.name=math", "filter.require=steps"], "filter.require: `steps` needs a verifier"),
        (["{cfg}", "evaluation.retry=gold_hint"], "evaluation.retry: 'gold_hint' shows the gold answer"),
        (["{cfg}", "train_task.name=math", "train_task.path={bad}"], "takes no options"),
        (["{cfg}", "verifier.name=math", "verifier.options.extractors=[boxd]"], "unknown extractor 'boxd'"),
        (
            ["{cfg}", "verifier.options.compare=hendrycks"],
            "'synthetic' has no option(s) compare; valid: none",
        ),
        (
            ["{cfg}", "train_task={{name: math, path: {latin}}}"],
            "latin.jsonl:2: not UTF-8 (invalid continuation byte at byte 8); re-encode the file",
        ),
        (["{cfg}", "train_task={{name: math, path: {dup}}}"], "dup.jsonl:2: duplicate id 'a' (first seen at"),
        (
            ["{cfg}", "train_task={{name: math, path: {dup}}}"],
            "give each row its own id (set on_bad_row: skip",
        ),
        (
            ["{cfg}", "train_task={{name: math, path: {empty}}}"],
            "empty.jsonl:1: field 'problem' is empty (set on_bad_row: skip on this task to skip such rows)",
        ),
        (
            ["{cfg}", "training.batch_size=[8]"],
            "training.batch_size: Input should be a valid integer (got [8]) — e.g. training.batch_size=8",
        ),
        (
            ["{cfg}", "sampling=hot"],
            "sampling: Input should be a valid dictionary or instance of SamplingConfig "
            "(got 'hot') — a mapping with keys temperature, top_p",
        ),
    ],
)
def test_bad_input_is_named_exits_2_and_writes_nothing(tmp_path, args, message):
    (tmp_path / "bad.jsonl").write_text('{"problem": "x", "answer": "1"}\n{"problem": \n')
    (tmp_path / "nofield.jsonl").write_text(json.dumps({"question": "x", "answer": "1"}) + "\n")
    (tmp_path / "latin.jsonl").write_bytes(b'{"problem": "x", "answer": "1"}\n{"id": "\xe9t\xe9"}\n')
    (tmp_path / "dup.jsonl").write_text(
        "".join(json.dumps({"problem": p, "answer": "1", "unique_id": "a"}) + "\n" for p in ("x", "y"))
    )
    (tmp_path / "empty.jsonl").write_text(json.dumps({"problem": "", "answer": "1"}) + "\n")
    cfg = config_file(tmp_path, **{"model.path": str(tmp_path)})  # a folder, not a model
    files = {name: tmp_path / f"{name}.jsonl" for name in ("bad", "nofield", "latin", "dup", "empty")}
    args = [a.format(cfg=cfg, tmp=tmp_path, **files) for a in args]
    code, out = invoke("run", *args)
    assert code == 2, out
    assert message in " ".join(out.split()), out
    assert_nothing_written(tmp_path / "runs")


def assert_nothing_written(runs):
    written = (
        [p for p in runs.rglob("*") if p.is_file() and p.name not in {".lock", "config.yaml"}]
        if runs.exists()
        else []
    )
    assert not written


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "training:\n  steps: many\n",
            "training.steps: Input should be a valid integer, unable to parse string as an "
            "integer (got 'many') — e.g. training.steps=500",
        ),
        ("training:\n  stepz: 5\n", "training.stepz: unknown key — did you mean training.steps?"),
        ("trainig:\n  steps: 5\n", "trainig: unknown key — did you mean training?"),
        ("evaluation: 3\n", "evaluation: Input should be a valid dictionary"),
        ("training: {steps: 5\n", "c.yaml:7: not valid YAML (expected ',' or '}'"),
    ],
)
def test_a_bad_config_file_names_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(
        f"name: x\nrun_dir: {tmp_path / 'runs'}\nmodel: {{path: m}}\ntrain_task: {{name: synthetic}}\n"
        f"eval_task: {{name: synthetic, split: test}}\n" + text
    )
    code, out = invoke("run", path)
    assert code == 2 and message in " ".join(out.split()), out
    assert str(path) in " ".join(out.split()) or "c.yaml" in out
    assert_nothing_written(tmp_path / "runs")


@pytest.mark.integration
def test_a_tokenizer_without_a_chat_template_is_refused_before_anything_is_written(tmp_path, tiny_model):
    import shutil

    model = tmp_path / "plain-lm"
    shutil.copytree(tiny_model, model)
    (model / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((model / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    code, out = invoke("run", config_file(tmp_path), f"model.path={model}")
    assert code == 2, out
    assert "has no chat template; use an instruct/chat model or add `chat_template`" in " ".join(out.split())
    assert_nothing_written(tmp_path / "runs")


@pytest.mark.integration
def test_a_second_process_on_the_same_run_directory_is_refused(tmp_path, tiny_model):
    from secondtry.config import load_config
    from secondtry.store import RunStore

    path = config_file(tmp_path, **{"model.path": str(tiny_model)})
    with RunStore.open(load_config(path)):  # another process holds the run directory (flock is per open file)
        code, out = invoke("run", path)
    assert (
        code == 2
        and "is in use by another secondtry process; wait for it or pick another run name"
        in " ".join(out.split())
    ), out


def test_report_needs_a_run_directory(tmp_path):
    code, out = invoke("report", tmp_path)
    assert code == 2 and "not a secondtry run directory" in out


@pytest.mark.integration
def test_eval_runs_round_0_only_and_prints_the_tables(tmp_path, tiny_model):
    code, out = invoke(
        "eval",
        ROOT / "configs" / "tiny-cpu.yaml",
        f"model.path={tiny_model}",
        f"run_dir={tmp_path}",
        "name=ev",
    )
    assert code == 0, out
    assert (tmp_path / "ev" / "round_0" / "eval.jsonl").exists() and not (
        tmp_path / "ev" / "round_1"
    ).exists()
    assert "stochastic headroom" in out and (tmp_path / "ev" / "report" / "summary.md").exists()
    code, out = invoke(
        "eval",
        ROOT / "configs" / "tiny-cpu.yaml",
        f"model.path={tiny_model}",
        f"run_dir={tmp_path}",
        "name=ev",
        "seed=1",
    )
    assert code == 2 and "was run with another config" in out and "+seed: 1" in out


def _verify_file(tmp_path):
    rows = [
        {"id": "a", "completion": r"so \\boxed{\\frac{1}{2}}", "answer": "0.5"},
        {"id": "b", "completion": "The answer is 3.", "answer": "4"},
        {"completion": r"\\boxed{.5}", "problem": {"id": "c", "prompt": "p", "answer": r"\\frac12"}},
    ]
    path = tmp_path / "v.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_verify_prints_a_summary_and_writes_verdicts(tmp_path):
    out_file = tmp_path / "verdicts.jsonl"
    code, out = invoke(
        "verify",
        _verify_file(tmp_path),
        "--workers",
        "0",
        "--out",
        out_file,
        "-e",
        "boxed",
        "-e",
        "answer_is",
        "--each",
        "--compare",
        "hendrycks",
    )
    assert code == 0, out
    text = " ".join(out.split())
    assert "3 rows" in text and "mismatch" in text and "second grader hendrycks" in text
    verdicts = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [v["id"] for v in verdicts] == ["a", "b", "c"]
    assert [v["verdict"]["correct"] for v in verdicts] == [True, False, True]
    assert verdicts[2]["verdict"]["details"]["grader"] == "hendrycks"


def test_verify_reports_agreement_with_a_label_field(tmp_path):
    import gzip

    rows = [
        {"id": "a", "completion": "# Answer\n\n12", "answer": "12", "ok": True},
        {"id": "b", "completion": "A: 7", "answer": "8", "ok": False},
        {"id": "c", "completion": r"\\boxed{3}", "answer": "3", "ok": False},
    ]  # a wrong label
    path = tmp_path / "labelled.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    out_file = tmp_path / "verdicts.jsonl"
    code, out = invoke("verify", path, "--workers", "0", "--label", "ok", "--out", out_file)
    assert code == 0, out
    text = " ".join(out.split())
    assert "2 / 3" in text and "c: gold '3', extracted '3': verifier True, label False" in text
    assert "agreement with --label ok" in text
    assert [json.loads(line)["label"] for line in out_file.read_text().splitlines()] == [True, False, False]
    (tmp_path / "bad.jsonl").write_text('{"completion": "1", "answer": "1", "ok": "yes"}\n')
    code, out = invoke("verify", tmp_path / "bad.jsonl", "--workers", "0", "--label", "ok")
    assert code == 2 and "bad.jsonl:1: --label field 'ok' should be true or false, got str 'yes'" in out


@pytest.mark.parametrize(
    "row, message",
    [
        ('{"completion": "x"}', "v.jsonl:1: no gold answer"),
        ('{"answer": "1"}', "v.jsonl:1: missing field 'completion'"),
        ('{"answer": "1", "completion": 3}', "field 'completion' should be text"),
        ("[1]", "v.jsonl:1: expected a JSON object"),
        ('{"answer": ', "v.jsonl:1: malformed JSON"),
    ],
)
def test_verify_bad_rows_are_named(tmp_path, row, message):
    path = tmp_path / "v.jsonl"
    path.write_text(row + "\n")
    code, out = invoke("verify", path, "--workers", "0")
    assert code == 2 and message in " ".join(out.split()), out


def test_verify_bad_options(tmp_path):
    code, out = invoke("verify", _verify_file(tmp_path), "-o", "extractors=[nope]")
    assert code == 2 and "unknown extractor 'nope'" in out
    code, out = invoke("verify", _verify_file(tmp_path), "--verifier", "nope")
    assert code == 2 and "--verifier: unknown name 'nope'" in out


@pytest.mark.integration
def test_bench_verify_writes_a_record(tmp_path):
    data = tmp_path / "math.jsonl"
    data.write_text(
        json.dumps({"problem": "p", "solution": r"$\\boxed{\\frac{1}{4}}$", "answer": r"\\frac{1}{4}"}) + "\n"
    )
    code, out = invoke(
        "bench",
        "verify",
        "--data",
        data,
        "--fuzz",
        "12",
        "--fuzz-timeout",
        "1",
        "--out",
        tmp_path / "results",
    )
    assert code == 0, out
    [record] = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("verify-*.json")]
    figures = record["figures"]
    assert record["name"] == "verify" and record["command"].startswith("secondtry bench verify")
    assert (figures["correct"], figures["incorrect"], figures["fuzz_items"]) == (3, 1, 12)
    assert figures["verdicts_per_s"] > 0 and figures["fuzz_crashes"] == 0
    code, out = invoke(
        "bench", "verify", "--data", data, "--fuzz", "0", "--workload", "long", "--out", tmp_path / "long"
    )
    assert code == 0, out
    [record] = [json.loads(p.read_text()) for p in (tmp_path / "long").glob("verify-long-*.json")]
    assert record["workload"]["workload"] == "long" and record["figures"]["correct"] == 3
    code, out = invoke("bench", "verify", "--data", data, "--workload", "huge")
    assert code == 2 and "--workload 'huge': choose short or long" in out


@pytest.mark.slow
def test_bench_generate_runs_the_tiny_architecture_on_cpu(tmp_path):
    code, out = invoke(
        "bench",
        "generate",
        "--model",
        "tiny-qwen3",
        "--requests",
        "8",
        "--prompt",
        "16",
        "--new",
        "16",
        "--resident",
        "4",
        "--no-hf",
        "--out",
        tmp_path,
    )
    assert code == 0, out
    [record] = [json.loads(p.read_text()) for p in tmp_path.glob("generate-*.json")]
    assert record["figures"]["engine_tok_s"] > 0 and record["workload"]["requests"] == 8


def test_bench_generate_refuses_the_big_architecture_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code, out = invoke("bench", "generate")
    assert code == 2 and "needs a CUDA device" in out


@pytest.mark.parametrize("variant", ["64", "a-b", "0-10", "20-10", "1-2-3"])
def test_bench_generate_names_a_bad_variant(tmp_path, variant):
    code, out = invoke("bench", "generate", "--model", "tiny-qwen3", "--variant", variant, "--out", tmp_path)
    assert code == 2 and f"--variant {variant!r}: give LO-HI" in out and not list(tmp_path.iterdir())


@pytest.mark.integration
def test_bench_verify_code_tasks_write_records(tmp_path, data_dir):
    from secondtry.verifiers import sandbox

    if sandbox.unavailable():
        pytest.skip(f"no working sandbox: {sandbox.unavailable()}")
    data = data_dir / "humaneval" / "HumanEval.jsonl.gz"
    code, out = invoke(
        "bench",
        "verify",
        "--task",
        "humaneval",
        "--data",
        data,
        "--limit",
        "3",
        "--rounds",
        "1",
        "--workers",
        "1",
        "--out",
        tmp_path / "results",
    )
    assert code == 0, out
    [record] = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("verify-humaneval-*.json")]
    figures = record["figures"]
    assert (
        record["command"].startswith("secondtry bench verify") and record["workload"]["task"] == "humaneval"
    )
    assert figures["outcomes"]["two_process"]["correct"] == figures["outcomes"]["one_process"]["correct"] == 3
    assert figures["two_process_verdicts_per_s"] > 0 and figures["cost_ratio"] > 0
    assert {"memory_cap", "syscall_filter"} <= set(record["workload"])
    code, out = invoke(
        "bench",
        "verify",
        "--task",
        "mbpp",
        "--data",
        data_dir / "mbpp" / "mbpp.jsonl",
        "--hacks",
        "--limit",
        "1",
        "--old-every",
        "0",
        "--out",
        tmp_path / "results",
    )
    assert code == 0, out
    [hacks] = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("verify-hacks-mbpp-*.json")]
    assert hacks["figures"]["total_passes"] == 0 and len(hacks["figures"]["table"]) >= 25
    code, out = invoke("bench", "verify", "--task", "java", "--data", data)
    assert code != 0 and "--task java: unknown" in out


@pytest.mark.integration
def test_the_run_directory_stays_locked_until_the_report_is_written_then_released(
    tmp_path, tiny_model, monkeypatch
):
    import secondtry.report as report
    from secondtry.config import load_config
    from secondtry.store import RunDirError, RunStore

    path = config_file(
        tmp_path,
        **{"model.path": str(tiny_model), "eval_task.options.count": 8, "train_task.options.count": 8},
    )
    cfg = load_config(path)
    seen, real = [], report.markdown

    def markdown(run_dir):  # while the report is written, another process must not take the directory
        try:
            RunStore.open(cfg).close()  # flock is per open file: this process counts as another one
            seen.append("taken")
        except RunDirError as e:
            seen.append(str(e))
        return real(run_dir)

    monkeypatch.setattr(report, "markdown", markdown)
    code, out = invoke("eval", path)
    assert code == 0, out
    assert seen and "in use by another secondtry process" in seen[0], seen

    def broken(run_dir):
        raise RuntimeError("the report failed")

    monkeypatch.setattr(report, "markdown", broken)
    result = runner.invoke(app, ["eval", str(path)])
    assert result.exit_code != 0 and "the report failed" in str(result.exception)
    RunStore.open(cfg).close()  # released on the way out of a failure too


# ----------------------------------------------------------------------------- what a new user meets

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def no_network(*args, **kwargs):
    raise AssertionError(f"validate reached for the network: load_dataset{args}")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_config_validates_from_a_fresh_clone_with_no_data_folder(path, tmp_path, monkeypatch):
    """As cloned: configs/ and no data/. Hub ids are checked for form, not fetched; the header names the local
    override for every hub id the config reads."""
    import shutil

    import datasets

    from secondtry.config import load_config
    from secondtry.tasks.io import is_hub_id

    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets, "load_dataset", no_network)
    code, out = invoke("validate", f"configs/{path.name}")
    assert code == 0, out
    assert f"configs/{path.name}: ok" in out
    cfg = load_config(path)
    tasks = [
        ("train_task", cfg.train_task),
        ("eval_task", cfg.eval_task),
        ("transfer_task", cfg.transfer_task),
        ("evaluation.validation_task", cfg.evaluation.validation_task),
    ]
    header = "\n".join(line for line in path.read_text().splitlines() if line.startswith("#"))
    for key, task in tasks:
        if task is not None and task.path and is_hub_id(task):
            assert f"{key}: hub id {task.path}" in out and "(read at run time)" in out
            assert task.path in header, f"{path.name}: the header does not name {task.path}"
            assert f"{key}.path=data/" in header, f"{path.name}: the header gives no local override for {key}"
            assert f"secondtry data configs/{path.name} --to data" in header


def test_a_config_this_machine_cannot_run_validates_with_a_warning_and_run_refuses_before_starting(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here")
    code, out = invoke("validate", ROOT / "configs" / "synthetic-gpu.yaml", "--no-data")
    assert code == 0 and "warning: not on this machine: model.path toy:gpu is pretrained on a CUDA GPU" in out
    code, out = invoke("run", ROOT / "configs" / "synthetic-gpu.yaml", f"run_dir={tmp_path / 'runs'}")
    assert code == 2 and "this machine cannot run it: model.path toy:gpu" in " ".join(out.split())
    assert_nothing_written(tmp_path / "runs")
    code, out = invoke("eval", config_file(tmp_path), "backend.device=cuda")
    assert code == 2 and "backend.device cuda needs a CUDA GPU" in " ".join(out.split())
    assert_nothing_written(tmp_path / "runs")


def test_data_writes_a_configs_hub_data_as_local_files_and_the_overrides_run_offline(
    tmp_path, monkeypatch, data_dir
):
    """`secondtry data CONFIG --to DIR` where there is internet; the printed overrides validate offline."""
    import datasets

    def first_rows(split):
        lines = (data_dir / "gsm8k" / f"{split}.jsonl").read_text().splitlines()[:30]
        return [json.loads(line) for line in lines]

    rows = {s: first_rows(s) for s in ("train", "test")}
    calls = []

    def hub(path, name=None, split=None):
        calls.append((path, name, split))
        return datasets.DatasetDict({s: datasets.Dataset.from_list(r) for s, r in rows.items()})

    monkeypatch.setattr(datasets, "load_dataset", hub)
    config = ROOT / "configs" / "gsm8k-smollm2-135m.yaml"
    code, out = invoke("data", config, "--to", tmp_path / "data")
    assert code == 0, out
    assert calls == [("openai/gsm8k", "main", None)]  # one download for the two tasks that read it
    assert (tmp_path / "data" / "gsm8k" / "train.jsonl").is_file()
    line = next(x for x in out.splitlines() if x.startswith("offline: secondtry run "))
    overrides = line.split(str(config), 1)[1].split()
    assert overrides == [
        f"train_task.path={tmp_path / 'data' / 'gsm8k' / 'train.jsonl'}",
        f"eval_task.path={tmp_path / 'data' / 'gsm8k' / 'test.jsonl'}",
    ]
    monkeypatch.setattr(datasets, "load_dataset", no_network)
    code, out = invoke(
        "validate",
        config,
        *overrides,
        "evaluation.validation=10",
        "train_task.limit=30",
        "eval_task.limit=30",
    )
    assert code == 0 and "data: 20 training problems; 30 test, 10 validation" in out, out
    code, out = invoke(
        "data", data_dir / "gsm8k" / "test.jsonl", "--to", tmp_path / "copy", "--split", "test"
    )
    assert code == 0 and "[test]: 1,319 rows ->" in out and (tmp_path / "copy" / "test.jsonl").is_file()


def test_version_and_help_without_type_clutter():
    code, out = invoke("--version")
    assert code == 0 and out.startswith("secondtry ")
    for command in ("run", "validate", "demo", "report", "compare", "data"):
        code, out = invoke(command, "--help")
        assert code == 0 and "<bool>" not in out, out
