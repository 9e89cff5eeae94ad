import json
import multiprocessing as mp

import pytest

from secondtry.config import build_config
from secondtry.store import RunDirError, RunStore, hash_path, read_jsonl, write_jsonl

BASE = {"name": "r", "model": {"path": "m/x"}, "train_task": {"name": "synthetic"},
        "eval_task": {"name": "synthetic", "split": "test"}}


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
