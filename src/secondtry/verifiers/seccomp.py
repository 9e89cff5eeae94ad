"""The sandbox's seccomp filter: a classic-BPF program, assembled here, that bwrap installs (`--seccomp FD`).

It denies (EPERM) the system calls through which a sandboxed program could hold memory that no rlimit
counts, reach outside its sandbox, or talk to a concurrent sandbox through something they share:

- SysV IPC (`shmget`, `semget`, `msgget`, ...): shared memory segments outlive their mappings, so
  RLIMIT_AS does not count them; POSIX message queues (`mq_*`) likewise.
- setting extended attributes (`setxattr` and its variants, `setxattrat`): tmpfs keeps them in
  kernel memory.
- `ptrace`, `process_vm_readv/writev`, `pidfd_getfd`, `kcmp`: no reading or stopping of other
  processes, the sandbox's own init included.
- `io_uring_*`: a second way into the kernel that bypasses most of the filter.
- `flock`, and `fcntl` record locks, leases and directory notifications (`F_SETLK`, `F_OFD_SETLK`,
  `F_SETLEASE`, `F_NOTIFY`, ...), `inotify`, `fanotify`: the read-only files under /usr are the same
  inodes in every sandbox, so a lock or a watch on one is a channel between two programs.
- `cachestat`, `add_key` / `keyctl` / `request_key`, `userfaultfd`, `perf_event_open`, `bpf`,
  `move_pages`, `migrate_pages`: kernel state or observations the programs do not need.

Why assembled by hand rather than with libseccomp: Debian 12's libseccomp (2.5.4) does not know
`setxattrat` (Linux 6.13), so a filter it builds by name silently allows that call on newer kernels;
the numbers below are the kernel's own, for x86_64 and aarch64 (the other ABIs of those machines,
x32 and i386 on x86_64, are refused outright). On any other architecture `program()` returns None
and the sandbox runs without the filter, saying so.

>>> len(program("x86_64")) % 8, program("riscv64")
(0, None)
"""

from __future__ import annotations

import errno
import platform
import struct

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
_NR, _ARCH, _ARG1_LO = 0, 4, 24
_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
_ALLOW, _KILL_PROCESS, _ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
_X32_BIT = 0x40000000
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}

# name: (x86_64, aarch64); None where the architecture has no such call
DENIED: dict[str, tuple[int | None, int | None]] = {
    "shmget": (29, 194),
    "shmat": (30, 196),
    "shmctl": (31, 195),
    "shmdt": (67, 197),
    "semget": (64, 190),
    "semop": (65, 193),
    "semctl": (66, 191),
    "semtimedop": (220, 192),
    "msgget": (68, 186),
    "msgsnd": (69, 189),
    "msgrcv": (70, 188),
    "msgctl": (71, 187),
    "mq_open": (240, 180),
    "mq_unlink": (241, 181),
    "mq_timedsend": (242, 182),
    "mq_timedreceive": (243, 183),
    "mq_notify": (244, 184),
    "mq_getsetattr": (245, 185),
    "setxattr": (188, 5),
    "lsetxattr": (189, 6),
    "fsetxattr": (190, 7),
    "setxattrat": (463, 463),
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "kcmp": (312, 272),
    "pidfd_getfd": (438, 438),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "flock": (73, 32),
    "inotify_init": (253, None),
    "inotify_init1": (294, 26),
    "inotify_add_watch": (254, 27),
    "fanotify_init": (300, 262),
    "fanotify_mark": (301, 263),
    "cachestat": (451, 451),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "keyctl": (250, 219),
    "userfaultfd": (323, 282),
    "perf_event_open": (298, 241),
    "bpf": (321, 280),
    "move_pages": (279, 239),
    "migrate_pages": (256, 238),
}
FCNTL = {"x86_64": 72, "aarch64": 25}
# fcntl commands denied: F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK/SETLK/SETLKW, F_SETLEASE, F_NOTIFY
FCNTL_DENIED = (5, 6, 7, 36, 37, 38, 1024, 1026)


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program(arch: str | None = None) -> bytes | None:
    """The filter for `arch` (default: this machine's) as bwrap reads it, or None where it has no table."""
    arch = arch or platform.machine()
    if arch not in AUDIT_ARCH:
        return None
    col = 0 if arch == "x86_64" else 1
    numbers = sorted({n[col] for n in DENIED.values() if n[col] is not None})
    deny = _RET_K, _ERRNO | errno.EPERM
    body: list[tuple[int, int, int, int]] = []  # (code, k, jt, jf) with jumps relative, filled below
    body.append((_LD_W_ABS, _ARCH, 0, 0))
    body.append((_JEQ_K, AUDIT_ARCH[arch], 1, 0))  # another ABI of this machine (i386, arm32): no calls
    body.append((_RET_K, _KILL_PROCESS, 0, 0))
    body.append((_LD_W_ABS, _NR, 0, 0))
    if arch == "x86_64":
        body.append((_JGE_K, _X32_BIT, 0, 1))  # the x32 ABI: refused
        body.append(deny + (0, 0))
    for nr in numbers:  # "jeq nr -> deny"; deny is the last instruction
        body.append((_JEQ_K, nr, -1, 0))
    body.append((_JEQ_K, FCNTL[arch], 0, len(FCNTL_DENIED) + 1))  # not fcntl: allow
    body.append((_LD_W_ABS, _ARG1_LO, 0, 0))
    for cmd in FCNTL_DENIED:
        body.append((_JEQ_K, cmd, -1, 0))
    body.append((_RET_K, _ALLOW, 0, 0))
    body.append(deny + (0, 0))
    last = len(body) - 1
    out = b""
    for i, (code, k, jt, jf) in enumerate(body):
        if jt == -1:
            jt = last - i - 1
        out += _ins(code, k, jt, jf)
    return out


def denied_names(arch: str | None = None) -> list[str]:
    """The calls the filter denies on `arch` (fcntl's lock, lease and notify commands not listed)."""
    col = 0 if (arch or platform.machine()) == "x86_64" else 1
    return sorted(name for name, n in DENIED.items() if n[col] is not None)
