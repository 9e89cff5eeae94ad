"""Where memory cgroups can be made (verifiers/cgroup.py), on fake cgroup trees: every host kind's branch,
whatever this host has (test_sandbox.py and test_memory_cap.py check the real one)."""

from __future__ import annotations

import doctest

import pytest

import secondtry.verifiers.cgroup as cgroup


def test_doctests():
    assert doctest.testmod(cgroup).failed == 0


def _group(path, controllers="", subtree=None):
    path.mkdir(parents=True, exist_ok=True)
    (path / "cgroup.controllers").write_text(controllers + "\n")
    if subtree is None:  # a group holding processes: the kernel refuses to give its children controllers
        (path / "cgroup.subtree_control").mkdir()
    else:
        (path / "cgroup.subtree_control").write_text(subtree + "\n")
    return path


@pytest.fixture
def host(tmp_path, monkeypatch):
    monkeypatch.delenv(cgroup.ENV, raising=False)

    def make(mounts, mine):
        found = [(str(tmp_path / m), kind, opts) for m, kind, opts in mounts]
        monkeypatch.setattr(cgroup, "_mounts", lambda: found)
        monkeypatch.setattr(cgroup, "_own_groups", lambda: mine)
        return cgroup._detect()

    return make


def test_v2_in_this_process_group(tmp_path, host):
    _group(tmp_path / "v2" / "app", "cpu memory pids", "cpu")
    assert host([("v2", "cgroup2", set())], {"": "/app"}) == cgroup.Support(2, tmp_path / "v2" / "app")
    # enabled for its children
    assert "memory" in (tmp_path / "v2" / "app" / "cgroup.subtree_control").read_text()


def test_v2_beside_a_group_that_holds_processes(tmp_path, host):
    _group(tmp_path / "v2" / "system.slice", "memory", "memory pids")
    _group(tmp_path / "v2" / "system.slice" / "run.service", "memory pids")
    support = host([("v2", "cgroup2", set())], {"": "/system.slice/run.service"})
    assert support == cgroup.Support(2, tmp_path / "v2" / "system.slice")


def test_the_named_group_comes_first(tmp_path, host, monkeypatch):
    named = _group(tmp_path / "delegated", "memory", "memory")
    _group(tmp_path / "v2" / "app", "memory", "")
    monkeypatch.setenv(cgroup.ENV, str(named))
    assert host([("v2", "cgroup2", set())], {"": "/app"}) == cgroup.Support(2, named)


def test_v1_memory_on_a_hybrid_host(tmp_path, host):
    _group(tmp_path / "unified", "hugetlb", "")  # this machine: v2 without memory, v1's memory controller
    (tmp_path / "memory" / "job").mkdir(parents=True)
    (tmp_path / "memory" / "job" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    support = host(
        [("unified", "cgroup2", set()), ("memory", "cgroup", {"rw", "memory"})], {"": "/", "memory": "/job"}
    )
    assert support == cgroup.Support(1, tmp_path / "memory" / "job")


def test_nowhere_says_why(tmp_path, host):
    _group(tmp_path / "v2" / "app", "cpu pids", "")
    support = host([("v2", "cgroup2", set())], {"": "/app"})
    assert not support.usable and "memory controller is not delegated" in support.reason
    assert host([], {}).reason == "no cgroup file system is mounted"
