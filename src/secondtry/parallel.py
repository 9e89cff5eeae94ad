"""Several runs at once on one machine, each its own `secondtry run` process (`secondtry run --jobs K`).

A small model leaves a GPU mostly idle (a step is a few kernel launches; tokenising, verifying and
the trainer's bookkeeping run on the CPU), so the seeds and presets of one command can share it:
each runs as the same command restricted to its preset and seed, writes its output to
`<run_dir>/<name>.log`, and resumes like any run when the command is given again. On a machine
with several GPUs each process is given one (CUDA_VISIBLE_DEVICES), the one running the fewest
jobs. A failed run does not stop the others; its name, exit code and last lines are reported at
the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .log import Log
from .machine import usable_cpus


@dataclass
class Job:
    name: str
    args: list[
        str
    ]  # `secondtry` arguments, e.g. ["run", "cfg.yaml", "--preset", "resampling", "--seeds", "43,"]
    log: Path


def threads_per_job(jobs: int) -> int:
    """CPU threads each process may use, so that K processes do not oversubscribe the cores."""
    return max(1, usable_cpus() // jobs)


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (empty without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    named = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return named or [str(i) for i in range(torch.cuda.device_count())]


def run_jobs(
    jobs: list[Job],
    at_once: int,
    log: Log,
    gpus: list[str] | None = None,
    poll_s: float = 0.5,
    command: list[str] | None = None,
) -> dict[str, str]:
    """Run every job, at most `at_once` at a time, spread over `gpus` when there are several; return why
    each failed job failed (empty: all finished). `command` is what the job's args follow."""
    command = command or [sys.executable, "-m", "secondtry.cli"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("OMP_NUM_THREADS", str(threads_per_job(at_once)))
    gpus = gpus or []
    waiting: list[Job] = list(jobs)
    running: list[tuple[Job, subprocess.Popen, str | None]] = []
    failed: dict[str, str] = {}
    try:
        with log.progress(f"runs ({at_once} at a time)", len(jobs), "runs") as bar:
            while waiting or running:
                while waiting and len(running) < at_once:
                    job = waiting.pop(0)
                    job.log.parent.mkdir(parents=True, exist_ok=True)
                    gpu = min(gpus, key=lambda g: sum(r[2] == g for r in running)) if len(gpus) > 1 else None
                    mine = {**env, "CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else env
                    with open(job.log, "ab") as out:
                        proc = subprocess.Popen(
                            [*command, *job.args],
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                            env=mine,
                        )
                    running.append((job, proc, gpu))
                    log.info(
                        f"started {job.name}"
                        + (f" on GPU {gpu}" if gpu is not None else "")
                        + f" (log: {job.log})"
                    )
                time.sleep(poll_s)
                for entry in [r for r in running if r[1].poll() is not None]:
                    running.remove(entry)
                    job, proc = entry[0], entry[1]
                    bar(1)
                    if proc.returncode == 0:
                        log.info(f"finished {job.name}")
                    else:
                        failed[job.name] = f"exit {proc.returncode}: {_tail(job.log)}"
                        log.warn(f"{job.name} failed (exit {proc.returncode}); its log: {job.log}")
    except KeyboardInterrupt:
        for _, proc, _ in running:  # each stops as an interrupted run does: the next command resumes it
            proc.terminate()
        for _, proc, _ in running:
            proc.wait()
        raise
    return failed


def _tail(path: Path, lines: int = 3) -> str:
    text = path.read_text(errors="replace").replace("\r", "\n")
    return " | ".join([line.strip() for line in text.splitlines() if line.strip()][-lines:])
