"""kill -9 at random points, resume each time: the run directory ends exactly as an uninterrupted run's.

The kill points are the `crash_point` names an uninterrupted run passes (SECONDTRY_TRACE lists them):
inside chunk writes, after generation and after verification of a chunk, before and after a stage
is recorded, at training steps and checkpoint saves, while the round records and the report are
written. SECONDTRY_KILL_AT=NAME makes `python -m secondtry.cli run` SIGKILL itself there.
SECONDTRY_FAULT_SEED picks the points (random by default; the failure message names the seed).
Both runs use the same run directory path (the reference is moved aside), since a model card
names the model it started from by path and the manifest hashes it.

Beyond kills: damaged pieces (a chunk missing a line or cut mid-line, a cut manifest) are made
again; a file system that turns read-only or full mid-training (a tmpfs, where the tests may
mount one) ends the run with one line and the rerun finishes; and a randomized harness
(`pytest -m slow`, SECONDTRY_FAULT_TRIALS trials) kills, cuts and corrupts at random.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny-cpu.yaml"
SMALL = [
    "train_task.options.count=32",
    "eval_task.options.count=16",
    "training.steps=8",
    "stopping.max_rounds=1",
    "checkpoint.chunk=8",
]  # one round: base eval, attempts, filter, train, eval, report
KINDS = ("generation", "verification", "filtering", "training", "evaluation", "report")
PARTS = {"load_s", "generate_s", "verify_s"}  # where a generation stage's time went (loop._parts)
TIMES = {
    "wall_s",
    "finished",
    "attempts_s",
    "filter_s",
    "train_s",
    "eval_s",
    *PARTS,
    *(f"{stage}_{part}" for stage in ("attempts", "eval") for part in PARTS),
}


def cli_command(model: Path, root: Path, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "secondtry.cli",
        "run",
        str(CONFIG),
        f"model.path={model}",
        f"run_dir={root}",
        "name=run",
        "stopping.policies=[max_rounds]",
        *extra,
    ]


def cli_run(model: Path, root: Path, extra: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli_command(model, root, extra),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def kind_of(point: str) -> str:
    if "report/" in point or "summary.json" in point or "round.json" in point:
        return "report"
    for key, kind in (
        ("/filter", "filtering"),
        ("/train", "training"),
        ("/eval", "evaluation"),
        (":verified", "verification"),
        ("attempts", "generation"),
    ):
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

    The dashboard page shows the wall times, so only its presence is compared; the manifest's and the
    stage records' own hashes cover the times, so they go too. The manifest's backup generation is the
    manifest before the last stage a process recorded, which depends on where it was killed: it is only
    checked to be intact."""
    from secondtry.store import read_checked_json

    def content(p: Path) -> bytes:
        if p.name in ("manifest.json", "round.json") or p.parent.name == ".stages":
            data = _without_times(json.loads(p.read_bytes()))
            data.pop("check", None)
            return json.dumps(data, sort_keys=True).encode()
        if p.name == "manifest.backup.json":
            read_checked_json(p)  # raises if damaged
            return b"present"
        return b"present" if p.relative_to(run) == Path("report/index.html") else p.read_bytes()

    return {
        str(p.relative_to(run)): content(p)
        for p in sorted(run.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def check_complete(run: Path, n_train: int, n_test: int) -> None:
    """No duplicates, no gaps: one first attempt per training problem, one record per test problem."""
    for folder in sorted(run.glob("round_*")):
        if (folder / "attempts.jsonl").exists():
            rows = [json.loads(line) for line in (folder / "attempts.jsonl").read_text().splitlines()]
            keys = [(r["problem_id"], r["kind"], r["turn"], r["sample"]) for r in rows]
            assert len(keys) == len(set(keys)), f"{folder.name}: duplicate attempts"
            assert len({r["problem_id"] for r in rows if r["kind"] == "first"}) == n_train, (
                f"{folder.name}: gaps"
            )
        ids = [json.loads(line)["problem_id"] for line in (folder / "eval.jsonl").read_text().splitlines()]
        assert len(ids) == len(set(ids)) == n_test, f"{folder.name}/eval.jsonl: duplicates or gaps"
    assert not [
        p for p in run.rglob("*") if p.name == ".partial" or p.name.endswith(".tmp")
    ]  # nothing half-done
    for rows in [run.glob("round_*/attempts.jsonl"), run.glob("round_*/eval*.jsonl")]:
        for path in rows:
            [json.loads(line) for line in path.read_text().splitlines()]  # whole records only


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
        assert result.returncode == -signal.SIGKILL, (
            f"seed {seed}: expected a kill at {point}, exit {result.returncode}\n{result.stderr[-3000:]}"
        )
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
    assert {
        "round_0/eval.jsonl",
        "round_0/eval_attempts.jsonl",
        "round_1/attempts.jsonl",
        "round_1/sft.jsonl",
        "round_1/eval.jsonl",
        "round_1/eval_attempts.jsonl",
        "round_1/model/model.safetensors",
        "report/summary.md",
    } <= set(snapshot(ref))


def test_killed_at_random_points_and_resumed_ends_as_the_uninterrupted_run(reference, tiny_model, root):
    ref, trace, _ = reference
    seed = int(os.environ.get("SECONDTRY_FAULT_SEED", random.randrange(10**6)))
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
    seed = int(os.environ.get("SECONDTRY_FAULT_SEED", random.randrange(10**6)))
    points = pick_points(trace, random.Random(seed), KINDS, extra=6)
    run = killed_and_resumed(tiny_model, tmp_path / "runs", extra, points, seed)
    assert_same_run(run, ref, f"seed {seed}, killed at {points}")
    check_complete(run, 64, 48)
    print(
        f"\nseed {seed}: {len(points)} kills, uninterrupted run {reference_s:.0f} s, "
        f"all {time.perf_counter() - start:.0f} s; kinds "
        f"{sorted({kind_of(p) for p in points})}\n  " + "\n  ".join(points)
    )
    assert len(points) >= 10 and {kind_of(p) for p in points} >= set(KINDS)


# -- damaged pieces a killed run leaves ------------------------------------------------------------------


def _drop_a_line(path: Path) -> None:
    lines = path.read_text().splitlines(True)
    path.write_text("".join(lines[:1] + lines[2:]))


def _cut_mid_line(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-9])


def _cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    "point, piece, damage",
    [
        ("round_1/attempts:chunk2:saved", "round_1/.partial/attempts/chunk-00001.jsonl", _drop_a_line),
        ("round_0/eval:chunk1:saved", "round_0/.partial/eval/chunk-00000.jsonl", _cut_mid_line),
        ("round_1/filter:recorded", "manifest.json", _cut_in_half),
    ],
    ids=["chunk missing a line", "chunk cut mid-line", "manifest cut"],
)
def test_a_damaged_piece_of_a_killed_run_is_made_again(reference, tiny_model, root, point, piece, damage):
    ref, _, _ = reference
    killed = cli_run(tiny_model, root, SMALL, SECONDTRY_KILL_AT=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    damage(root / "run" / piece)
    final = cli_run(tiny_model, root, SMALL)
    assert final.returncode == 0, final.stderr[-3000:]
    assert Path(piece).name in final.stderr, final.stderr[-3000:]  # the log names the damaged piece
    assert_same_run(root / "run", ref, f"after {damage.__name__} on {piece}")
    check_complete(root / "run", 32, 16)


# -- the file system refuses writes mid-run --------------------------------------------------------------


def _mountable() -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f".secondtry-mount-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        mounted = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True
            ).returncode
            == 0
        )
        if mounted:
            subprocess.run(["umount", str(probe)], check=True)
        return mounted
    finally:
        probe.rmdir()


