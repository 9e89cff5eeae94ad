"""The sandbox for model-written code, attacked: every program here WOULD pass its test if its attack
worked. Each must be judged incorrect within its time limit, leave the host untouched, and not
disturb a normal program judged at the same time or right after."""

from __future__ import annotations

import os
import platform
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from secondtry.types import Problem
from secondtry.verifiers import cgroup, code, sandbox, seccomp

MISSING = sandbox.unavailable()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(MISSING is not None, reason=f"bwrap sandbox not usable here: {MISSING}"),
]

TIMEOUT = 1.0  # the attacks' time limit: those that hang are killed at this
ROOT = os.geteuid() == 0
NORMAL = Problem(id="normal", prompt="", answer="assert add(2, 3) == 5\nassert add(-1, 1) == 0")
NORMAL_CODE = "```python\ndef add(a, b):\n    return a + b\n```"


class Host:
    """What an escape would touch: a secret file, a folder to delete, services on loopback, processes."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.token = uuid.uuid4().hex
        base.chmod(0o755)
        self.secret = base / "secret.txt"
        self.secret.write_text(self.token)
        self.secret.chmod(0o644)  # world-readable: only the sandbox keeps it from the program
        self.sentinel = base / "keep"
        self.sentinel.mkdir()
        (self.sentinel / "file").write_text("keep me")
        self.outside = base / "pwned.txt"
        self.received: list[bytes] = []
        self.tcp = self._serve(socket.socket(socket.AF_INET, socket.SOCK_STREAM), ("127.0.0.1", 0))
        self.unix_path = str(base / "sock")
        self.unix = self._serve(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), self.unix_path)
        self.abstract = f"secondtry-{self.token}"
        self.abstract_sock = self._serve(
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), "\0" + self.abstract
        )
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        threading.Thread(target=self._udp_loop, daemon=True).start()
        # a process with a secret in its environment, running as the sandbox's own uid when we are root
        self.helper = subprocess.Popen(
            ["sleep", "600"], env={"SECRET_TOKEN": self.token}, user=sandbox.NOBODY if ROOT else None
        )

    def _serve(self, sock: socket.socket, addr) -> socket.socket:
        sock.bind(addr)
        sock.listen(8)
        threading.Thread(target=self._accept_loop, args=(sock,), daemon=True).start()
        return sock

    def _accept_loop(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.settimeout(1)
            self.received.append(conn.recv(64) or b"<connected>")
            conn.sendall(b"ack")
            conn.close()

    def _udp_loop(self) -> None:
        while True:
            try:
                data, addr = self.udp.recvfrom(64)
            except OSError:
                return
            self.received.append(data)
            self.udp.sendto(b"ack", addr)

    def values(self, mark: str) -> dict[str, object]:
        return {
            "SECRET_PATH": self.secret,
            "SECRET": self.token,
            "SENTINEL": self.sentinel,
            "OUTSIDE": self.outside,
            "TCP_PORT": self.tcp.getsockname()[1],
            "UDP_PORT": self.udp.getsockname()[1],
            "UNIX_PATH": self.unix_path,
            "ABSTRACT": self.abstract,
            "HOST_PID": os.getpid(),
            "HELPER_PID": self.helper.pid,
            "MARK": mark,
            "WAIT": TIMEOUT + 1,
            "PROJECT": Path.cwd(),
        }

    def assert_untouched(self, mark: str) -> None:
        assert self.secret.read_text() == self.token
        assert (self.sentinel / "file").read_text() == "keep me"
        assert not self.outside.exists()
        assert not Path("/usr/lib/secondtry-pwned").exists()
        assert self.received == [], f"a host service got {self.received}"
        assert self.helper.poll() is None, "a host process was killed"
        deadline = time.monotonic() + 2.0  # the kernel reaps a torn-down PID namespace asynchronously
        while _marked(mark) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _marked(mark) == [], "processes of the program outlived it"

    def close(self) -> None:
        self.helper.kill()
        self.helper.wait()
        for s in (self.tcp, self.unix, self.abstract_sock, self.udp):
            s.close()


def _marked(mark: str) -> list[int]:
    """Host processes whose name (comm) is `mark`: attacks name their children so."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and Path(f"/proc/{pid}/comm").read_text().strip() == mark:
                found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    base = Path(tempfile.mkdtemp(prefix="secondtry-host-"))  # under /tmp, outside pytest's 0700 folders
    h = Host(base)
    yield h
    h.close()
    subprocess.run(["rm", "-rf", str(base)], check=False)


