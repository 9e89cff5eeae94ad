import json
import multiprocessing as mp

import pytest

from secondtry.config import build_config
from secondtry.store import RunDirError, RunStore, hash_path, read_jsonl, write_jsonl

BASE = {"name": "r", "model": {"path": "m/x"}, "train_task": {"name": "synthetic"},
        "eval_task": {"name": "synthetic", "split": "test"},
        "evaluation": {"select_on": "test"}}  # several rounds by default: where to choose must be said


def cfg_at(tmp_path, **extra):
    return build_config({**BASE, "run_dir": str(tmp_path), **extra})


def test_stage_runs_once_then_skips_and_reruns_on_change(tmp_path):
    calls = []
    with RunStore.open(cfg_at(tmp_path)) as store:
        out = store.path(1, "x.jsonl")

        def work(tag):
            calls.append(tag)
            write_jsonl(out, [{"v": tag}])
            return {"n": 1}

        assert store.stage("round_1/x", {"a": 1}, [out], lambda: work(1))["n"] == 1
        info = store.stage("round_1/x", {"a": 1}, [out], lambda: work(2))
        assert calls == [1] and store.skipped == ["round_1/x"] and "wall_s" in info and info["n"] == 1
        store.stage("round_1/x", {"a": 2}, [out], lambda: work(3))  # inputs changed
        assert calls == [1, 3] and read_jsonl(out) == [{"v": 3}]
        out.write_text('{"v": "tampered"}\n')  # outputs no longer match the manifest
        store.stage("round_1/x", {"a": 2}, [out], lambda: work(4))
        assert calls == [1, 3, 4]


def test_failed_stage_leaves_no_record_and_no_partial_file(tmp_path):
    with RunStore.open(cfg_at(tmp_path)) as store:
        out = store.path(1, "x.jsonl")

        def boom():
            def rows():
                yield {"a": 1}
                raise RuntimeError("killed mid-write")
            write_jsonl(out, rows())

        with pytest.raises(RuntimeError):
            store.stage("round_1/x", {}, [out], boom)
        assert not out.exists()
        assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
        assert "round_1/x" not in store.manifest()["stages"]


def test_changed_config_is_refused_with_a_diff(tmp_path):
    RunStore.open(cfg_at(tmp_path)).close()
    with pytest.raises(RunDirError) as e:
        RunStore.open(cfg_at(tmp_path, seed=7))
    assert "-seed: 42" in str(e.value) and "+seed: 7" in str(e.value)
    RunStore.open(cfg_at(tmp_path, seed=7), allow_change=True).close()


def _try_open(path, q):
    try:
        RunStore.open(cfg_at(path)).close()
        q.put("opened")
    except RunDirError as e:
        q.put(str(e))


def test_second_process_is_refused(tmp_path):
    with RunStore.open(cfg_at(tmp_path)):
        q = mp.get_context("spawn").Queue()
        p = mp.get_context("spawn").Process(target=_try_open, args=(tmp_path, q))
        p.start()
        p.join(60)
        assert "in use by another secondtry process" in q.get(timeout=5)


def test_hash_path_sees_content_and_names(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "a").write_text("1")
    h1 = hash_path(d)
    (d / "a").write_text("2")
    assert hash_path(d) != h1
    (d / "a").write_text("1")
    assert hash_path(d) == h1
    (d / "b").write_text("")
    assert hash_path(d) != h1
    assert json.loads(json.dumps(h1)) == h1


def test_a_killed_stage_keeps_its_finished_chunks_for_the_next_run(tmp_path):
    out = tmp_path / "r" / "round_1" / "x.jsonl"
    made = []

    def work(fail_at=None):
        partial = store.partial
        for c in range(3):
            if partial.chunk(c) is None:
                if c == fail_at:
                    raise RuntimeError("killed")
                made.append(c)
                partial.write_chunk(c, [{"chunk": c}])
        write_jsonl(out, [r for c in range(3) for r in partial.chunk(c)])

    with RunStore.open(cfg_at(tmp_path)) as store:
        with pytest.raises(RuntimeError):
            store.stage("round_1/x", {"a": 1}, [out], lambda: work(fail_at=2))
        assert not out.exists() and "round_1/x" not in store.manifest()["stages"]  # chunks are not outputs
        store.stage("round_1/x", {"a": 1}, [out], work)
        assert made == [0, 1, 2] and read_jsonl(out) == [{"chunk": 0}, {"chunk": 1}, {"chunk": 2}]
        assert not (out.parent / ".partial").exists()  # gone once the manifest records the stage
        with pytest.raises(RuntimeError):
            store.stage("round_1/x", {"a": 2}, [out], lambda: work(fail_at=1))
        store.stage("round_1/x", {"a": 3}, [out], work)  # other inputs: the chunk of {"a": 2} is not reused
        assert made == [0, 1, 2, 0, 0, 1, 2]


def test_stray_temp_files_of_a_killed_process_are_removed_on_open(tmp_path):
    with RunStore.open(cfg_at(tmp_path)) as store:
        stray = store.path(1, ".attempts.jsonl.abc.tmp")
        stray.parent.mkdir(parents=True)
        stray.write_text("half")
        staging = store.path(1, ".train-xyz")
        staging.mkdir()
    with RunStore.open(cfg_at(tmp_path)):
        assert not stray.exists() and not staging.exists()


def test_crash_point_kills_the_process_and_the_trace_lists_each_point(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    code = "from secondtry.store import crash_point\nfor p in ('a', 'b', 'b', 'c'): crash_point(p)\nprint('done')"
    trace = tmp_path / "trace"

    def run(kill_at):
        env = {**os.environ, "SECONDTRY_TRACE": str(trace), "SECONDTRY_KILL_AT": kill_at}
        trace.unlink(missing_ok=True)
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)

    assert run("b").returncode == -signal.SIGKILL and trace.read_text().split() == ["a", "b"]
    assert run("b#2").returncode == -signal.SIGKILL and trace.read_text().split() == ["a", "b", "b"]
    done = run("nowhere")
    assert done.returncode == 0 and done.stdout.strip() == "done" and trace.read_text().split() == ["a", "b", "b", "c"]


def test_written_files_get_a_plain_files_mode(tmp_path):
    import os

    from secondtry.store import write_text

    write_text(tmp_path / "a.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "a.txt").st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0o600
