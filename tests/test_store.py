import json
import multiprocessing as mp

import pytest

from secondtry.config import build_config
from secondtry.store import RunDirError, RunStore, hash_path, read_jsonl, write_jsonl

BASE = {
    "name": "r",
    "model": {"path": "m/x"},
    "train_task": {"name": "synthetic"},
    "eval_task": {"name": "synthetic", "split": "test"},
    "evaluation": {"select_on": "test"},
}  # several rounds by default: where to choose must be said


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


@pytest.mark.integration
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


def _chunked_stage(store, out, made, fail_at=None, inputs=None):
    """A stage of three chunks of two records; `fail_at` stops it (as a kill would) before that chunk."""

    def work():
        partial = store.partial
        for c in range(3):
            if partial.chunk(c) is None:
                if c == fail_at:
                    raise RuntimeError("killed")
                made.append(c)
                partial.write_chunk(c, [{"chunk": c, "i": 0}, {"chunk": c, "i": 1}])
        write_jsonl(out, [r for c in range(3) for r in partial.chunk(c)])

    return store.stage("round_1/x", inputs or {"a": 1}, [out], work)


def test_a_killed_stage_keeps_its_finished_chunks_for_the_next_run(tmp_path):
    out = tmp_path / "r" / "round_1" / "x.jsonl"
    made = []
    with RunStore.open(cfg_at(tmp_path)) as store:
        with pytest.raises(RuntimeError):
            _chunked_stage(store, out, made, fail_at=2)
        assert not out.exists() and "round_1/x" not in store.manifest()["stages"]  # chunks are not outputs
        _chunked_stage(store, out, made)
        assert made == [0, 1, 2]
        assert read_jsonl(out) == [{"chunk": c, "i": i} for c in range(3) for i in range(2)]
        assert not (out.parent / ".partial").exists()  # gone once the manifest records the stage
        with pytest.raises(RuntimeError):
            _chunked_stage(store, out, made, fail_at=1, inputs={"a": 2})
        _chunked_stage(store, out, made, inputs={"a": 3})  # other inputs: the chunk of {"a": 2} is not reused
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


@pytest.mark.integration
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
        return subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )

    assert run("b").returncode == -signal.SIGKILL and trace.read_text().split() == ["a", "b"]
    assert run("b#2").returncode == -signal.SIGKILL and trace.read_text().split() == ["a", "b", "b"]
    done = run("nowhere")
    assert (
        done.returncode == 0
        and done.stdout.strip() == "done"
        and trace.read_text().split() == ["a", "b", "b", "c"]
    )


