"""The distributed path: two processes on gloo (torchrun) give the records a single process gives, in
the same run-directory form, and a killed two-process run resumes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from secondtry.store import read_json

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny-cpu.yaml"
SAME = ["round_0/eval.jsonl", "round_0/eval_attempts.jsonl", "round_1/attempts.jsonl", "round_1/sft.jsonl"]


def secondtry_run(args: list[str], processes: int = 2, env: dict[str, str] | None = None):
    """`secondtry run` on the tiny config, under torchrun with `processes` processes (1: plain)."""
    launch = (
        ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
        if processes > 1
        else []
    )
    cmd = [sys.executable, *launch, "-m", "secondtry.cli", "run", str(CONFIG), *args]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=600,  # one thread each: 2 cores
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )


@pytest.fixture(scope="module")
def runs(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    args = [f"model.path={tiny_model}", "stopping.policies=[max_rounds]"]
    for name, processes in (("two", 2), ("one", 1)):
        done = secondtry_run([*args, f"run_dir={root / name}"], processes)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root / "one" / "tiny-cpu", root / "two" / "tiny-cpu", args


def _files(run_dir: Path) -> set[str]:
    return {
        str(p.relative_to(run_dir))
        for p in run_dir.rglob("*")
        if p.is_file() and not {"logs", "report"} & set(p.relative_to(run_dir).parts) and p.name != ".lock"
    }


def test_two_processes_generate_and_verify_what_one_does(runs):
    one, two, _ = runs
    for name in SAME:  # chunks ran on both ranks and were gathered; sampling is keyed per problem
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_training_ran_on_both_processes_and_the_run_has_the_same_form(runs):
    one, two, _ = runs
    for k in (1, 2):
        info = read_json(two / f"round_{k}" / "round.json")["figures"]["training"]
        assert info["processes"] == 2 and info["steps"] == 12
        assert "processes" not in read_json(one / f"round_{k}" / "round.json")["figures"]["training"]
    assert _files(one) == _files(two)
    for k in (0, 1, 2):
        a, b = (read_json(r / f"round_{k}" / "round.json") for r in (one, two))
        assert a.keys() == b.keys() and a["figures"].keys() == b["figures"].keys()
    assert read_json(one / "summary.json").keys() == read_json(two / "summary.json").keys()


def test_a_killed_two_process_run_resumes_to_the_same_records(runs, tmp_path):
    _, two, args = runs
    at = [f"run_dir={tmp_path}", *args]
    killed = secondtry_run(at, env={"SECONDTRY_KILL_AT": "round_1/attempts:chunk2:saved"})
    assert killed.returncode != 0
    assert (
        tmp_path / "tiny-cpu" / "round_1" / ".partial" / "attempts"
    ).is_dir()  # chunks kept for the resume
    again = secondtry_run(at)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "chunks finished earlier, kept" in again.stdout + again.stderr
    for name in SAME:
        assert (tmp_path / "tiny-cpu" / name).read_bytes() == (two / name).read_bytes(), name
    manifest = json.loads((tmp_path / "tiny-cpu" / "manifest.json").read_text())
    assert "round_2/eval" in manifest["stages"]