NAME = "import ctypes\nctypes.CDLL(None).prctl(15, b'$MARK', 0, 0, 0)  # PR_SET_NAME: the host looks for it\n"

ATTACKS = {
    # files and folders of the host
    "read_host_secret_file": "escaped = open('$SECRET_PATH').read() == '$SECRET'",
    "read_etc_passwd": "escaped = 'root:' in open('/etc/passwd').read()",
    "see_the_project_and_root_home": "import os\nescaped = bool(os.listdir('$PROJECT')) or bool(os.listdir('/root'))",
    "symlink_to_host_secret": "import os\nos.symlink('$SECRET_PATH', 'link')\nescaped = open('link').read() == '$SECRET'",
    "proc_1_root_to_host": "escaped = open('/proc/1/root$SECRET_PATH').read() == '$SECRET'",
    "stdout_fd_to_host_folder": "import os\nhost = os.path.dirname(os.readlink('/proc/self/fd/1'))\n"
    "escaped = len(os.listdir(host)) > 0",
    "write_outside_the_sandbox": "open('$OUTSIDE', 'w').write('pwned')\nescaped = True",
    "write_into_usr": "open('/usr/lib/secondtry-pwned', 'w').write('pwned')\nescaped = True",
    "delete_host_folder": "import os\nexisted = os.path.exists('$SENTINEL/file')\nos.system('rm -rf $SENTINEL')\n"
    "escaped = existed and not os.path.exists('$SENTINEL')",
    "subprocess_reads_secret": "import subprocess\nout = subprocess.run(['cat', '$SECRET_PATH'], capture_output=True)\n"
    "escaped = out.stdout.decode() == '$SECRET'",
    "multiprocessing_reads_secret": "import multiprocessing as mp\ndef read(p):\n    return open(p).read()\n"
    "with mp.Pool(2) as pool:\n"
    "    escaped = pool.map(read, ['$SECRET_PATH'])[0] == '$SECRET'",
    "host_environ_through_proc": "import os\nfound = False\nfor pid in os.listdir('/proc'):\n    try:\n"
    "        found |= b'$SECRET' in open(f'/proc/{pid}/environ', 'rb').read()\n"
    "    except (OSError, ValueError):\n        pass\nescaped = found",
    "block_device_and_kernel_log": "escaped = False\n"
    "for dev in ['/dev/vda', '/dev/sda', '/dev/nvme0n1', '/dev/mem', '/dev/kmsg']:\n"
    "    try:\n        open(dev, 'rb').read(1)\n        escaped = True\n"
    "    except OSError:\n        pass",
    "write_kernel_log": "import os, stat\nwith open('/dev/kmsg', 'w') as f:\n    f.write('pwned')\n"
    "escaped = stat.S_ISCHR(os.stat('/dev/kmsg').st_mode)",
    "fill_dev": "block = b'x' * (1 << 20)\nfor i in range(100):\n    with open(f'/dev/big{i}', 'wb') as f:\n"
    "        for _ in range(10):\n            f.write(block)\nescaped = True",
    "fill_dev_shm": "block = b'x' * (1 << 20)\nfor i in range(100):\n    with open(f'/dev/shm/big{i}', 'wb') as f:\n"
    "        for _ in range(10):\n            f.write(block)\nescaped = True",
    "sysfs_network_devices": "import os\nescaped = 'lo' in os.listdir('/sys/class/net')",
    # network
    "tcp_to_host_loopback": "import socket\ns = socket.create_connection(('127.0.0.1', $TCP_PORT), timeout=0.5)\n"
    "s.sendall(b'leak')\nescaped = s.recv(3) == b'ack'",
    "udp_to_host_loopback": "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(0.5)\n"
    "s.sendto(b'leak', ('127.0.0.1', $UDP_PORT))\nescaped = s.recv(3) == b'ack'",
    "unix_socket_file_on_host": "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('$UNIX_PATH')\n"
    "s.sendall(b'leak')\nescaped = s.recv(3) == b'ack'",
    "abstract_unix_socket_on_host": "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('\\0$ABSTRACT')\n"
    "s.sendall(b'leak')\nescaped = s.recv(3) == b'ack'",
    "internet_and_dns": "import socket\nsocket.setdefaulttimeout(0.5)\n"
    "escaped = bool(socket.create_connection(('1.1.1.1', 53)))\n"
    "escaped = escaped or bool(socket.getaddrinfo('example.com', 80))",
    # processes and signals
    "signal_host_process": "import os\nos.kill($HELPER_PID, 0)\nos.kill($HOST_PID, 0)\nescaped = True",
    "kill_the_parent_then_overstay": "import os, time\nos.kill(os.getppid(), 9)\ntime.sleep($WAIT)\nescaped = True",
    "kill_every_process_then_overstay": "import os, time\nos.kill(-1, 9)\ntime.sleep($WAIT)\nescaped = True",
    "kill_the_process_group": "import os, signal\nos.killpg(os.getpgrp(), signal.SIGKILL)\nescaped = True",
    "fork_bomb": NAME + "import os\nn = 0\nwhile True:\n    try:\n        os.fork()\n        n += 1\n"
    "    except OSError:\n        pass\nescaped = True",
    "fork_many_sleepers": NAME + "import os, time\nn = 0\nfor _ in range(200):\n    if os.fork() == 0:\n"
    "        time.sleep(60)\n        os._exit(0)\n    n += 1\nescaped = n == 200",
    "thread_bomb": "import threading, time\n"
    "ts = [threading.Thread(target=time.sleep, args=(30,), daemon=True) for _ in range(2000)]\n"
    "for t in ts:\n    t.start()\nescaped = True",
    "double_fork_daemon": NAME
    + "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
    "        time.sleep(60)\n    os._exit(0)\nescaped = False  # the daemon would outlive this run",
    "double_fork_daemon_then_overstay": NAME + "import os, time\nif os.fork() == 0:\n    os.setsid()\n"
    "    if os.fork() == 0:\n        time.sleep(60)\n    os._exit(0)\n"
    "time.sleep($WAIT)\nescaped = True",
    # resources
    "memory_bomb": "x = bytearray(64 << 30)\nescaped = True",
    "memory_creep": "chunks = []\nfor _ in range(1000):\n    chunks.append(b'x' * (32 << 20))\nescaped = True",
    "fork_then_allocate": NAME
    + "import os\npids = []\nfor _ in range(12):\n    pid = os.fork()\n    if pid == 0:\n"
    "        try:\n            x = b'x' * (1 << 30)\n            os._exit(0)\n"
    "        except MemoryError:\n            os._exit(1)\n    pids.append(pid)\n"
    "escaped = all(os.waitpid(p, 0)[1] == 0 for p in pids)",
    "raise_the_limits": "import resource\nfor r in (resource.RLIMIT_AS, resource.RLIMIT_NPROC, resource.RLIMIT_CPU):\n"
    "    resource.setrlimit(r, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\nescaped = True",
    "infinite_loop": "while True:\n    pass",
    "sleep_past_the_limit": "import time\ntime.sleep(100)\nescaped = True",
    "cpu_burn_in_threads": "import threading\ndef spin():\n    while True:\n        pass\n"
    "for _ in range(8):\n    threading.Thread(target=spin, daemon=True).start()\nspin()",
    "recursion_bomb": "import sys\nsys.setrecursionlimit(10 ** 8)\ndef f(n):\n    return f(n + 1)\nf(0)\nescaped = True",
    "huge_stdout": "import sys\nfor _ in range(4096):\n    sys.stdout.write('x' * (1 << 20))\nescaped = True",
    "huge_stderr_errors_ignored": "import os\nfor _ in range(4096):\n    try:\n        os.write(2, b'x' * (1 << 20))\n"
    "    except OSError:\n        pass\nescaped = True",
    "fill_the_disk": "block = b'x' * (1 << 20)\nfor i in range(100):\n    with open(f'big{i}', 'wb') as f:\n"
    "        for _ in range(10):\n            f.write(block)\nescaped = True",
    "fill_tmp": "block = b'x' * (1 << 20)\nfor i in range(100):\n    with open(f'/tmp/big{i}', 'wb') as f:\n"
    "        for _ in range(10):\n            f.write(block)\nescaped = True",
    "many_files": "for i in range(10 ** 6):\n    open(f'f{i}', 'w').close()\nescaped = True",
    "many_fds": "fds = [open('/dev/null') for _ in range(10000)]\nescaped = True",
    "ctypes_segfault": "import ctypes\nctypes.string_at(0)\nescaped = True",
    # privileges
    "become_root": "import os\nos.setuid(0)\nescaped = os.getuid() == 0",
    "new_user_namespace": "import ctypes\nescaped = ctypes.CDLL(None).unshare(0x10000000) == 0  # CLONE_NEWUSER",
    "chroot": "import os\nos.chroot('/tmp')\nescaped = True",
    "mount_over_usr": "import ctypes\nescaped = ctypes.CDLL(None).mount(b'none', b'/usr', b'tmpfs', 0, None) == 0",
    "avoid_the_oom_killer": "with open('/proc/self/oom_score_adj', 'w') as f:\n    f.write('-1000')\n"
    "escaped = open('/proc/self/oom_score_adj').read().strip() == '-1000'",
    # memory no rlimit counts, and what concurrent sandboxes share (a seccomp filter, a read-only root, a cgroup)
    "write_to_the_root": "block = b'x' * (1 << 20)\nwith open('/big', 'wb') as f:\n    for _ in range(300):\n"
    "        f.write(block)\nescaped = True",
    "sysv_shared_memory": "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
    "ids = [libc.shmget(0, 256 << 20, 0o1000 | 0o600) for _ in range(8)]  # IPC_PRIVATE, CREAT\n"
    "escaped = all(i >= 0 for i in ids)",
    "tmpfs_extended_attributes": "import os\nopen('f', 'w').close()\nfor i in range(10000):\n"
    "    os.setxattr('f', f'user.k{i}', b'v' * 4000)\nescaped = True",
    "ptrace_the_sandbox_init": "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
    "escaped = libc.ptrace(16, 1, 0, 0) == 0  # PTRACE_ATTACH to pid 1",
    "io_uring": "import ctypes, platform\nlibc = ctypes.CDLL(None, use_errno=True)\nparams = ctypes.create_string_buffer(120)\n"
    "escaped = libc.syscall(425, 8, params) >= 0  # io_uring_setup (425 on x86_64 and aarch64)",
    "flock_a_shared_file": "import fcntl\nf = open('/usr/bin/env', 'rb')\nfcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
    "escaped = True",
    "record_lock_a_shared_file": "import fcntl, struct\nf = open('/usr/bin/env', 'rb')\n"
    "fcntl.fcntl(f, fcntl.F_SETLK, struct.pack('hhqqi', fcntl.F_RDLCK, 0, 0, 0, 0))\n"
    "escaped = True",
    "inotify_watch_on_usr": "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nfd = libc.inotify_init1(0)\n"
    "escaped = fd >= 0 and libc.inotify_add_watch(fd, b'/usr/bin', 0xfff) >= 0",
    "posix_message_queue": "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
    "escaped = libc.mq_open(b'/q', 0o100 | 2, 0o600, None) >= 0",
    "memfds_without_mapping": "import os\nfds = []\nfor _ in range(50):  # each under RLIMIT_FSIZE, none mapped\n"
    "    fds.append(os.memfd_create('m'))\n    os.write(fds[-1], b'x' * (15 << 20))\n"
    "escaped = True",
    # ending early
    "exit_zero_before_tests": "import sys\nescaped = True\nsys.exit(0)",
    "os_exit_zero_before_tests": "import os\nescaped = True\nos._exit(0)",
    "atexit_forces_exit_zero": "import atexit, os\natexit.register(os._exit, 0)\nescaped = False",
}
# 12 forks of 1 GB each, 750 MB in memfds: keep the host's memory out of it
OPTIONS = {"fork_then_allocate": {"memory_mb": 128}, "memfds_without_mapping": {"memory_mb": 256}}
NEEDS_CGROUP = {
    "memfds_without_mapping"
}  # RLIMIT_AS does not count a memfd's pages: only a memory cgroup does
# the tests run in another process and see the program's functions only: the attack's outcome is a call away
REPORT = "\n\ndef escaped_():\n    return globals().get('escaped') is True\n"