def test_written_files_get_a_plain_files_mode(tmp_path):
    import os

    from secondtry.store import write_text

    write_text(tmp_path / "a.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "a.txt").st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0o600


# -- damaged pieces: every piece the run trusts is checked against its own record before reuse -----------


class Seen:
    def __init__(self):
        self.lines = []

    def info(self, message):
        self.lines.append(message)

    warn = info


@pytest.mark.parametrize(
    "damage", ["missing line", "cut mid-line", "edited record", "deleted record file", "empty"]
)
def test_a_damaged_chunk_is_made_again_and_the_log_says_which_and_why(tmp_path, damage):
    out, made, seen = tmp_path / "r" / "round_1" / "x.jsonl", [], Seen()
    with RunStore.open(cfg_at(tmp_path), log=seen) as store:
        with pytest.raises(RuntimeError):
            _chunked_stage(store, out, made, fail_at=2)
    chunk = tmp_path / "r" / "round_1" / ".partial" / "x" / "chunk-00001.jsonl"
    text = chunk.read_text()
    if damage == "missing line":
        chunk.write_text(text.splitlines(True)[0])
    elif damage == "cut mid-line":
        chunk.write_text(text[:-7])
    elif damage == "edited record":
        chunk.write_text(text.replace('"i": 1', '"i": 7'))
    elif damage == "deleted record file":
        next(chunk.parent.glob("chunk-00001*.sum")).unlink()
    else:
        chunk.write_text("")
    with RunStore.open(cfg_at(tmp_path), log=seen) as store:
        _chunked_stage(store, out, made)
    assert made == [0, 1, 1, 2]  # chunk 0 kept, chunk 1 made again, chunk 2 made for the first time
    assert read_jsonl(out) == [{"chunk": c, "i": i} for c in range(3) for i in range(2)]
    assert any("chunk 1" in line and "made again" in line for line in seen.lines), seen.lines


def _two_stages(store, calls):
    for name in ("a", "b"):
        out = store.path(1, f"{name}.jsonl")

        def work(name=name, out=out):
            calls.append(name)
            write_jsonl(out, [{"v": name}])
            return {"n": name}

        store.stage(f"round_1/{name}", {"x": name}, [out], work)


@pytest.mark.parametrize("damage", ["cut", "emptied", "deleted", "edited"])
def test_a_damaged_manifest_is_recovered_not_a_crash(tmp_path, damage):
    calls, seen = [], Seen()
    with RunStore.open(cfg_at(tmp_path)) as store:
        _two_stages(store, calls)
        recorded = store.manifest()["stages"]
    manifest = tmp_path / "r" / "manifest.json"
    text = manifest.read_text()
    if damage == "cut":
        manifest.write_text(text[: len(text) // 2])
    elif damage == "emptied":
        manifest.write_text("")
    elif damage == "deleted":
        manifest.unlink()
    else:  # still JSON, but not what was written: its own check catches it
        manifest.write_text(text.replace('"n": "a"', '"n": "z"'))
    with RunStore.open(cfg_at(tmp_path), log=seen) as store:
        _two_stages(store, calls)
        assert store.manifest()["stages"] == recorded
    assert calls == ["a", "b"]  # nothing ran again
    assert any("manifest.json" in line for line in seen.lines), seen.lines


def test_a_manifest_without_a_usable_backup_is_rebuilt_from_the_stages_own_records(tmp_path):
    calls, seen = [], Seen()
    with RunStore.open(cfg_at(tmp_path)) as store:
        _two_stages(store, calls)
        recorded = store.manifest()["stages"]
    root = tmp_path / "r"
    for p in root.glob("manifest*.json"):
        p.write_text("{")
    with RunStore.open(cfg_at(tmp_path), log=seen) as store:
        _two_stages(store, calls)
        assert store.manifest()["stages"] == recorded
    assert calls == ["a", "b"] and any("rebuilt" in line for line in seen.lines), seen.lines


def test_a_damaged_stage_output_is_redone_and_the_log_names_it(tmp_path):
    calls, seen = [], Seen()
    with RunStore.open(cfg_at(tmp_path)) as store:
        _two_stages(store, calls)
    (tmp_path / "r" / "round_1" / "b.jsonl").write_text('{"v": "edited"}\n')
    with RunStore.open(cfg_at(tmp_path), log=seen) as store:
        _two_stages(store, calls)
    assert calls == ["a", "b", "b"]
    assert any("round_1/b" in line and "b.jsonl" in line for line in seen.lines), seen.lines


def test_a_damaged_config_copy_is_rewritten_while_a_changed_config_is_still_refused(tmp_path):
    seen = Seen()
    RunStore.open(cfg_at(tmp_path)).close()
    saved = tmp_path / "r" / "config.yaml"
    want = saved.read_text()
    saved.write_bytes(saved.read_bytes()[:40] + b"\xff\xfe")  # cut, and not UTF-8 any more
    RunStore.open(cfg_at(tmp_path), log=seen).close()
    assert saved.read_text() == want and any("config.yaml" in line for line in seen.lines), seen.lines
    with pytest.raises(RunDirError, match="run with another config"):
        RunStore.open(cfg_at(tmp_path, seed=7))


# -- file system errors: one line naming the path and what to do; nothing finished is lost ---------------


@pytest.mark.parametrize("code, words", [(28, "no space left"), (30, "read-only"), (13, "permission denied")])
def test_a_file_system_error_in_a_stage_ends_with_one_line_and_keeps_finished_stages(tmp_path, code, words):
    import os

    from secondtry.store import StorageError

    calls = []
    with RunStore.open(cfg_at(tmp_path)) as store:
        _two_stages(store, calls)
    target = tmp_path / "r" / "round_1" / "c.jsonl"

    def fails():
        raise OSError(code, os.strerror(code), str(target))

    with pytest.raises(StorageError) as e:
        with RunStore.open(cfg_at(tmp_path)) as store:
            _two_stages(store, calls)
            store.stage("round_1/c", {}, [target], fails)
    message = str(e.value)
    assert "\n" not in message and str(target) in message and words in message.lower()
    assert "run the same command again" in message, message
    assert e.value.errno == code
    with RunStore.open(cfg_at(tmp_path)) as store:  # the lock was released, the finished stages are kept
        _two_stages(store, calls)
        assert set(store.manifest()["stages"]) == {"round_1/a", "round_1/b"}
    assert calls == ["a", "b"]


def test_a_library_error_from_a_full_disk_is_named_by_probing_the_run_directory(tmp_path, monkeypatch):
    import errno
    import os

    from secondtry import store as store_module
    from secondtry.store import StorageError

    def torch_like():  # torch.save on a full disk: a RuntimeError that names neither the errno nor the path
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 4480 vs 4368")

    real_write = os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(StorageError) as e:
        with RunStore.open(cfg_at(tmp_path)) as store:
            monkeypatch.setattr(store_module.os, "write", full)  # every write from here on: the disk is full
            store.stage("round_1/c", {}, [store.path(1, "c.jsonl")], torch_like)
    monkeypatch.setattr(store_module.os, "write", real_write)
    assert "no space left" in str(e.value).lower() and str(tmp_path / "r") in str(e.value)


def test_damaged_stage_record_backup_and_config_copies_are_written_again(tmp_path):
    calls, seen = [], Seen()
    with RunStore.open(cfg_at(tmp_path)) as store:
        _two_stages(store, calls)
        _two_stages(store, calls)  # the second pass records nothing: the backup is the first stage's manifest
    root = tmp_path / "r"
    record, backup = root / "round_1" / ".stages" / "a.json", root / "manifest.backup.json"
    want = record.read_text()
    record.write_text(want[:30])
    backup.write_text("[]")
    (root / "config.yaml").write_text("seed: 1\n")
    (root / ".config.yaml.sum").write_text("{")
    with RunStore.open(cfg_at(tmp_path, seed=7), log=seen) as store:  # no trusted copy of the config: goes on
        _two_stages(store, calls)
    assert calls == ["a", "b"] and record.read_text() == want
    assert "seed: 7" in (root / "config.yaml").read_text()
    for word in ("a.json", "backup", "config"):
        assert [line for line in seen.lines if word in line], (word, seen.lines)
    with pytest.raises(RunDirError, match="run with another config"):  # and now it is known again
        RunStore.open(cfg_at(tmp_path, seed=8))


def test_a_permission_error_outside_the_run_directory_is_not_called_a_write_failure(tmp_path):
    import errno

    from secondtry.store import storage_error

    root = tmp_path / "r"
    root.mkdir()
    elsewhere = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "models" / "x.safetensors"))
    assert storage_error(elsewhere, root) is None
    inside = PermissionError(errno.EACCES, "Permission denied", str(root / "round_1" / "x.jsonl"))
    assert "permission denied" in str(storage_error(inside, root))


def test_a_deleted_config_copy_is_still_compared_through_its_record(tmp_path):
    RunStore.open(cfg_at(tmp_path)).close()
    (tmp_path / "r" / "config.yaml").unlink()
    with pytest.raises(RunDirError, match="run with another config"):
        RunStore.open(cfg_at(tmp_path, seed=7))
    RunStore.open(cfg_at(tmp_path)).close()
    assert "seed: 42" in (tmp_path / "r" / "config.yaml").read_text()
