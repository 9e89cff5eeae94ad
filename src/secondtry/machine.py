"""The CPUs this process may use, its share of them in a launch of several processes, how busy the machine is,
and the torch thread count that follows.

Torch's default is one thread per core of the machine. On a machine shared with other work, or with several
of our own processes (torchrun, `run --jobs`), those threads spin against each other and a CPU-bound stage
can run ten times slower than alone (benchmarks/results/threads-cpu-2cores-2026-12-06.json: 0.33 s a toy
pretraining step with one thread, 3.2 s with two, at a load average of 10.5 on 2 cores). So a run sets torch's
threads to its share of the CPUs it may use (its affinity mask, capped by a cgroup CPU quota), no more than
the cores the load average leaves free (at least one), and an explicit OMP_NUM_THREADS always wins.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path


def usable_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota (cpu.max) if any."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def launch_share(env: dict[str, str] | None = None) -> int:
    """How many processes of one launch share this machine's CPUs: torchrun's LOCAL_WORLD_SIZE, else 1."""
    env = os.environ if env is None else env
    try:
        return max(1, int(env.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def load_average() -> float | None:
    """The 1-minute load average (None where the system does not report one)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


@dataclass(frozen=True)
class Threads:
    """The torch thread count chosen, and why (shown in the log)."""

    count: int
    why: str


def choose_threads(cpus: int, share: int, load: float | None, omp: str | None) -> Threads:
    """Threads for torch's intra-op pool.

    >>> choose_threads(8, 1, 0.5, None).count, choose_threads(8, 4, 0.5, None).count
    (8, 2)
    >>> choose_threads(2, 1, 6.6, None).count, choose_threads(2, 1, 6.6, "2").count
    (1, 2)
    >>> choose_threads(8, 1, 3.2, None).count
    5
    """
    if omp and omp.strip().isdigit() and int(omp) > 0:
        return Threads(int(omp), "OMP_NUM_THREADS")
    mine = max(1, cpus // share)
    why = f"{cpus} usable CPU{'s' * (cpus != 1)}" + (f" shared by {share} processes" if share > 1 else "")
    free = max(1, round(cpus - load)) if load is not None else mine
    if free < mine:  # threads beyond the idle cores wait on each other behind the other work
        left = "none" if cpus - load < 1 else f"about {free}"
        return Threads(free, f"{why}, load average {load:.1f}: {left} free of other work")
    return Threads(mine, why)


def busy_warning(load: float | None, cpus: int) -> str | None:
    """A one-line warning when the machine's load average is above the CPUs this process may use."""
    if load is None or load <= cpus:
        return None
    return (
        f"load average {load:.1f} on {cpus} usable CPU{'s' * (cpus != 1)}: other work shares this "
        f"machine, so timings will be slower than on an idle one"
    )


def set_torch_threads(env: dict[str, str] | None = None) -> tuple[Threads, str | None]:
    """Set torch's intra-op threads for this process; return the choice and the busy-machine warning."""
    import torch

    env = os.environ if env is None else env
    cpus, load = usable_cpus(), load_average()
    threads = choose_threads(cpus, launch_share(env), load, env.get("OMP_NUM_THREADS"))
    torch.set_num_threads(threads.count)
    return threads, busy_warning(load, cpus)