def test_an_attack_that_worked_would_be_judged_correct():
    """The harness sees an escape: a program whose attack 'worked' passes (so a contained one could fail)."""
    v = code.verify(
        Problem(id="control", prompt="", answer="assert escaped_()"),
        f"```python\nescaped = True{REPORT}```",
        timeout_s=10,
    )
    assert (v.correct, v.reason) == (True, "passed")


def test_there_are_enough_attacks():
    assert len(ATTACKS) >= 30


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_contained(name, host, tmp_path, monkeypatch):
    if name in NEEDS_CGROUP and not cgroup.detect().usable:
        pytest.skip(f"needs a memory cgroup, which this host does not allow: {cgroup.detect().reason}")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the run's private host folder goes here
    mark = "st" + uuid.uuid4().hex[:10]
    attack = string.Template(ATTACKS[name]).substitute(host.values(mark)) + REPORT
    problem = Problem(id=name, prompt="", answer="assert escaped_()")
    neighbour: list = []
    beside = threading.Thread(target=lambda: neighbour.append(code.verify(NORMAL, NORMAL_CODE, timeout_s=20)))
    beside.start()
    start = time.monotonic()
    v = code.verify(problem, f"```python\n{attack}\n```", timeout_s=TIMEOUT, **OPTIONS.get(name, {}))
    took = time.monotonic() - start
    beside.join()
    assert v.correct is False and v.reason, v
    assert took <= TIMEOUT + 1, f"{name} took {took:.2f}s"
    host.assert_untouched(mark)
    assert list(tmp_path.iterdir()) == [], "the run's host folder was left behind"
    assert neighbour[0].correct is True, f"a program judged beside it: {neighbour[0]}"
    after = code.verify(NORMAL, NORMAL_CODE, timeout_s=20)
    assert after.correct is True, f"a program judged right after it: {after}"