@pytest.fixture
def small_disk(root):
    """A 256 MiB tmpfs at the run root (the path the reference ran at); needs root to mount."""
    if not _mountable():
        pytest.skip("mounting a tmpfs needs root (the read-only and full-disk errors here are real ones)")
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(root)], check=True)
    yield root
    subprocess.run(["umount", "-R", "-l", str(root)], check=True)


def stopped_at(model: Path, root: Path, point: str) -> subprocess.Popen:
    """A run that SIGSTOPs itself at `point` (SECONDTRY_STOP_AT); returned once it has stopped."""
    proc = subprocess.Popen(
        cli_command(model, root, SMALL),
        env={**os.environ, "SECONDTRY_STOP_AT": point},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 600
    while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert proc.poll() is None, f"the run ended before {point}: {proc.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, f"the run did not reach {point}"
        time.sleep(0.1)
    return proc


def fill(folder: Path) -> Path:
    """Take every free byte of the file system `folder` is on."""
    filler = folder / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return filler


def finished_stages(run: Path) -> dict[str, str]:
    from secondtry.store import read_checked_json

    return {name: e["outputs_hash"] for name, e in read_checked_json(run / "manifest.json")["stages"].items()}


@pytest.mark.parametrize("fault", ["read-only", "disk full"])
def test_a_file_system_failing_mid_training_ends_in_one_line_and_the_rerun_finishes(
    reference, tiny_model, small_disk, fault
):
    ref, _, _ = reference
    run = small_disk / "run"
    proc = stopped_at(tiny_model, small_disk, "round_1/train:step5")
    before = finished_stages(run)
    if fault == "read-only":  # the run directory mounted read-only over itself: every new write is refused
        subprocess.run(["mount", "--bind", str(run), str(run)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(run)], check=True)
    else:
        filler = fill(small_disk)
    os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=600)
    if fault == "read-only":
        subprocess.run(["umount", str(run)], check=True)
    else:
        filler.unlink()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    words = {"read-only": "the file system is read-only", "disk full": "no space left on the device"}[fault]
    assert proc.returncode == 2 and "Traceback" not in err, err[-3000:]
    assert len(errors) == 1 and words in errors[0] and str(run) in errors[0], err[-3000:]
    assert "run the same command again" in errors[0]
    assert finished_stages(run) == before  # nothing finished is lost
    assert {"round_0/eval", "round_1/attempts", "round_1/filter"} <= set(before)
    final = cli_run(tiny_model, small_disk, SMALL)
    assert final.returncode == 0, final.stderr[-3000:]
    assert_same_run(run, ref, f"after the file system was {fault} mid-training")
    check_complete(run, 32, 16)


