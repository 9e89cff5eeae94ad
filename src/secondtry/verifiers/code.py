r"""Code verifier: the completion's code and the problem's tests in two sandboxes (sandbox.py, wire.py).

The candidate's program (the extracted code) runs in one sandbox and exposes what it defines; the
tests run in a second sandbox that holds the test source and a per-run random nonce, neither
visible to the program, and call the program's functions across a pipe. Arguments and return
values cross as plain data of exact types (wire.py), exceptions as a type name and a message, so
nothing the program does in its own process (an `__eq__` that always answers True, patched
builtins, a traced or replaced `check`, `atexit`, exit codes, printed output) reaches the tests.
A verdict is "passed" only if the tests' process reports, with the nonce, that the tests ran to
their end.

- HumanEval (meta has `entry_point` and `code_prompt`): code that defines the entry point
  follows the prompt (which keeps the prompt's imports and helper functions); other code is a
  continuation of the prompt, HumanEval's original format. The tests' side runs the prompt
  itself (its helpers, such as `poly`, are the task's, not the program's), then `test` and
  `check(entry_point)`.
- MBPP and generic problems: `problem.answer` (the test code), then `check(entry_point)` when
  meta names an entry point. Each name the program defines is bound to a proxy on the tests'
  side, unless the tests get that name from the task or from Python's builtins (a function
  the task's reference solution defines, such as MBPP's `sum`, may shadow a builtin).

`__name__` is not "__main__" in the program (as in HumanEval's own harness), so a
completion's `if __name__ == "__main__":` demo, which may read stdin, does not run.
`verify_one_process` keeps the earlier design (code, tests and nonce in one program) as the
baseline of `secondtry bench verify`; it is not a verifier, since a program can game it.

>>> from secondtry.types import Problem
>>> p = Problem(id="t", prompt="", answer="assert add(2, 3) == 5")
>>> verify(p, "```python\ndef add(a, b):\n    return a + b\n```").reason  # doctest: +SKIP
'passed'
>>> verify(p, "```python\ndef add(a, b):\n    return a - b\n```").reason  # doctest: +SKIP
'failed: AssertionError (line 1 of the tests)'
>>> verify(p, "```cpp\nint add(int a, int b);\n```").reason  # doctest: +SKIP
'no code found'
>>> extract_code("Here:\n```py\nx = 1\n```\nthen\n```python\nx = 2\n```\n")
'x = 2\n'
"""

from __future__ import annotations

import ast
import functools
import os
import re
import secrets
import signal as _signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Literal

from secondtry.types import Problem, Verdict
from secondtry.verifiers import sandbox as _sandbox
from secondtry.verifiers import wire as _wire

MAIN = "main.py"
JOB = "job.repr"  # the tests' side: test source, prompt, entry point, nonce (a dict's repr)
_WIRE = Path(_wire.__file__).read_text(encoding="utf-8")
WIRE = ".secondtry_wire"  # wire.py's code object (marshal), copied into both sandboxes
CANDIDATE = "serve_candidate(int(sys.argv[1]), int(sys.argv[2]), 'main.py')"
TESTS = "run_tests('job.repr', int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))"
COMPILE = (
    "import marshal, sys; sys.stdout.buffer.write(marshal.dumps(compile(sys.stdin.read(), 'wire.py', "
    "'exec')))"
)
_wire_lock = threading.Lock()
_wire_code: dict[str, bytes | None] = {}


def _compiled_wire(python: str) -> bytes | None:
    """wire.py compiled by `python` (once per process and interpreter): compiling its source in each
    sandbox would cost ~5 ms a process. None if that interpreter cannot (then the source is sent)."""
    with _wire_lock:
        if python not in _wire_code:
            try:
                done = subprocess.run(
                    [python, "-I", "-S", "-c", COMPILE], input=_WIRE.encode(), capture_output=True, timeout=60
                )
                _wire_code[python] = done.stdout if done.returncode == 0 and done.stdout else None
            except (OSError, subprocess.SubprocessError):
                _wire_code[python] = None
        return _wire_code[python]


