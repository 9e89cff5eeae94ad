"""Run untrusted (model-written) programs: `run(files, argv, ...) -> SandboxResult`, or several at once,
each in its own sandbox, under one memory cap and one wall clock: `run_group(programs, ...)`.

The program is hostile input. Each layer below holds against something the others do not:

- bubblewrap (`bwrap`), new user, PID, network, IPC, UTS, cgroup and mount namespaces: the
  program sees only /usr (read-only), its own /proc, a read-only minimal /dev, a read-only root
  and three tmpfs of `disk_mb` each (/sandbox, its working directory; /tmp; /dev/shm), the only
  places it can write, none shared with another sandbox. Nothing of /etc, /root,
  /home or the project is visible, there is no network (not even the host's loopback or its
  abstract unix sockets), and it cannot see or signal any process outside. `--die-with-parent`
  plus the PID namespace mean that when bwrap dies every process inside dies too,
  double-forked daemons included. `--disable-userns`: no nested namespaces (less kernel
  attack surface).
- a seccomp filter (seccomp.py, installed by `bwrap --seccomp`): no SysV IPC or POSIX message
  queues, no extended attributes, no ptrace, no io_uring, no file locks, leases or inotify
  watches (the files under /usr are the same inodes in every sandbox: a lock on one would be a
  channel between two programs).
- a memory cgroup per `run_group` (cgroup.py: v2's `memory.max`, or v1's memory controller),
  capping everything its programs hold together at `memory_mb`: their processes, their tmpfs
  files and the kernel's memory for them; the kernel OOM-kills inside the group when it is
  full. Where the host allows no such group, the run falls back to the rlimits below with a
  warning in the result (`warning`, `memory_cap`) and once on stderr.
- A fixed unprivileged user (uid 65534, when we run as root): the kernel exempts root from
  RLIMIT_NPROC, and uid 0 outside the namespace would own the mounts and the files it made.
- rlimits, set inside the sandbox (by util-linux's prlimit, or a Python launcher where it is
  missing) just before it execs the program: NPROC (fork and thread bombs; set inside the
  user namespace, it counts only this sandbox's processes), AS (memory bombs), CPU (busy
  loops that outrun the wall clock), FSIZE (huge output, disk filling: stdout and stderr are
  files it caps), NOFILE (fd exhaustion), CORE=0. The tmpfs sizes cap what it can write.
  Without a memory cgroup, the worst-case memory of one run is about `nproc * memory_mb` plus
  the tmpfs and the kernel's memory for the files it creates (~40k files a second, ~1 KB each).
- The parent's wall clock: the program runs in its own process group, SIGKILLed at
  `timeout_s` (sleeps use no CPU, so RLIMIT_CPU alone does not end them).
- PR_SET_PDEATHSIG on bwrap: if the caller dies (a verifier pool worker killed on its own
  hard timeout), bwrap gets SIGKILL and takes the sandbox with it.
- oom_score_adj 1000: if memory runs out anyway, the kernel kills the sandbox first (the program
  may lower it back to its caller's level, not below).
- A private host directory per run (stdout, stderr and the input files), removed afterwards;
  the folders of a caller killed mid-run are swept by the next process that runs a program.

`sandbox="rlimits"` is an explicit opt-in for machines without working user namespaces:
process group, rlimits, uid 65534 when root and a private directory, but no namespaces, so
the program can read world-readable files, use the network, signal other uid-65534
processes, and a daemon that calls setsid() escapes the group kill. Results say so
(`method`, `warning`); it has no seccomp filter (the memory cgroup applies). Not defended by any mode:
kernel exploits through the system calls the filter allows, and CPU contention (or page-cache
timing) with other work on the machine.

>>> r = run({"main.py": "print(6 * 7)"}, [interpreter(), "main.py"], timeout_s=5, memory_mb=256)  # doctest: +SKIP
>>> r.returncode, r.stdout_tail, r.method  # doctest: +SKIP
(0, '42\\n', 'bwrap')
"""

from __future__ import annotations

import ctypes
import math
import os
import platform
import resource
import select
import shutil
import signal as _signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from . import cgroup as _cgroup
from . import seccomp as _seccomp