def test_a_run_directory_without_write_permission_ends_in_one_line(reference, tiny_model, root):
    if os.geteuid() == 0:
        pytest.skip("root writes whatever the permissions (the read-only test covers this case as root)")
    ref, _, _ = reference
    run = root / "run"
    proc = stopped_at(tiny_model, root, "round_1/train:step5")
    folders = [run, *(p for p in run.rglob("*") if p.is_dir())]
    for p in folders:
        p.chmod(0o555)
    os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=600)
    for p in folders:
        p.chmod(0o755)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "permission denied" in errors[0], err[-3000:]
    final = cli_run(tiny_model, root, SMALL)
    assert final.returncode == 0, final.stderr[-3000:]
    assert_same_run(run, ref, "after the run directory lost its write permission mid-training")


# -- the randomized harness ------------------------------------------------------------------------------

DAMAGES = (
    "cut",
    "empty",
    "drop a line",
    "duplicate a line",
    "flip a byte",
    "edit a value",
    "delete",
    "append",
)


def damage(path: Path, how: str, rng: random.Random) -> None:
    """Damage one file the way a crash, a bad disk or a hand can."""
    data = path.read_bytes()
    lines = data.splitlines(True)
    if how == "cut":
        path.write_bytes(data[: rng.randrange(len(data))] if data else b"")
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "drop a line" and len(lines) > 1:
        i = rng.randrange(len(lines))
        path.write_bytes(b"".join(lines[:i] + lines[i + 1 :]))
    elif how == "duplicate a line" and lines:
        i = rng.randrange(len(lines))
        path.write_bytes(b"".join(lines[: i + 1] + lines[i:]))
    elif how == "edit a value" and b'": ' in data:  # JSON still, with another value
        at = rng.choice([m.end() for m in re.finditer(rb'": ', data)])
        path.write_bytes(data[:at] + (b"7" if data[at : at + 1] != b"7" else b"8") + data[at + 1 :])
    elif how == "delete":
        path.unlink()
    elif how == "append":
        path.write_bytes(data + b'{"problem_id": "extra"}\n')
    elif data:  # flip a byte (and the fallback of the cases above that do not apply)
        i = rng.randrange(len(data))
        path.write_bytes(data[:i] + bytes([data[i] ^ 0x20]) + data[i + 1 :])
    else:
        path.write_bytes(b"x")


