r"""Code verifier: run the completion's code against the problem's tests in a sandbox (sandbox.py).

The program run is the extracted code followed by the tests, then a per-run random nonce
printed as its last act. It is correct only if it exits 0 and the nonce is in its stdout, so
code that exits early (`sys.exit(0)`, `os._exit(0)`, `quit()`) before the tests fails.

- HumanEval (meta has `entry_point` and `code_prompt`): code that defines the entry point
  follows the prompt (which keeps the prompt's imports and helper functions); other code is a
  continuation of the prompt, HumanEval's original format. Then `test` and `check(entry_point)`.
- MBPP and generic problems: the code, then `problem.answer` (the test code), then
  `check(entry_point)` when meta names an entry point.

`__name__` is not "__main__" in the program (as in HumanEval's own harness), so a
completion's `if __name__ == "__main__":` demo, which may read stdin, does not run.

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

import re
import secrets
import signal as _signal
from typing import Literal

from secondtry.types import Problem, Verdict
from secondtry.verifiers import sandbox as _sandbox

MAIN = "main.py"
# runs main.py as module `__solution__`, not "__main__" (a registered module, so that multiprocessing
# can pickle its functions); no import of runpy: ~3 ms a run
RUNNER = ("import sys, types; m = sys.modules['__solution__'] = types.ModuleType('__solution__'); "
          "m.__file__ = 'main.py'; "
          "exec(compile(open('main.py', encoding='utf-8').read(), 'main.py', 'exec'), m.__dict__)")
NPROC = 16  # processes and threads of one run: worst-case memory is NPROC * memory_mb
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


def build_program(problem: Problem, code: str, nonce: str) -> tuple[str, int, int]:
    """(program, first line of the tests, lines added before the completion's code)."""
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
    solution = head + code.rstrip() + "\n\n\n"
    tests = str(problem.answer or "").rstrip() + "\n"
    if entry:
        tests += f"\ncheck({entry})\n"
    # the last act: the nonce proves the tests ran to the end (flush first so it comes last)
    tail = f'\n__import__("sys").stdout.flush(); __import__("os").write(1, b"\\n{nonce}\\n")\n'
    return solution + tests + tail, solution.count("\n") + 1, head.count("\n")


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


def verify(problem: Problem, completion: str, *, timeout_s: float = 5.0, memory_mb: int = 1024,
           sandbox: Literal["auto", "bwrap", "rlimits"] = "auto", python: str | None = None) -> Verdict:
    """Run the completion's code against the problem's tests, sandboxed.

    Raises SandboxUnavailable (naming the fix) only when the sandbox cannot run here: a config
    error, which the options check reports before a run; never for what the completion does.
    """
    _sandbox.check(sandbox, python)  # cached: one probe per process
    if not isinstance(completion, str) or not completion.strip():
        return Verdict(correct=False, reason="no code found")
    code = extract_code(completion)
    if code is None:
        return Verdict(correct=False, reason="no code found")
    if not str(problem.answer or "").strip():  # any code that runs would pass
        return Verdict(correct=None, extracted=code[:4000], reason="cannot judge: the problem has no tests")
    nonce = secrets.token_hex(16)
    # Code that reads its own source (main.py) can find the nonce and print it: the tests run in
    # the same process, so no check within the program is airtight. The sandbox still contains it.
    program, tests_from, offset = build_program(problem, code, nonce)
    extracted = _solution_part(program, tests_from)[:4000]
    try:
        r = _sandbox.run({MAIN: program}, [_sandbox.interpreter(python), "-c", RUNNER], timeout_s=timeout_s,
                         memory_mb=memory_mb, nproc=NPROC, sandbox=sandbox, python=python)
    except OSError as e:  # e.g. no room for the run's folder on the host
        return Verdict(correct=None, extracted=extracted, reason=f"cannot judge: {e}")
    details = {"sandbox": r.method, "exit": r.returncode, "stderr": r.stderr_tail[-600:], "wall_s": round(r.wall_s, 3)}
    if r.signal:
        details["signal"] = _signal.Signals(r.signal).name if r.signal in _signal.valid_signals() else r.signal
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