# --- the sandbox itself ---------------------------------------------------------------------------


def _run(source: str, **kw) -> sandbox.SandboxResult:
    kw.setdefault("timeout_s", 10)
    kw.setdefault("memory_mb", 512)
    return sandbox.run({"main.py": source}, [sandbox.interpreter(), "main.py"], **kw)


def test_a_normal_run(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    r = _run(
        "import os, sys\nprint(os.getcwd(), os.listdir('.'), os.getuid())\n"
        "print('err', file=sys.stderr)\nsys.exit(3)"
    )
    assert (r.returncode, r.signal, r.timed_out, r.output_limited) == (3, None, False, False)
    assert (r.method, r.error, r.warning) == ("bwrap", None, None)
    cwd, files, uid = r.stdout_tail.split(" ", 2)
    assert cwd == "/sandbox" and files == "['main.py']" and (uid.strip() != "0")
    assert r.stderr_tail == "err\n" and 0 < r.wall_s < 10
    assert list(tmp_path.iterdir()) == []


def test_clean_environment_and_limits_inside():
    r = _run(
        "import os, resource as r\nprint(sorted(os.environ.items()))\n"
        "print([r.getrlimit(x) for x in\n"
        "       (r.RLIMIT_NPROC, r.RLIMIT_AS, r.RLIMIT_FSIZE, r.RLIMIT_NOFILE, r.RLIMIT_CORE)])",
        env={"EXTRA": "1"},
        nproc=7,
        memory_mb=300,
        fsize_mb=2,
        nofile=40,
    )
    env, limits = r.stdout_tail.strip().splitlines()
    env = dict(eval(env))
    assert env["HOME"] == "/sandbox" and env["PYTHONHASHSEED"] == "0" and env["EXTRA"] == "1"
    assert not {"SECRET_TOKEN", "VIRTUAL_ENV", "USER"} & set(env)
    mb = 1024 * 1024
    assert eval(limits) == [(7, 7), (300 * mb, 300 * mb), (2 * mb, 2 * mb), (40, 40), (0, 0)]


def test_output_is_capped_to_head_and_tail():
    r = _run("for i in range(20000):\n    print(f'line {i}')")
    assert r.stdout_head.startswith("line 0\n") and r.stdout_tail.endswith("line 19999\n")
    assert (
        len(r.stdout_head.encode()) == len(r.stdout_tail.encode()) == sandbox.CAP and r.stdout_bytes > 100_000
    )


def test_output_limit_and_timeout_flags():
    big = _run("import os\nwhile True:\n    os.write(1, b'x' * 65536)", fsize_mb=1)
    assert big.output_limited and big.stdout_bytes == 1024 * 1024
    slow = _run("import time\ntime.sleep(30)", timeout_s=0.5)
    assert slow.timed_out and slow.returncode == -signal.SIGKILL and slow.wall_s < 1.5


def test_subfolders_and_bad_names():
    r = sandbox.run(
        {"pkg/__init__.py": "X = 4", "main.py": "import pkg\nprint(pkg.X)"},
        [sandbox.interpreter(), "main.py"],
        timeout_s=10,
        memory_mb=512,
    )
    assert r.stdout_tail == "4\n"
    for bad in ("/etc/x", "../x", "a/../../x"):
        with pytest.raises(ValueError, match="relative path inside the sandbox"):
            sandbox.run({bad: ""}, ["true"], timeout_s=1, memory_mb=64)


def test_the_python_launcher_when_prlimit_is_missing(monkeypatch):
    monkeypatch.setattr(sandbox, "PRLIMIT", "/nonexistent/prlimit")
    r = _run("import resource\nprint(resource.getrlimit(resource.RLIMIT_NPROC))", nproc=9)
    assert r.stdout_tail == "(9, 9)\n"
    # RLIMIT_NPROC counts every process of the uid, and the limit is set from a count taken just before the
    # run: processes of earlier runs still being reaped would leave when the bomb starts and give it their
    # room, so wait until they are gone (the product documents this mode as weaker for that reason)
    deadline = time.monotonic() + 20
    while ROOT and sandbox._uid_processes(sandbox.NOBODY) and time.monotonic() < deadline:
        time.sleep(0.1)
    bomb = _run(
        "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
        "            time.sleep(5)\n            os._exit(0)\n        n += 1\nexcept OSError:\n    print(n)",
        nproc=9,
    )
    assert 0 < int(bomb.stdout_tail) < 9


def test_auto_without_bwrap_names_the_fix(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(sandbox.SandboxUnavailable, match=r"apt-get install bubblewrap.*sandbox: rlimits"):
        _run("print(1)")


def test_a_bwrap_that_fails_to_start_is_an_error_not_a_verdict():
    with pytest.raises(sandbox.SandboxUnavailable, match="bwrap does not work here"):
        _run("print(1)", binds=("/nonexistent/toolchain",))
    r = sandbox._probe_run("bwrap", ("/nonexistent/toolchain",), sandbox.interpreter())
    assert (
        r.returncode is None
        and r.error.startswith("bwrap failed to start the sandbox")
        and "nonexistent" in r.error
    )


def test_binds_make_a_host_folder_visible_read_only(tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="secondtry-bind-"))
    try:
        folder.chmod(0o755)
        (folder / "tool.txt").write_text("v1")
        (folder / "tool.txt").chmod(0o644)
        r = _run(
            f"print(open('{folder}/tool.txt').read())\nopen('{folder}/tool.txt', 'w')", binds=(str(folder),)
        )
        assert r.stdout_tail == "v1\n" and "Read-only file system" in r.stderr_tail
    finally:
        subprocess.run(["rm", "-rf", str(folder)])


CALLER = """
import sys, time
from secondtry.verifiers import sandbox
src = "import ctypes, time\\nctypes.CDLL(None).prctl(15, b'%s', 0, 0, 0)\\nprint('up', flush=True)\\ntime.sleep(60)"
sandbox.run({"main.py": src}, [sandbox.interpreter(), "main.py"], timeout_s=60, memory_mb=256)
"""


def test_the_sandbox_dies_with_its_caller():
    """A verifier worker SIGKILLed by the pool's hard timeout must not leave its program running."""
    mark = "st" + uuid.uuid4().hex[:10]
    caller = subprocess.Popen([sys.executable, "-c", CALLER % mark])
    try:
        deadline = time.monotonic() + 20
        while not _marked(mark) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _marked(mark), "the sandboxed program never started"
        caller.kill()
        caller.wait()
        deadline = time.monotonic() + 3
        while _marked(mark) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _marked(mark) == []
        left = list(Path(tempfile.gettempdir()).glob(f"{sandbox.PREFIX}{caller.pid}-*"))
        assert len(left) == 1, "the killed caller's folder is where the sweep looks"
        sandbox._sweep()  # done once per process, before its first run
        assert not left[0].exists()
    finally:
        caller.kill()
        for pid in _marked(mark):
            os.kill(pid, signal.SIGKILL)


# --- the weaker opt-in mode -----------------------------------------------------------------------


def test_rlimits_mode_limits_and_says_it_is_weaker():
    ok = _run("import os\nprint(os.getuid())", sandbox="rlimits")
    assert ok.method == "rlimits" and "weaker" in ok.warning and ok.returncode == 0
    assert ok.stdout_tail == (f"{sandbox.NOBODY}\n" if ROOT else f"{os.getuid()}\n")
    assert _run("import time\ntime.sleep(30)", sandbox="rlimits", timeout_s=0.5).timed_out
    assert _run("x = bytearray(2 << 30)", sandbox="rlimits").stderr_tail.rstrip().endswith("MemoryError")
    assert _run(
        "import os\nwhile True:\n    os.write(1, b'x' * 65536)", sandbox="rlimits", fsize_mb=1
    ).output_limited
    # RLIMIT_NPROC counts every process of the uid, and the limit is set from a count taken just before the
    # run: processes of earlier runs still being reaped would leave when the bomb starts and give it their
    # room, so wait until they are gone (the product documents this mode as weaker for that reason)
    deadline = time.monotonic() + 20
    while ROOT and sandbox._uid_processes(sandbox.NOBODY) and time.monotonic() < deadline:
        time.sleep(0.1)
    bomb = _run(
        "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            time.sleep(5)\n"
        "            os._exit(0)\n        n += 1\nexcept OSError:\n    print(n)",
        sandbox="rlimits",
        nproc=9,
    )
    assert 0 < int(bomb.stdout_tail) < 9


# --- what the seccomp filter, the read-only root and the memory cgroup stop ----------------------------

FILTERED = [
    "sysv_shared_memory",
    "tmpfs_extended_attributes",
    "ptrace_the_sandbox_init",
    "io_uring",
    "flock_a_shared_file",
    "record_lock_a_shared_file",
    "inotify_watch_on_usr",
    "posix_message_queue",
]


@pytest.mark.skipif(seccomp.program() is None, reason=f"no seccomp filter for {platform.machine()}")
@pytest.mark.parametrize("name", FILTERED)
def test_without_the_filter_these_attacks_would_work(name, host, monkeypatch):
    """The filter is what stops them: with it off, each attack succeeds (so its test above can fail)."""
    monkeypatch.setattr(sandbox._seccomp, "program", lambda arch=None: None)
    attack = string.Template(ATTACKS[name]).substitute(host.values("x")) + REPORT
    v = code.verify(
        Problem(id=name, prompt="", answer="assert escaped_()"), f"```python\n{attack}```", timeout_s=10
    )
    assert (v.correct, v.reason) == (True, "passed"), v
    assert "no seccomp filter" in v.details["warning"]


def test_the_root_is_read_only_and_the_writable_folders_are_capped():
    r = _run(
        "import os\nfor d in ('/', '/usr', '/dev', '/sandbox', '/tmp', '/dev/shm'):\n"
        "    try:\n        open(os.path.join(d, 'probe'), 'w').close()\n        print(d, 'writable')\n"
        "    except OSError as e:\n        print(d, e.strerror)\n"
        "for d in ('/sandbox', '/tmp', '/dev/shm'):\n    s = os.statvfs(d)\n    print(d, s.f_blocks * s.f_frsize)",
        disk_mb=8,
    )
    lines = r.stdout_tail.splitlines()
    assert lines[:6] == [
        "/ Read-only file system",
        "/usr Read-only file system",
        "/dev Read-only file system",
        "/sandbox writable",
        "/tmp writable",
        "/dev/shm writable",
    ], lines
    assert lines[6:] == [f"{d} {8 << 20}" for d in ("/sandbox", "/tmp", "/dev/shm")]


WRITER = """
import fcntl, os, time
for path in ('/sandbox/mark', '/tmp/mark', '/dev/shm/mark'):
    open(path, 'w').write('$TOKEN')
try:
    fcntl.flock(open('/usr/bin/env', 'rb'), fcntl.LOCK_EX | fcntl.LOCK_NB)
    print('locked', flush=True)
except OSError as e:
    print('lock refused:', e.strerror, flush=True)
time.sleep(3)
"""
READER = """
import fcntl, os, time
time.sleep(1)
seen = [p for p in ('/sandbox/mark', '/tmp/mark', '/dev/shm/mark') if os.path.exists(p)]
try:
    fcntl.flock(open('/usr/bin/env', 'rb'), fcntl.LOCK_EX | fcntl.LOCK_NB)
    busy = False
except BlockingIOError:
    busy = True
except OSError:
    busy = None
print(seen, busy)
"""


def test_concurrent_sandboxes_share_nothing_they_can_write_or_lock():
    token = uuid.uuid4().hex
    writer, reader = sandbox.run_group(
        [
            sandbox.Program({"main.py": WRITER.replace("$TOKEN", token)}, [sandbox.interpreter(), "main.py"]),
            sandbox.Program({"main.py": READER}, [sandbox.interpreter(), "main.py"]),
        ],
        timeout_s=10,
        memory_mb=256,
        until=1,
    )
    assert writer.stdout_tail.strip() == "lock refused: Operation not permitted"
    assert reader.stdout_tail.strip() == "[] None"  # none of the writer's files; the lock call itself refused
    assert writer.cut and not reader.cut  # the group ended with the reader, the writer was still sleeping


def test_without_a_memory_cgroup_the_run_says_so(monkeypatch):
    monkeypatch.setattr(cgroup, "_support", cgroup.Support(None, None, "not allowed here (test)"))
    monkeypatch.setattr(sandbox, "_warned", False)
    with pytest.warns(RuntimeWarning, match="no memory cgroup.*not allowed here"):
        r = _run("print(1)")
    assert r.memory_cap == "rlimits" and "no memory cgroup" in r.warning and r.returncode == 0
    assert "rlimits only: not allowed here" in sandbox.protections()["memory_cap"]


@pytest.mark.skipif(not cgroup.detect().usable, reason=f"no memory cgroup here: {cgroup.detect().reason}")
def test_a_run_has_its_own_memory_cgroup_and_leaves_none_behind():
    before = set(cgroup.detect().parent.glob(f"{cgroup.PREFIX}{os.getpid()}-*"))
    r = _run("import os\nprint(open('/proc/self/cgroup').read())\nx = bytearray(100 << 20)", memory_mb=300)
    assert r.memory_cap.startswith("cgroup v") and not r.oom_killed and r.returncode == 0
    assert cgroup.PREFIX in r.stdout_tail or r.stdout_tail.strip().endswith(
        ":/"
    )  # a cgroup namespace hides the path
    files = _run(
        "import os\nfor i in range(100000):\n    open(f'f{i}', 'w').write('x' * 4000)",
        memory_mb=128,
        disk_mb=1024,
    )
    assert files.oom_killed, files  # the tmpfs pages count against the cap: the kernel killed it
    deadline = time.monotonic() + 3
    while (
        set(cgroup.detect().parent.glob(f"{cgroup.PREFIX}{os.getpid()}-*")) - before
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
        cgroup.sweep()
    assert set(cgroup.detect().parent.glob(f"{cgroup.PREFIX}{os.getpid()}-*")) - before == set()


def test_concurrent_sweeps_never_change_the_folder_around_the_runs(tmp_path):
    """Two processes may sweep the same dead caller's folders at once: a folder already gone must not make
    the cleanup chmod its parent (that was /tmp, left 0700: no sandbox could read a bind from it)."""
    tmp_path.chmod(0o755)
    for _ in range(10):
        folders = [tempfile.mkdtemp(prefix=f"{sandbox.PREFIX}999999-", dir=tmp_path) for _ in range(20)]
        for folder in folders:
            for j in range(10):
                Path(folder, f"f{j}").write_text("x")
        sweepers = [
            threading.Thread(target=lambda fs: [sandbox._rmtree(f) for f in fs], args=(folders,))
            for _ in range(4)
        ]
        for t in sweepers:
            t.start()
        for t in sweepers:
            t.join()
        assert oct(tmp_path.stat().st_mode & 0o777) == "0o755"
    assert list(tmp_path.iterdir()) == []