def pieces(run: Path) -> dict[str, list[Path]]:
    """The run directory's files by kind (damage picks a kind first, so small kinds are hit as often)."""
    kinds: dict[str, list[Path]] = {}
    for p in sorted(run.rglob("*")):
        if not p.is_file() or p.name == ".lock":
            continue
        rel = str(p.relative_to(run))
        kind = (
            "checkpoint"
            if "/trainer/" in rel
            else "chunk"
            if "/.partial/" in rel
            else "manifest"
            if p.name.startswith("manifest")
            else "stage record"
            if "/.stages/" in rel
            else "config"
            if "config.yaml" in p.name and p.parent == run
            else "model"
            if "/model/" in rel or "/improve_" in rel
            else "output"
            if p.suffix == ".jsonl"
            else "report"
        )
        kinds.setdefault(kind, []).append(p)
    return kinds


@pytest.mark.slow
def test_random_kills_cuts_and_corruptions_end_as_the_uninterrupted_run(reference, tiny_model, root):
    """SECONDTRY_FAULT_TRIALS trials (default 3): each kills the small run at 1-2 random points, damages 1-3
    random files of the run directory after each kill (any kind: chunks and their records, checkpoints,
    the manifest and its backup, stage records, outputs, models, config copy, report), resumes, and
    compares the final run directory with the uninterrupted one. Mismatches are listed, not stopped at."""
    ref, trace, _ = reference
    trials = int(os.environ.get("SECONDTRY_FAULT_TRIALS", "3"))
    seed = int(os.environ.get("SECONDTRY_FAULT_SEED", random.randrange(10**6)))
    rng = random.Random(seed)
    once = [p for p in dict.fromkeys(trace) if trace.count(p) == 1]
    start, mismatches, kills = time.perf_counter(), [], 0
    for trial in range(trials):
        shutil.rmtree(root / "run", ignore_errors=True)
        story = []
        for _ in range(rng.choice((1, 1, 2))):
            point = rng.choice(once)
            killed = cli_run(tiny_model, root, SMALL, SECONDTRY_KILL_AT=point)
            kills += killed.returncode == -signal.SIGKILL
            story.append(f"kill at {point} (exit {killed.returncode})")
            if killed.returncode not in (0, -signal.SIGKILL):
                break
            kinds = pieces(root / "run")
            for _ in range(rng.randint(1, 3)):
                kind = rng.choice(sorted(kinds))
                target, how = rng.choice(kinds[kind]), rng.choice(DAMAGES)
                if target.exists():
                    damage(target, how, rng)
                    story.append(f"{how}: {target.relative_to(root / 'run')}")
        final = cli_run(tiny_model, root, SMALL)
        try:
            assert final.returncode == 0, f"exit {final.returncode}: {final.stderr[-1500:]}"
            assert_same_run(root / "run", ref, "final run")
            check_complete(root / "run", 32, 16)
            print(f"\ntrial {trial}: same as the uninterrupted run after {'; '.join(story)}", end="")
        except AssertionError as e:
            mismatches.append(f"trial {trial}: {'; '.join(story)}\n    {str(e)[:1500]}")
    took = time.perf_counter() - start
    print(f"\nseed {seed}: {trials} trials, {kills} kills, {len(mismatches)} mismatches, {took:.0f} s")
    assert not mismatches, f"seed {seed}:\n" + "\n".join(mismatches)