PREFIX = "secondtry-sandbox-"  # host folders are PREFIX<pid of the caller>-<random>
NOBODY = 65534  # the unprivileged uid and gid programs run as when the caller is root
CAP = 8192  # bytes of stdout head / tail and stderr tail kept in the result
INSIDE = "/sandbox"  # the program's working directory (and HOME) under bwrap
FIX = (
    "install bubblewrap (`apt-get install bubblewrap`), or set the verifier option "
    "`sandbox: rlimits` to accept weaker isolation (no namespaces)"
)
NO_CGROUP_WARNING = (
    "no memory cgroup, so the cap is per process (RLIMIT_AS): a run's processes, files and "
    "kernel memory together may exceed it: "
)
NO_SECCOMP_WARNING = (
    f"no seccomp filter on this architecture ({platform.machine()}): SysV IPC, xattrs, "
    "ptrace, io_uring allowed"
)
RLIMITS_WARNING = (
    "weaker isolation (sandbox: rlimits): no namespaces, so the program could read "
    "world-readable files, use the network and leave setsid() daemons behind"
)

# Sets the rlimits inside the sandbox, then execs the program: util-linux's prlimit (C, ~1 ms), or
# this Python fallback where /usr/bin/prlimit is missing: `python -I -S -c LAUNCHER as=S:H ... -- argv`.
LAUNCHER = """\
import os, resource, sys
i = sys.argv.index("--")
for spec in sys.argv[1:i]:
    name, value = spec.split("=")
    resource.setrlimit(getattr(resource, "RLIMIT_" + name.upper()), tuple(map(int, value.split(":"))))
os.execvp(sys.argv[i + 1], sys.argv[i + 1:])
"""
PRLIMIT = "/usr/bin/prlimit"


class SandboxUnavailable(RuntimeError):
    """The requested sandbox cannot run here; the message names the fix."""


@dataclass(frozen=True)
class SandboxResult:
    """What one run did. `error` is set only when the sandbox itself failed (not the program's doing)."""

    returncode: int | None  # exit status; -N when killed by signal N; None if it never started
    signal: int | None  # the signal that ended it, if one did
    timed_out: bool  # killed by the wall clock
    output_limited: bool  # stdout, stderr or a file hit RLIMIT_FSIZE
    stdout_head: str
    stdout_tail: str  # the last CAP bytes (the same as the head for short output)
    stderr_tail: str
    wall_s: float
    method: str  # "bwrap" | "rlimits"
    error: str | None = None
    warning: str | None = None  # set for the weaker "rlimits" mode
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    cut: bool = False  # still running when its group ended (the wall clock, or the end of the one awaited)
    memory_cap: str = "rlimits"  # what capped its memory: "cgroup v2", "cgroup v1", or rlimits alone
    oom_killed: bool = False  # the kernel killed a process of the group because the cap was reached
    memory_peak_mb: float | None = None  # the group's peak memory (cgroup), all its programs together


def interpreter(python: str | None = None) -> str:
    """The Python that runs programs: `python`, else /usr/bin/python3, else this one's real path."""
    if python:
        return python if "/" in python else (shutil.which(python) or python)
    if os.access("/usr/bin/python3", os.X_OK):  # readable by uid 65534, unlike a venv under /root
        return "/usr/bin/python3"
    return os.path.realpath(sys.executable)


def _python_binds(python: str) -> list[str]:
    """Read-only paths an interpreter outside /usr needs: its real prefix (and a base prefix)."""
    real = os.path.realpath(python)
    if real.startswith("/usr/"):
        return []
    binds = [str(Path(real).parent.parent)]  # <prefix>/bin/python3 -> <prefix>
    if real == os.path.realpath(sys.executable) and not sys.base_prefix.startswith("/usr"):
        binds.append(sys.base_prefix)
    return binds


_libc = ctypes.CDLL(None, use_errno=True)  # loaded here: the child of a fork must not import
_PR_SET_PDEATHSIG = 1
_probe_lock = threading.Lock()
_probed: dict[tuple[str, str, tuple[str, ...]], str | None] = {}  # (bwrap, python, binds) -> error or None
_swept = False
_warned = False


