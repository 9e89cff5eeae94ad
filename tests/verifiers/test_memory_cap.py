"""The host is safe from a sandbox's appetite: the known memory attacks, run side by side in one program, may
lower the host's free memory (MemAvailable) by at most the configured cap plus 64 MB."""

from __future__ import annotations

import threading
import time

import pytest

from secondtry.types import Problem
from secondtry.verifiers import cgroup, code, sandbox

pytestmark = pytest.mark.integration  # programs in sandboxes under a memory cgroup

CAP_MB = 256
SLACK_MB = 64

# each attack runs in its own child process, all at once; each would hold far more than the cap on its own
ATTACKS = {
    "creep": "chunks = []\nwhile True:\n    chunks.append(bytearray(32 << 20))",
    "fill_workdir": "i = 0\nwhile True:\n    open(f'/sandbox/f{i}', 'wb').write(b'x' * (8 << 20))\n"
    "    i += 1",
    "fill_tmp": "i = 0\nwhile True:\n    open(f'/tmp/f{i}', 'wb').write(b'x' * (8 << 20))\n    i += 1",
    "fill_dev_shm": "i = 0\nwhile True:\n    open(f'/dev/shm/f{i}', 'wb').write(b'x' * (8 << 20))\n"
    "    i += 1",
    "fill_root": "i = 0\nwhile True:\n    open(f'/f{i}', 'wb').write(b'x' * (8 << 20))\n    i += 1",
    "memfd": "import os\nfd = os.memfd_create('m')\nwhile True:\n    os.write(fd, b'x' * (8 << 20))",
    "sysv_shm": "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
    "libc.shmat.restype = ctypes.c_void_p\nwhile True:\n"
    "    i = libc.shmget(0, 64 << 20, 0o1000 | 0o600)\n    a = libc.shmat(i, None, 0)\n"
    "    ctypes.memset(a, 1, 64 << 20)\n    libc.shmdt(ctypes.c_void_p(a))",
    "xattrs": "import os\nopen('/tmp/x', 'w').close()\ni = 0\nwhile True:\n"
    "    os.setxattr('/tmp/x', f'user.{i}', b'v' * 4000)\n    i += 1",
    "many_files": "import os\nos.mkdir('/tmp/d')\ni = 0\nwhile True:\n"
    "    open(f'/tmp/d/{i:09d}' + 'n' * 200, 'w').close()\n"
    "    i += 1",
    "fork_and_allocate": "import os\nfor _ in range(6):\n    if os.fork() == 0:\n"
    "        x = bytearray(200 << 20)\n"
    "        break",
}
CHILD = (
    "if os.fork() == 0:\n    try:\n        exec({!r})\n    except BaseException:\n        pass\n"
    "    time.sleep(30)\n    os._exit(0)\n"
)
PROGRAM = (
    "import os, time\n"
    + "".join(CHILD.format(src) for src in ATTACKS.values())
    + "time.sleep(30)\n\ndef f():\n    return 1\n"
)


def _available_mb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def _drop_while(run) -> tuple[float, object]:
    """How far MemAvailable fell below its level just before `run()` (sampled every 5 ms), and its result."""
    baseline = max(_available_mb() for _ in range(20))
    samples: list[float] = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            samples.append(_available_mb())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = run()
        time.sleep(0.3)  # the kernel frees a killed sandbox's memory asynchronously
    finally:
        done.set()
        sampler.join()
    return baseline - min(samples), result


@pytest.mark.skipif(
    not cgroup.detect().usable,
    reason=f"no memory cgroup on this host, no total cap to check: {cgroup.detect().reason}",
)
def test_memory_attacks_side_by_side_stay_within_the_cap():
    problem = Problem(id="memory", prompt="", answer="assert f() == 2")
    worst = None
    for _ in range(3):  # other work on a shared machine moves MemAvailable too: a real hole shows every time
        drop, v = _drop_while(
            lambda: code.verify(problem, f"```python\n{PROGRAM}```", timeout_s=4, memory_mb=CAP_MB)
        )
        assert v.correct is False and v.reason, v
        assert v.details.get("oom_killed") or v.details.get("memory_peak_mb", 0) >= 0.9 * CAP_MB, v.details
        worst = drop if worst is None else min(worst, drop)
        if drop <= CAP_MB + SLACK_MB:
            break
    assert worst <= CAP_MB + SLACK_MB, f"the host's free memory fell by {worst:.0f} MB (cap {CAP_MB} MB)"


@pytest.mark.skipif(not cgroup.detect().usable, reason=f"no memory cgroup here: {cgroup.detect().reason}")
def test_the_cap_counts_what_rlimits_do_not():
    """Each of these alone stays under RLIMIT_AS (or outside it) but not under the cgroup's cap."""
    for name in ("memfd", "fill_workdir", "many_files"):  # with file size and tmpfs limits out of the way
        r = sandbox.run(
            {"main.py": ATTACKS[name]},
            [sandbox.interpreter(), "main.py"],
            timeout_s=20,
            memory_mb=128,
            disk_mb=4096,
            fsize_mb=4096,
        )
        assert r.oom_killed, (name, r)
