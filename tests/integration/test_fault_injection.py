"""kill -9 at random points, resume each time: the run directory ends exactly as an uninterrupted run's.

The kill points are the `crash_point` names an uninterrupted run passes (SECONDTRY_TRACE lists them):
inside chunk writes, after generation and after verification of a chunk, before and after a stage
is recorded, at training steps and checkpoint saves, while the round records and the report are
written. SECONDTRY_KILL_AT=NAME makes `python -m secondtry.cli run` SIGKILL itself there.
SECONDTRY_FAULT_SEED picks the points (random by default; the failure message names the seed).
Both runs use the same run directory path (the reference is moved aside), since a model card
names the model it started from by path and the manifest hashes it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny-cpu.yaml"
SMALL = ["train_task.options.count=32", "eval_task.options.count=16", "training.steps=8", "stopping.max_rounds=1",
         "checkpoint.chunk=8"]  # one round: base eval, attempts, filter, train, eval, report
KINDS = ("generation", "verification", "filtering", "training", "evaluation", "report")
PARTS = {"load_s", "generate_s", "verify_s"}  # where a generation stage's time went (loop._parts)
TIMES = {"wall_s", "finished", "attempts_s", "filter_s", "train_s", "eval_s", *PARTS,
         *(f"{stage}_{part}" for stage in ("attempts", "eval") for part in PARTS)}


def cli_run(model: Path, root: Path, extra: list[str], **env: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "secondtry.cli", "run", str(CONFIG), f"model.path={model}", f"run_dir={root}",
           "name=run", "stopping.policies=[max_rounds]", *extra]
    return subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=600)


def kind_of(point: str) -> str:
    if "report/" in point or "summary.json" in point or "round.json" in point:
        return "report"
    for key, kind in (("/sft", "filtering"), ("/train", "training"), ("/eval", "evaluation"),
                      (":verified", "verification"), ("attempts", "generation")):
        if key in point:
            return kind
    return "other"


def pick_points(trace: list[str], rng: random.Random, kinds: tuple[str, ...], extra: int) -> list[str]:
    """One point of each kind, `extra` more anywhere, in run order; only points an uninterrupted run
    passes once (a resumed run passes them again only while it redoes the unfinished work)."""
    once = [p for p in dict.fromkeys(trace) if trace.count(p) == 1]
    chosen = {rng.choice([p for p in once if kind_of(p) == k]) for k in kinds}
    chosen |= set(rng.sample([p for p in once if p not in chosen], extra))
    return sorted(chosen, key=trace.index)


def _without_times(obj):
    if isinstance(obj, dict):
        return {k: _without_times(v) for k, v in obj.items() if k not in TIMES}
    if isinstance(obj, list):
        return [_without_times(v) for v in obj]
    return obj


def snapshot(run: Path) -> dict[str, bytes]:
    """Every file of a run directory (records, models, manifest, report), wall times taken out.

    The dashboard page shows the wall times, so only its presence is compared."""
    def content(p: Path) -> bytes:
        if p.name in ("manifest.json", "round.json"):
            return json.dumps(_without_times(json.loads(p.read_bytes())), sort_keys=True).encode()
        return b"present" if p.relative_to(run) == Path("report/index.html") else p.read_bytes()

    return {str(p.relative_to(run)): content(p) for p in sorted(run.rglob("*")) if p.is_file() and p.name != ".lock"}


def check_complete(run: Path, n_train: int, n_test: int) -> None:
    """No duplicates, no gaps: one first attempt per training problem, one record per test problem."""
    for folder in sorted(run.glob("round_*")):
        if (folder / "attempts.jsonl").exists():
            rows = [json.loads(line) for line in (folder / "attempts.jsonl").read_text().splitlines()]
            keys = [(r["problem_id"], r["kind"], r["turn"], r["sample"]) for r in rows]
            assert len(keys) == len(set(keys)), f"{folder.name}: duplicate attempts"
            assert len({r["problem_id"] for r in rows if r["kind"] == "first"}) == n_train, f"{folder.name}: gaps"
        ids = [json.loads(line)["problem_id"] for line in (folder / "eval.jsonl").read_text().splitlines()]
        assert len(ids) == len(set(ids)) == n_test, f"{folder.name}/eval.jsonl: duplicates or gaps"
    assert not [p for p in run.rglob("*") if p.name == ".partial" or p.name.endswith(".tmp")]  # nothing half-done


def uninterrupted(model: Path, root: Path, keep: Path, extra: list[str]) -> tuple[Path, list[str]]:
    """Run at `root`, move the run to `keep`; return it and the crash points it passed."""
    trace = keep / "trace.txt"
    keep.mkdir(parents=True)
    done = cli_run(model, root, extra, SECONDTRY_TRACE=str(trace))
    assert done.returncode == 0, done.stderr[-3000:]
    shutil.move(root / "run", keep / "run")
    return keep / "run", trace.read_text().splitlines()


@pytest.fixture(scope="module")
def reference(tiny_model, tmp_path_factory):
    """An uninterrupted run of the small config, its crash points, and the root the other runs use."""
    base = tmp_path_factory.mktemp("faults")
    return (*uninterrupted(tiny_model, base / "runs", base / "reference", SMALL), base / "runs")


@pytest.fixture
def root(reference):
    yield reference[2]
    shutil.rmtree(reference[2] / "run", ignore_errors=True)


def killed_and_resumed(model: Path, root: Path, extra: list[str], points: list[str], seed: int) -> Path:
    for point in points:
        result = cli_run(model, root, extra, SECONDTRY_KILL_AT=point)
        assert result.returncode == -signal.SIGKILL, \
            f"seed {seed}: expected a kill at {point}, exit {result.returncode}\n{result.stderr[-3000:]}"
    final = cli_run(model, root, extra)
    assert final.returncode == 0, f"seed {seed}: resume after {points} failed\n{final.stderr[-3000:]}"
    return root / "run"


def assert_same_run(run: Path, ref: Path, context: str) -> None:
    got, want = snapshot(run), snapshot(ref)
    assert sorted(got) == sorted(want), f"{context}: files differ: {sorted(set(got) ^ set(want))}"
    differ = [name for name in want if got[name] != want[name]]
    assert not differ, f"{context}: these files differ from the uninterrupted run: {differ}"


def test_same_seed_gives_byte_identical_records(reference, tiny_model, root):
    ref, _, _ = reference
    again = cli_run(tiny_model, root, SMALL)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_same_run(root / "run", ref, "a second uninterrupted run")
    assert {"round_0/eval.jsonl", "round_0/eval_attempts.jsonl", "round_1/attempts.jsonl", "round_1/sft.jsonl",
            "round_1/eval.jsonl", "round_1/eval_attempts.jsonl", "round_1/model/model.safetensors",
            "report/summary.md"} <= set(snapshot(ref))


def test_killed_at_random_points_and_resumed_ends_as_the_uninterrupted_run(reference, tiny_model, root):
    ref, trace, _ = reference
    seed = int(os.environ.get("SECONDTRY_FAULT_SEED", random.randrange(10 ** 6)))
    points = pick_points(trace, random.Random(seed), tuple(random.Random(seed).sample(KINDS, 3)), extra=0)
    run = killed_and_resumed(tiny_model, root, SMALL, points, seed)
    assert_same_run(run, ref, f"seed {seed}, killed at {points}")
    check_complete(run, 32, 16)


@pytest.mark.slow
def test_twelve_kills_across_every_stage_kind_over_two_rounds(tiny_model, tmp_path):
    """The whole tiny config (two rounds), killed at 12 points: each stage kind, then 6 more anywhere."""
    start = time.perf_counter()
    extra = ["checkpoint.chunk=16"]
    ref, trace = uninterrupted(tiny_model, tmp_path / "runs", tmp_path / "reference", extra)
    reference_s = time.perf_counter() - start
    seed = int(os.environ.get("SECONDTRY_FAULT_SEED", random.randrange(10 ** 6)))
    points = pick_points(trace, random.Random(seed), KINDS, extra=6)
    run = killed_and_resumed(tiny_model, tmp_path / "runs", extra, points, seed)
    assert_same_run(run, ref, f"seed {seed}, killed at {points}")
    check_complete(run, 64, 48)
    print(f"\nseed {seed}: {len(points)} kills, uninterrupted run {reference_s:.0f} s, "
          f"all {time.perf_counter() - start:.0f} s; kinds "
          f"{sorted({kind_of(p) for p in points})}\n  " + "\n  ".join(points))
    assert len(points) >= 10 and {kind_of(p) for p in points} >= set(KINDS)