def _runner(python: str, call: str) -> tuple[list[str], dict[str, str | bytes]]:
    """(the `-c` program that runs `call` from wire.py, the files it needs in the sandbox)."""
    code = _compiled_wire(python)
    if code is None:
        return ["-c", _WIRE + "\n" + call + "\n"], {}
    return ["-c", f"import marshal; exec(marshal.loads(open({WIRE!r}, 'rb').read())); {call}"], {WIRE: code}


# the one-process baseline: runs main.py as module `__solution__`, not "__main__" (a registered module, so
# that multiprocessing can pickle its functions); no import of runpy: ~3 ms a run
RUNNER = (
    "import sys, types; m = sys.modules['__solution__'] = types.ModuleType('__solution__'); "
    "m.__file__ = 'main.py'; "
    "exec(compile(open('main.py', encoding='utf-8').read(), 'main.py', 'exec'), m.__dict__)"
)
GRACE_S = 0.25  # how long the program may take to end by itself once the tests are done (then it is killed)
NPROC = 16  # processes and threads of one sandbox (without a memory cgroup, worst case: NPROC * memory_mb)
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*$", re.MULTILINE)
_PY_TAGS = {"", "python", "py", "python3", "py3"}
_FRAME = re.compile(r'File "(?:/sandbox/)?main\.py", line (\d+)')
_EXC = re.compile(r"^(\w+(?:\.\w+)*(?:Error|Exception|Exit|Interrupt|Warning)|[A-Z]\w*)(?::\s?(.*))?$")


def extract_code(completion: str) -> str | None:
    """The last ```python / ```py / ``` block (an unclosed last block counts), else the raw text.

    Only the text after a closing `</think>` is read, so a reasoning trace's drafts are ignored.
    """
    text = completion.rsplit("</think>", 1)[-1]
    blocks: list[str] = []
    fences = list(_FENCE.finditer(text))
    i = 0
    while i < len(fences):
        tag = fences[i].group(1).lower()
        start = fences[i].end() + 1
        end = fences[i + 1].start() if i + 1 < len(fences) else len(text)
        if tag in _PY_TAGS:
            blocks.append(text[start:end])
        i += 2  # an opening fence and its closing one
    if blocks:
        return blocks[-1] if blocks[-1].strip() else None
    if fences:  # only blocks in other languages
        return None
    return text if text.strip() else None


def _hoist_future(code: str) -> tuple[str, str]:
    """(`from __future__` lines, the rest): such imports must open the program."""
    future = [line for line in code.splitlines() if line.startswith("from __future__")]
    rest = [line for line in code.splitlines() if not line.startswith("from __future__")]
    return "\n".join(future), "\n".join(rest)