def _preexec(
    drop: bool, parent: int, limits: Mapping[str, tuple[int, int]], cgroup_procs: str | None
) -> None:
    """In the child, before exec: in the run's memory cgroup, first in the kernel's OOM line, unprivileged,
    dies with the caller."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    if cgroup_procs is not None:  # before the sandbox forks anything: every process it makes is counted
        with open(cgroup_procs, "w") as f:  # a failure here fails the start: never run uncapped silently
            f.write(str(os.getpid()))
    if drop:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    # after setuid: changing credentials clears the parent-death signal
    _libc.prctl(_PR_SET_PDEATHSIG, int(_signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the caller died before prctl took effect
        os._exit(1)
    for name, value in limits.items():  # last: RLIMIT_AS may be below this forked copy's size
        resource.setrlimit(getattr(resource, "RLIMIT_" + name.upper()), value)


SH, CHOOM, SETPRIV = "/bin/sh", "/usr/bin/choom", "/usr/bin/setpriv"
_JOIN = 'echo $$ > "$0" || exit 125; exec "$@"'  # join the memory cgroup ($0: its cgroup.procs), then exec


def _outside_chain(root: bool, cgroup_procs: str | None) -> list[str] | None:
    """What `_preexec` does, as commands that exec one another (sh, util-linux's choom and setpriv): a
    preexec_fn makes Python fork instead of vfork and run code in the child, ~10 ms a start. None where
    one of them is missing (then `_preexec` does it)."""
    if not all(os.access(tool, os.X_OK) for tool in (SH, CHOOM, SETPRIV)):
        return None
    chain = [SH, "-c", _JOIN, cgroup_procs] if cgroup_procs is not None else []
    chain += [CHOOM, "-n", "1000", "--", SETPRIV]
    if root:
        chain += ["--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups"]
    return chain + ["--pdeathsig", "KILL", "--"]  # set after the change of user, which would clear it


def _limits(memory_mb: int, cpu_s: int, fsize_mb: int, nproc: int, nofile: int) -> dict[str, tuple[int, int]]:
    mb = 1024 * 1024
    return {
        "as": (memory_mb * mb, memory_mb * mb),
        "cpu": (cpu_s, cpu_s + 1),  # SIGXCPU, then SIGKILL
        "fsize": (fsize_mb * mb, fsize_mb * mb),
        "nproc": (nproc, nproc),
        "nofile": (nofile, nofile),
        "core": (0, 0),
    }


def _limit_prefix(limits: Mapping[str, tuple[int, int]], python: str) -> list[str]:
    """The command that sets `limits` inside the sandbox and then execs what follows it."""
    specs = [f"{name}={soft}:{hard}" for name, (soft, hard) in limits.items()]
    if os.access(PRLIMIT, os.X_OK):
        return [PRLIMIT, *(f"--{spec}" for spec in specs), "--"]
    return [python, "-I", "-S", "-c", LAUNCHER, *specs, "--"]


def _check_names(files: Mapping[str, str | bytes]) -> None:
    for name in files:
        parts = Path(name).parts
        if not name or Path(name).is_absolute() or ".." in parts:
            raise ValueError(f"sandbox file name {name!r} must be a relative path inside the sandbox")


def _uid_processes(uid: int) -> int:
    """How many processes `uid` has now (RLIMIT_NPROC outside a user namespace counts them all)."""
    n = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                n += os.stat(f"/proc/{pid}").st_uid == uid
            except OSError:
                pass
    return n


def _read(path: Path) -> tuple[str, str, int]:
    """(head, tail, size) of a file, reading at most 2 * CAP bytes."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(CAP)
        if size > CAP:
            f.seek(max(CAP, size - CAP))
            tail = f.read(CAP)
            tail = (head + tail)[-CAP:] if size < 2 * CAP else tail
        else:
            tail = head
    return head.decode("utf-8", "replace"), tail.decode("utf-8", "replace"), size


def _rmtree(path: str) -> None:
    top = os.path.abspath(path)

    def retry(func, p, exc):  # a program may have made its own folders unwritable
        if isinstance(exc[1], FileNotFoundError):  # removed meanwhile (another process's sweep)
            return
        try:
            parent = os.path.dirname(os.path.abspath(p))
            if parent == top or parent.startswith(top + os.sep):  # never a folder outside the tree (/tmp)
                os.chmod(parent, 0o700)
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=retry)


def _sweep() -> None:
    """Remove the host folders of callers that were killed mid-run (their `finally` never ran)."""
    for folder in _cgroup.orphans(Path(tempfile.gettempdir()), PREFIX):
        _rmtree(str(folder))
    _cgroup.sweep()


