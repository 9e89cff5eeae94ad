"""A memory cap that counts everything a sandbox holds: one memory cgroup per sandboxed run.

RLIMIT_AS caps each process's address space, not what a run holds in total: its files in tmpfs,
the kernel's memory for its inodes and pipes, several processes each under the limit. A memory
cgroup counts all of that (page cache and tmpfs pages the run wrote, kernel memory) and the kernel
OOM-kills inside the group when it is full, never outside it.

`detect()` finds, once per process, where this process may make such groups:

- cgroup v2 (`memory.max`), preferred: the folder named by the environment variable
  SECONDTRY_CGROUP (a delegated group, e.g. from `systemd-run --scope -p Delegate=yes`), else the
  group this process is in, when its `cgroup.subtree_control` has (or can be given) the memory
  controller, else beside it, when its parent's children have the memory controller;
- cgroup v1's memory controller (`memory.limit_in_bytes`, `memory.memsw.limit_in_bytes`), on hosts
  that still mount it (hybrid hierarchies), where this process may create groups in its own;
- neither: `detect()` says why, and the sandbox falls back to rlimits alone with a warning.

Groups are named `secondtry-<pid of the caller>-<random>`; those of callers that died are removed
by `sweep()`, as the sandbox's host folders are.

>>> Support(None, None, "no cgroup").usable
False
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PREFIX = "secondtry-"
ENV = "SECONDTRY_CGROUP"


@dataclass(frozen=True)
class Support:
    """Where memory cgroups can be made: `version` 2 or 1 and the parent folder, or why not (`reason`)."""

    version: int | None
    parent: Path | None
    reason: str | None = None

    @property
    def usable(self) -> bool:
        return self.version is not None


@dataclass
class Group:
    """One run's memory cgroup: its folder, and the file a process writes its pid to, to join it."""

    path: Path
    version: int

    @property
    def procs(self) -> str:
        return str(self.path / "cgroup.procs")

    def oom_kills(self) -> int:
        """How many processes the kernel killed because the group was full."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except OSError:
            pass
        return 0

    def peak_bytes(self) -> int | None:
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self.path / name).read_text())
        except (OSError, ValueError):
            return None

    def remove(self, wait_s: float = 0.5) -> bool:
        """rmdir the group once its processes are gone (the kernel reaps a killed PID namespace
        asynchronously); False if it is still busy after `wait_s` (`sweep` retries later)."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                os.rmdir(self.path)
                return True
            except FileNotFoundError:
                return True
            except OSError:
                if time.monotonic() >= deadline:
                    _leftover.add(self.path)
                    return False
                time.sleep(0.005)


_lock = threading.Lock()
_support: Support | None = None
_leftover: set[Path] = set()


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, super options) of the cgroup file systems."""
    out = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) > 4 and len(rfields) >= 3 and rfields[0] in ("cgroup", "cgroup2"):
            out.append((fields[4].replace("\\040", " "), rfields[0], set(rfields[2].split(","))))
    return out


def _own_groups() -> dict[str, str]:
    """controller (or "" for v2) -> this process's path in that hierarchy."""
    out = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                out[c] = path
    except (OSError, ValueError):
        pass
    return out


def _try_v2(folder: Path, enable: bool = True) -> str | None:
    """None if memory groups can be made under `folder` (giving its children the memory controller if
    `enable`), else why not."""
    try:
        controllers = (folder / "cgroup.controllers").read_text().split()
    except OSError as e:
        return f"cannot read {folder}/cgroup.controllers ({e.strerror})"
    if "memory" not in controllers:
        return f"the memory controller is not delegated to {folder}"
    control = folder / "cgroup.subtree_control"
    try:
        if "memory" not in control.read_text().split():
            if not enable:
                return f"the memory controller is not enabled for the children of {folder}"
            control.write_text("+memory")  # refused while the group holds processes (and is not the root)
    except OSError as e:
        return (
            f"cannot enable memory in {control} ({e.strerror}: a group with processes of its own cannot "
            f"have children with controllers); set {ENV} to a delegated group"
        )
    return _probe(folder)


def _probe(folder: Path) -> str | None:
    probe = folder / f"{PREFIX}probe-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as e:
        return f"cannot create a group in {folder} ({e.strerror})"
    return None


def detect() -> Support:
    """Where this process can make memory cgroups (cached), or why it cannot."""
    global _support
    with _lock:
        if _support is None:
            _support = _detect()
        return _support


def _detect() -> Support:
    reasons = []
    named = os.environ.get(ENV)
    if named:
        why = _try_v2(Path(named))
        if why is None:
            return Support(2, Path(named))
        reasons.append(f"{ENV}={named}: {why}")
    mounts, mine = _mounts(), _own_groups()
    for point, kind, _ in mounts:
        if kind == "cgroup2" and "" in mine:
            folder = Path(point + mine[""].rstrip("/"))
            why = _try_v2(folder)
            if why is None:
                return Support(2, folder)
            reasons.append(f"cgroup v2: {why}")
            # beside this process's group (a systemd service's slice usually gives its children memory)
            if folder != Path(point) and _try_v2(folder.parent, enable=False) is None:
                return Support(2, folder.parent)
    for point, kind, options in mounts:
        if kind == "cgroup" and "memory" in options and "memory" in mine:
            folder = Path(point + mine["memory"].rstrip("/"))
            if not (folder / "memory.limit_in_bytes").exists():
                reasons.append(f"cgroup v1: no memory.limit_in_bytes in {folder}")
                continue
            why = _probe(folder)
            if why is None:
                return Support(1, folder)
            reasons.append(f"cgroup v1: {why}")
    if not mounts:
        reasons.append("no cgroup file system is mounted")
    return Support(None, None, "; ".join(reasons) or "no memory controller found")


def create(limit_bytes: int) -> Group | None:
    """A new group capped at `limit_bytes` (swap included), or None where groups cannot be made here."""
    support = detect()
    if not support.usable or support.parent is None:
        return None
    path = support.parent / f"{PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
    try:
        path.mkdir()
    except OSError:
        return None
    try:
        if support.version == 2:
            (path / "memory.max").write_text(str(limit_bytes))
            for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
                if (path / name).exists():
                    (path / name).write_text(value)
        else:
            (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
            if (path / "memory.memsw.limit_in_bytes").exists():  # memory + swap, set after memory alone
                (path / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
    except OSError:
        Group(path, support.version).remove(0)
        return None
    return Group(path, support.version)


def sweep() -> None:
    """Remove groups whose caller died, and those of this process that were still busy when it ended."""
    support = detect()
    if support.parent is None:
        return
    for folder in list(_leftover):
        try:
            os.rmdir(folder)
            _leftover.discard(folder)
        except FileNotFoundError:
            _leftover.discard(folder)
        except OSError:
            pass
    for folder in orphans(support.parent, PREFIX):
        try:
            os.rmdir(folder)
        except OSError:
            pass


def orphans(parent: Path, prefix: str) -> list[Path]:
    """Entries `<prefix><pid>-...` of `parent` whose process is gone (their caller was killed mid-run)."""
    try:
        entries = list(parent.glob(f"{prefix}*-*"))
    except OSError:
        return []
    out = []
    for entry in entries:
        pid = entry.name[len(prefix) :].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            out.append(entry)
        except OSError:  # alive, another user's
            pass
    return out
