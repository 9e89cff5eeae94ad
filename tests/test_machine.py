"""Torch threads from the CPUs a process may use, its share of a launch, and the load other work puts on
them."""

import doctest

from secondtry import machine
from secondtry.machine import busy_warning, choose_threads, launch_share, usable_cpus


def test_threads_are_the_process_share_of_the_free_cores_and_omp_num_threads_wins():
    assert choose_threads(16, 1, 0.2, None).count == 16
    assert choose_threads(16, 4, 0.2, None).count == 4  # torchrun with 4 processes on the node
    assert choose_threads(2, 1, 11.6, None).count == 1  # the loaded 2-core machine: one thread, not two
    assert "none free of other work" in choose_threads(2, 1, 11.6, None).why
    assert choose_threads(8, 1, 3.2, None).count == 5  # about five cores left by other work
    assert choose_threads(8, 2, 3.2, None).count == 4  # the share is below what is free: the share
    assert choose_threads(2, 1, None, None).count == 2  # no load average reported
    assert choose_threads(2, 1, 11.6, "2") == machine.Threads(2, "OMP_NUM_THREADS")  # the user's word wins
    assert choose_threads(2, 1, 0.0, "0").count == 2  # a meaningless setting is ignored
    assert doctest.testmod(machine).failed == 0


def test_the_share_of_a_launch_comes_from_torchrun_and_the_cpus_from_affinity_and_the_cgroup(tmp_path):
    assert launch_share({"LOCAL_WORLD_SIZE": "4"}) == 4 and launch_share({}) == 1
    assert launch_share({"LOCAL_WORLD_SIZE": "x"}) == 1
    free = usable_cpus(tmp_path)  # no cpu.max here: the affinity mask alone
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert usable_cpus(tmp_path) == free
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # a quota of 1.5 CPUs
    assert usable_cpus(tmp_path) == min(free, 2)
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert usable_cpus(tmp_path) == 1


def test_a_busy_machine_is_one_warning_line():
    line = busy_warning(6.6, 2)
    assert line is not None and "\n" not in line and "load average 6.6 on 2 usable CPUs" in line
    assert "timings will be slower" in line
    assert busy_warning(1.5, 2) is None and busy_warning(None, 2) is None


def test_set_torch_threads_sets_them(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        threads, _ = machine.set_torch_threads({"OMP_NUM_THREADS": "1"})
        assert threads.count == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
