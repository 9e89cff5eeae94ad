"""`secondtry run --jobs K`: the presets and seeds of one command as separate processes, then compared."""

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from secondtry.cli import app
from secondtry.log import Log
from secondtry.parallel import Job, run_jobs
from secondtry.store import read_json

pytestmark = pytest.mark.integration  # runs as separate secondtry processes

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny-cpu.yaml"
SMALL = [
    "train_task.options.count=16",
    "eval_task.options.count=4",
    "training.steps=2",
    "evaluation.samples=2",
    "checkpoint.chunk=0",
]


def test_presets_and_seeds_run_as_processes_and_match_the_names_of_one_process(tiny_model, tmp_path):
    args = [
        "run",
        str(CONFIG),
        "--preset",
        "resampling",
        "--seeds",
        "2",
        "--jobs",
        "2",
        f"model.path={tiny_model}",
        f"run_dir={tmp_path}",
        *SMALL,
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    names = [
        "tiny-cpu-resampling-seed42",
        "tiny-cpu-resampling-seed43",
    ]  # what `--seeds 2` names in one process
    for name, seed in zip(names, (42, 43)):
        assert read_json(tmp_path / name / "summary.json")["rounds"] == 1
        assert f"\nseed: {seed}\n" in (tmp_path / name / "config.yaml").read_text()
        assert "records, models and report" in (tmp_path / f"{name}.log").read_text()
    assert (tmp_path / "comparison.md").is_file() and "started tiny-cpu-resampling-seed43" in result.output


def test_a_failed_job_is_named_with_its_exit_code_and_the_others_finish(tmp_path):
    jobs = [
        Job("bad", ["run", str(tmp_path / "missing.yaml")], tmp_path / "bad.log"),
        Job("fine", ["ls"], tmp_path / "fine.log"),
    ]
    failed = run_jobs(jobs, 2, Log(), poll_s=0.1)
    assert (
        list(failed) == ["bad"] and failed["bad"].startswith("exit 2: ") and "missing.yaml" in failed["bad"]
    )
    assert "synthetic" in (tmp_path / "fine.log").read_text()  # `secondtry ls` ran to the end


def test_jobs_are_spread_over_several_gpus_the_least_busy_first(tmp_path):
    import sys

    show = [
        sys.executable,
        "-c",
        "import os, sys, time; time.sleep(float(sys.argv[1])); "
        "print(os.environ.get('CUDA_VISIBLE_DEVICES'), os.environ['OMP_NUM_THREADS'])",
    ]
    jobs = [Job(f"j{i}", [s], tmp_path / f"j{i}.log") for i, s in enumerate(["3.0", "0.1", "0.1", "0.1"])]
    assert run_jobs(jobs, 2, Log(), gpus=["3", "5"], poll_s=0.05, command=show) == {}
    gpu = {j.name: j.log.read_text().split()[0] for j in jobs}
    assert gpu["j0"] == "3" and gpu["j1"] == "5"  # two at once on two GPUs
    assert gpu["j2"] == gpu["j3"] == "5"  # j0 still holds GPU 3 while the short ones come and go
    single = [Job("one", ["0"], tmp_path / "one.log")]
    assert run_jobs(single, 2, Log(), gpus=["0"], poll_s=0.05, command=show) == {}
    assert single[0].log.read_text().split()[0] == os.environ.get(
        "CUDA_VISIBLE_DEVICES", "None"
    )  # left as it was