def build_solution(problem: Problem, code: str) -> tuple[str, int]:
    """(the candidate's program, lines added before the completion's code)."""
    meta = problem.meta or {}
    entry = meta.get("entry_point")
    prompt = meta.get("code_prompt") or ""
    future, code = _hoist_future(code)
    if prompt and entry and re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(entry)}\s*\(", code, re.MULTILINE):
        head = prompt.rstrip() + "\n\n\n"  # the prompt's imports and helpers; the completion's def wins
    elif prompt:
        head = prompt  # a continuation: the prompt ends inside the function, after its docstring
    else:
        head = ""
    head = (future + "\n" if future else "") + head
    return head + code.rstrip() + "\n\n\n", head.count("\n")


def build_program(problem: Problem, code: str, nonce: str) -> tuple[str, int, int]:
    """The one-process program (baseline): (program, first line of the tests, lines added before the code)."""
    entry = (problem.meta or {}).get("entry_point")
    solution, offset = build_solution(problem, code)
    tests = str(problem.answer or "").rstrip() + "\n"
    if entry:
        tests += f"\ncheck({entry})\n"
    # the last act: the nonce proves the tests ran to the end (flush first so it comes last)
    tail = f'\n__import__("sys").stdout.flush(); __import__("os").write(1, b"\\n{nonce}\\n")\n'
    return solution + tests + tail, solution.count("\n") + 1, offset


def _where(line: int, tests_from: int, offset: int) -> str:
    if line >= tests_from:
        return f"line {line - tests_from + 1} of the tests"
    return f"line {max(1, line - offset)} of the code"


def _failure(stderr: str, tests_from: int, offset: int) -> str:
    """A short reason from a traceback: the exception and where in the program it was raised."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    exc = next((m for ln in reversed(lines) if (m := _EXC.match(ln.strip()))), None)
    frames = _FRAME.findall(stderr)
    where = f" ({_where(int(frames[-1]), tests_from, offset)})" if frames else ""
    if exc is None:
        return "failed" + (f": {lines[-1][:100]}" if lines else "")
    name, msg = exc.group(1), (exc.group(2) or "").strip()
    if name in ("SyntaxError", "IndentationError", "TabError"):
        return f"syntax error: {msg[:100]}{where}"
    if name == "MemoryError":
        return "memory limit"
    if name == "AssertionError" or not msg:
        return f"failed: {name}{where}"
    return f"failed: {name}: {msg[:100]}{where}"


def _precheck(problem: Problem, completion: str, sandbox: str, python: str | None) -> str | Verdict:
    """The extracted code, or the verdict when there is nothing to run."""
    _sandbox.check(sandbox, python)  # cached: one probe per process
    if not isinstance(completion, str) or not completion.strip():
        return Verdict(correct=False, reason="no code found")
    code = extract_code(completion)
    if code is None:
        return Verdict(correct=False, reason="no code found")
    if not str(problem.answer or "").strip():  # any code that runs would pass
        return Verdict(correct=None, extracted=code[:4000], reason="cannot judge: the problem has no tests")
    return code


@functools.lru_cache(maxsize=4096)
def task_functions(solution: str, tests: str) -> tuple[str, ...]:
    """Functions the task's reference solution defines that its tests call: the tests' side binds them to
    the program's even where they shadow a builtin (MBPP 126 defines `sum`)."""
    try:
        tree = ast.parse(solution)
    except (SyntaxError, ValueError):
        return ()
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return tuple(sorted(name for name in defined if re.search(rf"\b{re.escape(name)}\b", tests)))


@functools.lru_cache(maxsize=4096)
def stdlib_only(tests: str) -> bool:
    """Whether the tests import only the standard library: then their process starts without `site`
    (~4 ms less a verdict), else with it, so that installed packages are found."""
    try:
        tree = ast.parse(tests)
    except (SyntaxError, ValueError):
        return False
    stdlib = getattr(sys, "stdlib_module_names", None)
    if stdlib is None:  # Python 3.9
        return False
    for node in ast.walk(tree):
        names = (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and not node.level
            else []
        )
        if any(name.split(".")[0] not in stdlib for name in names):
            return False
    return True


def verify(
    problem: Problem,
    completion: str,
    *,
    timeout_s: float = 5.0,
    memory_mb: int = 1024,
    sandbox: Literal["auto", "bwrap", "rlimits"] = "auto",
    python: str | None = None,
) -> Verdict:
    """Run the completion's code and the problem's tests in two sandboxes; the tests call the code.

    `memory_mb` caps both sandboxes together (a memory cgroup where the host allows one, else each
    process's address space), `timeout_s` the whole verdict. Raises SandboxUnavailable (naming the
    fix) only when the sandbox cannot run here: a config error, which the options check reports
    before a run; never for what the completion does.
    """
    early = _precheck(problem, completion, sandbox, python)
    if isinstance(early, Verdict):
        return early
    meta = problem.meta or {}
    solution, offset = build_solution(problem, early)
    extracted = solution[:4000]
    tests = str(problem.answer).rstrip() + "\n"
    nonce = secrets.token_hex(16)
    job = {
        "nonce": nonce,
        "tests": tests,
        "prompt": meta.get("code_prompt") or "",
        "entry": meta.get("entry_point") or "",
        "declared": list(task_functions(problem.solution or "", tests)),
    }
    py = _sandbox.interpreter(python)
    candidate, wire_files = _runner(py, CANDIDATE)
    tester, _ = _runner(py, TESTS)
    calls_r, calls_w = os.pipe()  # tests -> program: calls
    answers_r, answers_w = os.pipe()  # program -> tests: return values and exceptions
    report_r, report_w = os.pipe()  # tests -> here: the outcome, with the nonce
    programs = [
        _sandbox.Program(
            {MAIN: solution, **wire_files},
            [py, *candidate, str(calls_r), str(answers_w)],
            pass_fds=(calls_r, answers_w),
        ),
        _sandbox.Program(
            {JOB: repr(job), **wire_files},
            [
                py,
                "-I",
                *(["-S"] if stdlib_only(tests) else []),
                *tester,
                str(answers_r),
                str(calls_w),
                str(report_w),
            ],
            pass_fds=(answers_r, calls_w, report_w),
        ),
    ]
    try:
        cand, tester = _sandbox.run_group(
            programs,
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            nproc=NPROC,
            sandbox=sandbox,
            python=python,
            until=1,
            grace_s=GRACE_S,
        )
        report_text = _sandbox._read_all(report_r)
    except OSError as e:  # e.g. no room for the run's folder on the host
        return Verdict(correct=None, extracted=extracted, reason=f"cannot judge: {e}")
    finally:
        os.close(report_r)
    details: dict = {
        "sandbox": cand.method,
        "exit": cand.returncode,
        "tests_exit": tester.returncode,
        "stderr": cand.stderr_tail[-600:],
        "wall_s": round(tester.wall_s, 3),
        "memory_cap": cand.memory_cap,
    }
    if cand.signal and not cand.cut:
        details["signal"] = _signame(cand.signal)
    if cand.oom_killed:
        details["oom_killed"] = True
    if cand.memory_peak_mb is not None:
        details["memory_peak_mb"] = cand.memory_peak_mb
    if cand.warning:
        details["warning"] = cand.warning
    report = _report(report_text, nonce)
    if report is not None:
        details["calls"] = report.get("calls")
    correct, reason = _judge(report, cand, tester, timeout_s, offset)
    if tester.stderr_tail.strip() and correct is not True:
        details["tests_stderr"] = tester.stderr_tail[-600:]
    return Verdict(correct=correct, extracted=extracted, reason=reason, details=details)


def _signame(sig: int) -> str | int:
    return _signal.Signals(sig).name if sig in _signal.valid_signals() else sig


def _report(text: str, nonce: str) -> dict | None:
    """The tests' report, if it is whole and carries this run's nonce."""
    try:
        report = ast.literal_eval(text.strip().splitlines()[-1]) if text.strip() else None
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(report, dict) or report.get("nonce") != nonce:
        return None
    return report


def _judge(
    report: dict | None,
    cand: _sandbox.SandboxResult,
    tester: _sandbox.SandboxResult,
    timeout_s: float,
    offset: int,
) -> tuple[bool | None, str]:
    for r in (cand, tester):
        if r.error:
            return None, f"cannot judge: {r.error}"
    if tester.timed_out:
        return False, f"timed out after {timeout_s:g}s"
    if cand.output_limited or tester.output_limited:  # flooding its output is wrong, whatever the tests say
        return False, "output limit exceeded"
    status = report.get("status") if report else None
    if status == "passed" and report and report.get("done") and tester.returncode == 0:
        return True, "passed"
    if status == "failed" and report:
        return False, _test_failure(report, offset)
    if status == "not_plain" and report:
        return False, f"incorrect: return value not plain data ({str(report.get('what'))[:100]})"
    if status == "cannot_serve" and report:
        what = str(report.get("what"))[:160]
        return None, f"cannot judge: {what}, which cannot cross between the two processes"
    if status == "exited":
        return False, _ended(cand, offset)
    if cand.oom_killed or tester.oom_killed:
        return False, "memory limit"
    if tester.signal == _signal.SIGXCPU:
        return False, "timed out (CPU time limit)"
    if tester.output_limited:
        return False, "output limit exceeded"
    what = f"killed by {_signame(tester.signal)}" if tester.signal else f"exit {tester.returncode}"
    return False, f"failed: the tests ended without a report ({what})"


def _test_failure(report: dict, offset: int) -> str:
    name, msg = str(report.get("error") or "Exception"), str(report.get("message") or "").strip()
    if name == "MemoryError":
        return "memory limit"
    if name == "RecursionError" and report.get("from_program"):
        msg = msg or "maximum recursion depth exceeded"
    code_line, test_line = report.get("code_line"), report.get("test_line")
    if isinstance(code_line, int):
        where = f" (line {max(1, code_line - offset)} of the code)"
    elif isinstance(test_line, int):
        where = f" (line {test_line} of the tests)"
    else:
        where = ""
    if name == "AssertionError" or not msg:
        return f"failed: {name}{where}"
    return f"failed: {name}: {msg[:100]}{where}"


def _ended(cand: _sandbox.SandboxResult, offset: int) -> str:
    """Why the program's process ended before the tests were done."""
    if cand.signal == _signal.SIGXCPU:
        return "timed out (CPU time limit)"
    if cand.output_limited:
        return "output limit exceeded"
    if cand.oom_killed:
        return "memory limit"
    if cand.returncode == 0:
        return "exited before the tests finished"
    if cand.signal and not cand.stderr_tail.strip():  # a crash (SIGSEGV, SIGABRT) or a kill from inside
        return f"killed by {_signame(cand.signal)}"
    reason = _failure(cand.stderr_tail, 1 << 30, offset)
    if reason == "failed":  # no traceback: sys.exit(n) or os._exit(n)
        return f"exited with code {cand.returncode} before the tests finished"
    return reason


def verify_one_process(
    problem: Problem,
    completion: str,
    *,
    timeout_s: float = 5.0,
    memory_mb: int = 1024,
    sandbox: Literal["auto", "bwrap", "rlimits"] = "auto",
    python: str | None = None,
) -> Verdict:
    """The earlier design, kept as the baseline of `secondtry bench verify`: code, tests and nonce in one
    program, correct if it prints the nonce. Not a verifier: code that reads its own source, or returns
    an object equal to everything, passes (see `verify`)."""
    early = _precheck(problem, completion, sandbox, python)
    if isinstance(early, Verdict):
        return early
    code, nonce = early, secrets.token_hex(16)
    program, tests_from, offset = build_program(problem, code, nonce)
    extracted = _solution_part(program, tests_from)[:4000]
    try:
        r = _sandbox.run(
            {MAIN: program},
            [_sandbox.interpreter(python), "-c", RUNNER],
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            nproc=NPROC,
            sandbox=sandbox,
            python=python,
        )
    except OSError as e:  # e.g. no room for the run's folder on the host
        return Verdict(correct=None, extracted=extracted, reason=f"cannot judge: {e}")
    details = {
        "sandbox": r.method,
        "exit": r.returncode,
        "stderr": r.stderr_tail[-600:],
        "wall_s": round(r.wall_s, 3),
    }
    if r.signal:
        details["signal"] = (
            _signal.Signals(r.signal).name if r.signal in _signal.valid_signals() else r.signal
        )
    if r.warning:
        details["warning"] = r.warning

    def verdict(correct: bool | None, reason: str) -> Verdict:
        return Verdict(correct=correct, extracted=extracted, reason=reason, details=details)

    if r.error:
        return verdict(None, f"cannot judge: {r.error}")
    if r.timed_out:
        return verdict(False, f"timed out after {timeout_s:g}s")
    if r.signal == _signal.SIGXCPU:
        return verdict(False, "timed out (CPU time limit)")
    if r.output_limited:
        return verdict(False, "output limit exceeded")
    if r.returncode == 0:
        if nonce in r.stdout_tail:
            return verdict(True, "passed")
        return verdict(False, "exited before the tests finished")
    if r.signal and not r.stderr_tail.strip():  # a crash (SIGSEGV, SIGABRT) or a kill from inside
        return verdict(False, f"killed by {details['signal']}")
    reason = _failure(r.stderr_tail, tests_from, offset)
    if reason == "failed":  # no traceback: sys.exit(n) or os._exit(n)
        return verdict(False, f"exited with code {r.returncode} before the tests finished")
    return verdict(False, reason)


def _solution_part(program: str, tests_from: int) -> str:
    """The program up to the tests: the code that was judged."""
    return "\n".join(program.splitlines()[: tests_from - 1]).rstrip() + "\n"