def protections() -> dict[str, str]:
    """What bounds a bwrap sandbox on this host: its memory cap and its system-call filter, each with the
    fallback and why where the host does not allow the stronger one."""
    support = _cgroup.detect()
    memory = (
        f"cgroup v{support.version} ({support.parent})"
        if support.usable
        else f"rlimits only: {support.reason}"
    )
    filt = "seccomp (bwrap --seccomp)" if _seccomp.program() is not None else NO_SECCOMP_WARNING
    return {"memory_cap": memory, "syscall_filter": filt}


def _warn_once(text: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(text, RuntimeWarning, stacklevel=3)


def unavailable(sandbox: str = "auto", python: str | None = None) -> str | None:
    """Why `sandbox` cannot run here (the SandboxUnavailable message), or None: for skipping tests."""
    try:
        check(sandbox, python)
    except SandboxUnavailable as e:
        return str(e)
    return None


def check(sandbox: str = "auto", python: str | None = None, binds: Iterable[str] = ()) -> str:
    """The method `sandbox` resolves to here ("bwrap" | "rlimits"); SandboxUnavailable names the fix.

    The bwrap probe (one tiny run) is done once per process for each interpreter and binds.
    """
    global _swept
    if sandbox not in ("auto", "bwrap", "rlimits"):
        raise ValueError(f"unknown sandbox {sandbox!r}; use auto, bwrap or rlimits")
    with _probe_lock:
        if not _swept:
            _sweep()
            _swept = True
    if sandbox == "rlimits":
        return "rlimits"
    bwrap = shutil.which("bwrap") or ""
    if not bwrap:
        raise SandboxUnavailable(f"bubblewrap (bwrap) not found on PATH; {FIX}")
    py = interpreter(python)
    key = (bwrap, py, tuple(binds))
    with _probe_lock:
        if key not in _probed:
            r = _probe_run("bwrap", tuple(binds), py)
            ok = r.returncode == 0 and r.stdout_head.strip() == "ok"
            _probed[key] = None if ok else (r.error or f"exit {r.returncode}: {r.stderr_tail.strip()[-300:]}")
        err = _probed[key]
    if err:
        raise SandboxUnavailable(f"bwrap does not work here with {py} ({err}); {FIX}")
    return "bwrap"


@dataclass(frozen=True)
class Program:
    """One program of a `run_group`: its input files (text or bytes), its command, and host fds it inherits
    (at the same numbers: pipes to the other programs of the group)."""

    files: Mapping[str, str | bytes]
    argv: list[str]
    pass_fds: tuple[int, ...] = ()
    env: Mapping[str, str] | None = None


def run(
    files: Mapping[str, str | bytes],
    argv: list[str],
    *,
    timeout_s: float,
    memory_mb: int,
    cpu_s: int | None = None,
    fsize_mb: int = 16,
    nproc: int = 32,
    nofile: int = 64,
    disk_mb: int = 64,
    sandbox: str = "auto",
    binds: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    python: str | None = None,
) -> SandboxResult:
    """Write `files` into a fresh working directory and run `argv` there, sandboxed.

    `argv[0]` is looked up on the sandbox's PATH (/usr/local/bin, /usr/bin, /bin and the
    interpreter's folder). `binds` are extra host paths made visible read-only at the same
    path (a checker's toolchain). `python` is the interpreter of the launcher (`interpreter()`
    by default). Raises only for the caller's mistakes (bad names, an unusable sandbox);
    whatever the program does ends up in the result.
    """
    return run_group(
        [Program(files, argv, env=env)],
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        cpu_s=cpu_s,
        fsize_mb=fsize_mb,
        nproc=nproc,
        nofile=nofile,
        disk_mb=disk_mb,
        sandbox=sandbox,
        binds=binds,
        python=python,
    )[0]


def run_group(
    programs: list[Program],
    *,
    timeout_s: float,
    memory_mb: int,
    cpu_s: int | None = None,
    fsize_mb: int = 16,
    nproc: int = 32,
    nofile: int = 64,
    disk_mb: int = 64,
    sandbox: str = "auto",
    binds: Iterable[str] = (),
    python: str | None = None,
    until: int | None = None,
    grace_s: float = 0.0,
) -> list[SandboxResult]:
    """Run several programs at once, each in its own sandbox, under one memory cap of `memory_mb` for all
    of them together (a memory cgroup where the host allows one) and one wall clock.

    The programs see nothing of each other but the fds passed to them (`Program.pass_fds`, handed
    over: closed in the caller once the programs have started). `until`: the index of the program
    whose end ends the group: the others may take `grace_s` more to end by themselves, then they are
    killed. By default all must end.
    """
    for program in programs:
        _check_names(program.files)
    method = check(sandbox, python, binds)
    cpu = cpu_s if cpu_s is not None else math.ceil(timeout_s) + 1
    return _run(
        programs,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        cpu_s=cpu,
        fsize_mb=fsize_mb,
        nproc=nproc,
        nofile=nofile,
        disk_mb=disk_mb,
        method=method,
        binds=tuple(binds),
        python=interpreter(python),
        until=until,
        grace_s=grace_s,
    )


def _probe_run(method: str, binds: tuple[str, ...], python: str) -> SandboxResult:
    return _run(
        [Program({}, [python, "-I", "-S", "-c", "print('ok')"])],
        timeout_s=30,
        memory_mb=512,
        cpu_s=30,
        fsize_mb=1,
        nproc=8,
        nofile=32,
        disk_mb=1,
        method=method,
        binds=binds,
        python=python,
    )[0]


@dataclass
class _Started:
    folder: str
    proc: subprocess.Popen | None = None
    status_r: int = -1
    error: str | None = None


def _run(
    programs: list[Program],
    *,
    timeout_s: float,
    memory_mb: int,
    cpu_s: int,
    fsize_mb: int,
    nproc: int,
    nofile: int,
    disk_mb: int,
    method: str,
    binds: tuple[str, ...],
    python: str,
    until: int | None = None,
    grace_s: float = 0.0,
) -> list[SandboxResult]:
    root, me = os.geteuid() == 0, os.getpid()
    host = tempfile.mkdtemp(
        prefix=f"{PREFIX}{me}-"
    )  # the pid: a folder of a killed caller is found by _sweep
    group = _cgroup.create(memory_mb * 1024 * 1024)
    limits = _limits(memory_mb, cpu_s, fsize_mb, nproc, nofile)
    started: list[_Started] = []
    start = time.monotonic()
    timed_out = False
    try:
        try:
            for i, program in enumerate(programs):
                started.append(
                    _start(
                        program,
                        os.path.join(host, f"p{i}"),
                        method=method,
                        binds=binds,
                        python=python,
                        limits=limits,
                        disk_mb=disk_mb,
                        root=root,
                        me=me,
                        group=group,
                    )
                )
        finally:  # handed over: a pipe's end must live only in the program it was given to
            for program in programs:
                for fd in program.pass_fds:
                    os.close(fd)
        deadline = start + timeout_s
        waits = [started[until]] if until is not None else started
        for s in waits:
            if s.proc is not None and not _wait(s.proc, max(0.0, deadline - time.monotonic())):
                timed_out = True
                break
        if until is not None and not timed_out and grace_s > 0:  # a natural end is cheaper than a kill
            grace = min(deadline, time.monotonic() + grace_s)
            for s in started:
                left = max(0.0, grace - time.monotonic())
                if s.proc is not None and s.proc.poll() is None and not _wait(s.proc, left):
                    break
        cut = [s.proc is not None and s.proc.poll() is None for s in started]  # still running: ended by us
        for s in started:
            if s.proc is not None:
                _kill_group(s.proc)
        wall = time.monotonic() - start
        results = [_result(s, method, timed_out, c, wall, fsize_mb) for s, c in zip(started, cut)]
    finally:
        for s in started:
            if s.proc is not None and s.proc.returncode is None:  # interrupted while waiting
                _kill_group(s.proc)
            if s.status_r >= 0:
                os.close(s.status_r)
        _rmtree(host)
    if group is not None:
        oom, peak = group.oom_kills() > 0, group.peak_bytes()
        group.remove()
        mb = round(peak / (1 << 20), 1) if peak is not None else None
        results = [
            replace(r, memory_cap=f"cgroup v{group.version}", oom_killed=oom, memory_peak_mb=mb)
            for r in results
        ]
    else:
        why = _cgroup.detect().reason or "the group could not be created"
        results = [replace(r, warning=_join(r.warning, NO_CGROUP_WARNING + why)) for r in results]
        _warn_once(NO_CGROUP_WARNING + why)
    if method == "bwrap" and _seccomp.program() is None:
        results = [replace(r, warning=_join(r.warning, NO_SECCOMP_WARNING)) for r in results]
        _warn_once(NO_SECCOMP_WARNING)
    return results


def _join(a: str | None, b: str) -> str:
    return f"{a}; {b}" if a else b


def _start(
    program: Program,
    folder: str,
    *,
    method: str,
    binds: tuple[str, ...],
    python: str,
    limits: Mapping[str, tuple[int, int]],
    disk_mb: int,
    root: bool,
    me: int,
    group: _cgroup.Group | None,
) -> _Started:
    os.mkdir(folder, 0o700)
    status_r, status_w = os.pipe()  # bwrap's --json-status-fd: "exit-code" there means the program ran
    s = _Started(folder, status_r=status_r)
    fds: list[int] = [status_w]
    try:
        out_path, err_path = Path(folder, "stdout"), Path(folder, "stderr")
        bin_dirs = ["/usr/local/bin", "/usr/bin", "/bin"]
        if os.path.dirname(python) not in bin_dirs:
            bin_dirs.append(os.path.dirname(python))
        work = INSIDE if method == "bwrap" else os.path.join(folder, "work")
        clean = {
            "PATH": ":".join(bin_dirs),
            "HOME": work,
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONHASHSEED": "0",
            "TMPDIR": "/tmp" if method == "bwrap" else work,
            **(program.env or {}),
        }
        if method == "bwrap":
            cmd = [
                *_bwrap_cmd(folder, program.files, fds, binds, python, clean, disk_mb),
                "--json-status-fd",
                str(status_w),
                *_limit_prefix(limits, python),
                *program.argv,
            ]
            outside: Mapping[str, tuple[int, int]] = {}  # set inside, where RLIMIT_NPROC counts this sandbox
        else:
            _write_work(work, program.files, root)
            if root:  # nobody may pass through to work/, not list or read the rest
                os.chmod(os.path.dirname(folder), 0o711)
                os.chmod(folder, 0o711)
            # outside a user namespace RLIMIT_NPROC counts every process of the uid
            others = _uid_processes(NOBODY if root else os.getuid())
            outside = {**limits, "nproc": (limits["nproc"][0] + others, limits["nproc"][1] + others)}
            cmd = list(program.argv)
        out = open(out_path, "wb")  # host-side: the program writes through the fd, never sees the path
        err = open(err_path, "wb")
        procs = group.procs if group is not None else None
        chain = _outside_chain(root, procs) if method == "bwrap" else None
        try:
            s.proc = subprocess.Popen(
                [*chain, *cmd] if chain is not None else cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                pass_fds=(*fds, *program.pass_fds),
                close_fds=True,
                start_new_session=True,  # its own process group, killed as one on timeout
                env=clean if method == "rlimits" else {},
                cwd=work if method == "rlimits" else folder,
                preexec_fn=None if chain is not None else (lambda: _preexec(root, me, outside, procs)),
            )
        except (OSError, subprocess.SubprocessError) as e:
            s.error = f"could not start the program ({method}): {type(e).__name__}: {e}"
        finally:
            out.close()
            err.close()
    finally:
        for fd in fds:
            os.close(fd)
    return s


def _result(
    s: _Started, method: str, timed_out: bool, cut: bool, wall: float, fsize_mb: int
) -> SandboxResult:
    out_path, err_path = Path(s.folder, "stdout"), Path(s.folder, "stderr")
    status = _read_all(s.status_r)
    error = s.error
    if error is None and method == "bwrap" and not cut and '"exit-code"' not in status:
        error = "bwrap failed to start the sandbox: " + _read(err_path)[1].strip()[-500:]
    head, tail, n_out = _read(out_path)
    _, err_tail, n_err = _read(err_path)
    rc = s.proc.returncode if s.proc is not None else None
    sig = None
    if rc is not None and rc < 0:
        sig = -rc
    elif rc is not None and method == "bwrap" and rc > 128 and rc - 128 < _signal.NSIG:
        sig = rc - 128  # bwrap reports a child killed by signal N as exit 128 + N (so does `exit(128 + N)`)
        rc = -sig
    limited = sig == _signal.SIGXFSZ or max(n_out, n_err) >= fsize_mb * 1024 * 1024
    return SandboxResult(
        returncode=None if error else rc,
        signal=None if error else sig,
        timed_out=timed_out,
        output_limited=limited,
        stdout_head=head,
        stdout_tail=tail,
        stderr_tail=err_tail,
        wall_s=wall,
        method=method,
        error=error,
        warning=RLIMITS_WARNING if method == "rlimits" else None,
        stdout_bytes=n_out,
        stderr_bytes=n_err,
        cut=cut,
        memory_cap="rlimits",
    )


def _write_work(work: str, files: Mapping[str, str | bytes], root: bool) -> None:
    """The working folder of an rlimits run; nobody's when we are root (the program runs as nobody)."""
    os.mkdir(work, 0o700)
    for name, text in files.items():
        Path(work, name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            Path(work, name).write_bytes(text)
        else:
            Path(work, name).write_text(text, encoding="utf-8")
    if root:
        for d, _, names in os.walk(work):
            for p in [d, *(os.path.join(d, n) for n in names)]:
                os.chown(p, NOBODY, NOBODY)


def _bwrap_cmd(
    host: str,
    files: Mapping[str, str | bytes],
    fds: list[int],
    binds: tuple[str, ...],
    python: str,
    env: Mapping[str, str],
    disk_mb: int,
) -> list[str]:
    disk = str(disk_mb * 1024 * 1024)
    cmd = [
        shutil.which("bwrap") or "bwrap",
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",  # no nested namespaces inside
        "--die-with-parent",
        "--new-session",  # setsid: no terminal to inject keystrokes into
        "--hostname",
        "sandbox",
        "--ro-bind",
        "/usr",
        "/usr",
        "--symlink",
        "usr/lib",
        "/lib",
        "--symlink",
        "usr/lib64",
        "/lib64",
        "--symlink",
        "usr/bin",
        "/bin",
        "--symlink",
        "usr/sbin",
        "/sbin",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        disk,
        "--tmpfs",
        "/dev/shm",  # multiprocessing's semaphores live here
        "--remount-ro",
        "/dev",  # bwrap's /dev is a tmpfs without a size limit
        "--size",
        disk,
        "--tmpfs",
        "/tmp",
        "--size",
        disk,
        "--tmpfs",
        INSIDE,
    ]
    for path in [*_python_binds(python), *binds]:
        cmd += ["--ro-bind", path, path]
    for name, text in files.items():
        src = Path(host, f"in-{len(fds)}")
        if isinstance(text, bytes):
            src.write_bytes(text)
        else:
            src.write_text(text, encoding="utf-8")
        fd = os.open(src, os.O_RDONLY)
        fds.append(fd)
        for d in reversed(Path(name).parents[:-1]):
            cmd += ["--dir", f"{INSIDE}/{d}"]
        cmd += ["--file", str(fd), f"{INSIDE}/{name}"]  # a writable copy inside the tmpfs
    cmd += ["--remount-ro", "/"]  # bwrap's root is a tmpfs without a size limit: nothing may be written there
    bpf = _seccomp.program()
    if bpf is not None:
        r, w = os.pipe()  # bwrap reads the filter to its end; ~500 bytes fit the pipe's buffer
        os.write(w, bpf)
        os.close(w)
        fds.append(r)
        cmd += ["--seccomp", str(r)]
    cmd += ["--chdir", INSIDE, "--clearenv"]
    for k, v in env.items():
        cmd += ["--setenv", k, v]
    return cmd


def _wait(proc: subprocess.Popen, timeout_s: float) -> bool:
    """Wait for the process to exit, at most `timeout_s`; False on timeout.

    A pidfd wakes us the moment it exits; Popen.wait(timeout) polls with sleeps that double up to
    50 ms, which for runs of ~30 ms would double the time each takes.
    """
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # Linux < 5.3
        try:
            proc.wait(timeout=timeout_s)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()  # not select(): that fails for fd numbers above 1023
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(timeout_s * 1000))
    finally:
        os.close(fd)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the run's process group (under bwrap that tears down its PID namespace), then reap."""
    try:
        os.killpg(proc.pid, _signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _read_all(fd: int) -> str:
    chunks = []
    os.set_blocking(fd, False)  # a leftover holder of the write end must not block us
    while True:
        try:
            b = os.read(fd, 4096)
        except BlockingIOError:
            break
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks).decode("utf-8", "replace")
