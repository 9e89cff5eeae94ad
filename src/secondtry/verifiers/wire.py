"""The two processes of a code verdict, and the plain data that crosses between them.

The candidate's program runs in one sandbox (`serve_candidate`): it loads the program as module
`__solution__`, announces the callables it defines, then answers calls. The tests run in a second
sandbox (`run_tests`) that holds the test source and the run's nonce: HumanEval's `check(candidate)`
and MBPP's asserts run there unchanged, with each name of the program bound to a proxy that calls
across the pipe. Nothing the candidate does in its own process (patching builtins, tracing,
`atexit`, exit codes, printing) reaches the tests' process; what crosses is:

- arguments and return values as plain data of a closed set of exact types: None, bool, int,
  float, complex, str, bytes, list, tuple, dict, set, frozenset, and collections' Counter,
  OrderedDict and defaultdict (rebuilt without its default factory), nested. Subclasses and every
  other type are refused; the tests' side rebuilds the values from the frames before any comparison.
- exceptions as a type name and a message (and the line of the program that raised them), raised
  again on the tests' side as the builtin exception of that name, or `CandidateError`.

This module's source is shipped into both sandboxes: it must run on the sandbox's Python (3.8 or
later) and imports only built-in modules (importing `re`, which `json` and `traceback` need, costs
~10 ms a process here). A frame is a 4-byte big-endian length and the message as `marshal` writes
it; the receiving side rebuilds every value with exact-type checks (`rebuild`), so what marshal can
express beyond plain data (code objects, cycles) is refused, never used.

>>> frame = encode_frame(["r", {1: (b"x", [2.5, None], {3})}])
>>> decode(frame[4:])
['r', {1: (b'x', [2.5, None], {3})}]
>>> class Yes(int):
...     def __eq__(self, other):
...         return True
>>> try:
...     encode(Yes(1))
... except NotPlain as e:
...     print("not plain:", e)
not plain: Yes
"""

from __future__ import annotations

import builtins
import marshal
import os
import sys

MAX_FRAME = 64 << 20  # bytes: a bigger return value is refused (the tests' side would have to hold it)
MAX_DEPTH = 900  # nesting levels of a value (a cycle, which marshal can express, is refused as too deep)
_ATOMS = (type(None), bool, int, float, complex, str, bytes)
_SPECIAL = ("Counter", "OrderedDict", "defaultdict")  # collections' dicts, tagged as (..., name, dict)


class NotPlain(Exception):
    """A value outside the closed set of plain types; the message names its type (or what is wrong)."""


def _special_types() -> dict:
    """collections' dict types -> their names; empty while collections is not loaded (no value is one)."""
    m = sys.modules.get("collections")
    return {getattr(m, name): name for name in _SPECIAL} if m is not None else {}


def _walk(x: object, depth: int, other) -> object:
    """A copy of `x` through the closed set of exact types; `other(x, depth)` for anything else (and for
    tuples that start with Ellipsis, the tags)."""
    t = type(x)
    if t in _ATOMS:
        return x
    if depth > MAX_DEPTH:
        raise NotPlain("a value nested too deeply")
    d = depth + 1
    if t is list:
        return [_walk(v, d, other) for v in x]  # type: ignore[union-attr]
    if t is tuple and not (x and x[0] is ...):  # type: ignore[index]
        return tuple([_walk(v, d, other) for v in x])  # type: ignore[union-attr]
    if t is dict:
        return {_walk(k, d, other): _walk(v, d, other) for k, v in x.items()}  # type: ignore[union-attr]
    if t is set:
        return {_walk(v, d, other) for v in x}  # type: ignore[union-attr]
    if t is frozenset:
        return frozenset([_walk(v, d, other) for v in x])  # type: ignore[union-attr]
    return other(x, d)


def _name(t: type) -> str:
    return str(getattr(t, "__name__", "?"))[:80]


def _tag(x: object, depth: int) -> object:
    name = _special_types().get(type(x))
    if name is None:  # a tuple here starts with Ellipsis, which is not plain data (so it cannot fake a tag)
        raise NotPlain("ellipsis" if type(x) is tuple else _name(type(x)))
    return (..., name, _walk(dict(dict.items(x)), depth, _tag))  # type: ignore[call-overload]


def _untag(x: object, depth: int) -> object:
    if type(x) is not tuple:
        raise NotPlain(_name(type(x)))
    if len(x) != 3 or x[1] not in _SPECIAL or type(x[2]) is not dict:  # type: ignore[arg-type]
        raise NotPlain("a malformed frame")
    import collections

    items = _walk(x[2], depth, _untag)  # type: ignore[index]
    if x[1] == "defaultdict":  # type: ignore[index]
        return collections.defaultdict(None, items)  # type: ignore[arg-type]
    return getattr(collections, x[1])(items)  # type: ignore[index]


def encode(x: object) -> object:
    """`x` checked against the closed set of exact types, as marshal can write it (collections' dicts
    tagged); NotPlain for anything else."""
    return _walk(x, 0, _tag)


def rebuild(x: object) -> object:
    """A fresh copy of what marshal read, checked against the closed set (tags made into collections'
    dicts again); NotPlain for anything else: code objects, Ellipsis elsewhere, cycles."""
    return _walk(x, 0, _untag)


def encode_frame(message: list) -> bytes:
    """A frame: the length, then the message (a list of plain values) as marshal writes it."""
    try:
        body = marshal.dumps(encode(message))
    except (ValueError, RecursionError):  # marshal's own depth limit
        raise NotPlain("a value nested too deeply") from None
    if len(body) > MAX_FRAME:
        raise NotPlain(f"a value of {len(body) >> 20} MB (the limit is {MAX_FRAME >> 20} MB)")
    return len(body).to_bytes(4, "big") + body


def decode(body: bytes) -> list:
    """A frame's message, rebuilt as plain data; NotPlain for anything else (never another exception)."""
    try:
        message = rebuild(marshal.loads(body))
    except NotPlain:
        raise
    except RecursionError:
        raise NotPlain("a value nested too deeply") from None
    except Exception as e:  # noqa: BLE001 - marshal's errors on bad input: EOFError, ValueError, TypeError
        raise NotPlain(f"a malformed frame ({type(e).__name__})") from None
    if type(message) is not list or not message:
        raise NotPlain("a malformed frame")
    return message


def send(fd: int, message: list) -> None:
    _write(fd, encode_frame(message))


def _write(fd: int, frame: bytes) -> None:
    data = memoryview(frame)
    while data:
        data = data[os.write(fd, data) :]


def recv(fd: int) -> list | None:
    """The next message, or None at the end of the pipe (the other process is gone)."""
    head = _read(fd, 4)
    if head is None:
        return None
    n = int.from_bytes(head, "big")
    if n > MAX_FRAME:
        raise NotPlain(f"a value of {n >> 20} MB (the limit is {MAX_FRAME >> 20} MB)")
    body = _read(fd, n)
    if body is None:
        return None
    return decode(body)


def _read(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        b = os.read(fd, min(left, 1 << 20))
        if not b:
            return None
        chunks.append(b)
        left -= len(b)
    return b"".join(chunks)


def _lines(tb: object, filename: str) -> list:
    """Line numbers of a traceback's frames in `filename` (no import of traceback: ~15 ms a process)."""
    out = []
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:  # type: ignore[attr-defined]
            out.append(tb.tb_lineno)  # type: ignore[attr-defined]
        tb = tb.tb_next  # type: ignore[attr-defined]
    return out


# --- the candidate's side --------------------------------------------------------------------------


def serve_candidate(rfd: int, wfd: int, path: str = "main.py") -> None:
    """Load the program as module `__solution__`, announce its callables, answer calls until the pipe ends.

    An exception while loading propagates: its traceback on stderr is the verdict's reason.
    """
    is_a, can_call, module_type = isinstance, callable, type(sys)  # before the program can patch builtins
    module = module_type("__solution__")
    module.__file__ = path
    sys.modules["__solution__"] = module  # multiprocessing can pickle its functions
    with open(path, encoding="utf-8") as f:
        code = compile(f.read(), path, "exec")
    exec(code, module.__dict__)
    ns = module.__dict__
    names = {}
    for name, value in list(ns.items()):
        if name.startswith("__"):
            continue
        if is_a(value, module_type):
            names[name] = "module:" + str(getattr(value, "__name__", ""))[:200]
        elif can_call(value):
            own_class = is_a(value, type) and getattr(value, "__module__", None) == "__solution__"
            names[name] = "class" if own_class else "function"
    send(wfd, ["hello", names])
    while True:
        message = recv(rfd)
        if message is None:
            return
        _, name, args, kwargs = message
        if name not in ns:  # the program removed it from its own namespace
            send(wfd, ["e", "NameError", f"name {name!r} is not defined", None])
            continue
        try:
            result = ns[name](*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - every exception of the program crosses as name + message
            lines = _lines(e.__traceback__, path)
            try:
                text = str(e)[:2000]
            except BaseException:  # noqa: BLE001
                text = "<unprintable>"
            send(wfd, ["e", type(e).__name__[:200], text, lines[-1] if lines else None])
            continue
        try:
            frame = encode_frame(["r", result])
        except NotPlain as e:
            send(wfd, ["bad", str(e)])
            continue
        except RecursionError:
            send(wfd, ["bad", "a value nested too deeply"])
            continue
        _write(wfd, frame)


# --- the tests' side -------------------------------------------------------------------------------


class CandidateError(Exception):
    """An exception of the program whose type is not a builtin exception: its name and message."""


class _Stop(BaseException):
    """Ends the tests at once: the program answered with something that is not plain data, exited, or the
    tests need what cannot cross (not an Exception, so a test's `except Exception` does not swallow it)."""


def run_tests(job_path: str, rfd: int, wfd: int, report_fd: int) -> None:
    """Run the job's tests against the program across the pipe; write the report (a dict's repr) to
    `report_fd`.

    The job file holds a dict's repr, written by the verifier (no json here: importing it costs ~10 ms).
    """
    with open(job_path, encoding="utf-8") as f:
        job = eval(f.read(), {"__builtins__": {}})  # noqa: S307 - written by the verifier, not the program
    report = {"nonce": job["nonce"], "status": "passed", "calls": 0}
    try:
        _run_tests(job, rfd, wfd, report)
    except BaseException as e:  # noqa: BLE001 - the harness itself failed: never a pass
        if report["status"] == "passed":
            report.update(status="error", error=type(e).__name__, message=str(e)[:300])
    report = {k: v[:500] if type(v) is str else v for k, v in report.items()}  # fits a pipe's buffer
    os.write(report_fd, (repr(report) + "\n").encode())


def _run_tests(job: dict, rfd: int, wfd: int, report: dict) -> None:
    try:
        hello = recv(rfd)
    except NotPlain:
        hello = None
    if hello is None or len(hello) != 2 or hello[0] != "hello" or type(hello[1]) is not dict:
        report["status"] = "exited"  # ended (or failed to load) before it could be called
        return
    entry = job.get("entry") or ""
    declared = set(job.get("declared") or ())  # the task's own functions, which may shadow builtins
    g = {"__name__": "__tests__", "__builtins__": builtins}
    if job.get("prompt"):  # the task's own helpers (HumanEval's poly): trusted, never the program's
        try:
            exec(compile(job["prompt"], "prompt.py", "exec"), g)
        except Exception:  # noqa: BLE001 - a prompt that is not a whole program
            pass
        g.pop(entry, None)  # the prompt's stub of the entry point
    for name, kind in hello[1].items():
        if type(name) is not str or type(kind) is not str or not name.isidentifier():
            continue
        if name != entry and (name in g or (hasattr(builtins, name) and name not in declared)):
            continue  # the program cannot replace what the tests get from the task or from Python
        if kind.startswith("module:"):
            module = kind[len("module:") :]
            if module == name and name in job["tests"] and module in getattr(sys, "stdlib_module_names", ()):
                g[name] = __import__(module)  # the tests' own copy of the standard module
        elif kind == "class" and name != entry:
            g[name] = _unservable(name, report)
        else:
            g[name] = _proxy(name, rfd, wfd, report)
    source = job["tests"] + (f"\ncheck({entry})\n" if entry else "")
    try:
        exec(compile(source, "tests.py", "exec"), g)
    except _Stop:
        return
    except BaseException as e:  # noqa: BLE001 - a failed test, whatever it raised
        if report["status"] != "passed":
            return  # a _Stop swallowed by a bare `except:` in the tests, then another failure
        lines = _lines(e.__traceback__, "tests.py")
        origin = getattr(e, "_secondtry_origin", None)
        report.update(
            status="failed",
            error=origin[0] if origin else type(e).__name__,
            message=(origin[1] if origin else _text(e))[:300],
            test_line=lines[-1] if lines else None,
            code_line=origin[2] if origin else None,
            from_program=origin is not None,
        )
        return
    if report["status"] == "passed":
        report["done"] = True  # the tests ran to their end


def _text(e: BaseException) -> str:
    try:
        return str(e)
    except Exception:  # noqa: BLE001
        return "<unprintable>"


def _stop(report: dict, status: str, **details: object) -> _Stop:
    if report["status"] == "passed":
        report.update(status=status, **details)
    return _Stop(status)


def _unservable(name: str, report: dict):
    def construct(*args, **kwargs):
        raise _stop(report, "cannot_serve", what=f"the tests construct {name}, a class the program defines")

    return construct


def _proxy(name: str, rfd: int, wfd: int, report: dict):
    def call(*args, **kwargs):
        if report["status"] != "passed":
            raise _Stop(report["status"])
        try:
            frame = encode_frame(["c", name, list(args), kwargs])
        except (NotPlain, RecursionError) as e:
            raise _stop(report, "cannot_serve", what=f"the tests pass {e} as an argument") from None
        data = memoryview(frame)
        try:
            while data:
                data = data[os.write(wfd, data) :]
            answer = recv(rfd)
        except NotPlain as e:
            raise _stop(report, "not_plain", what=str(e)) from None
        except OSError:  # the program closed its end
            answer = None
        report["calls"] += 1
        if answer is None:
            raise _stop(report, "exited", function=name)
        kind = answer[0]
        if kind == "r" and len(answer) == 2:
            return answer[1]
        if kind == "bad" and len(answer) == 2:
            raise _stop(report, "not_plain", what=str(answer[1]), function=name)
        if kind == "e" and len(answer) == 4 and type(answer[1]) is str and type(answer[2]) is str:
            raise _rebuild(answer[1], answer[2], answer[3] if type(answer[3]) is int else None)
        raise _stop(report, "not_plain", what="a malformed answer", function=name)

    call.__name__ = name
    return call


def _rebuild(name: str, message: str, line: int | None) -> BaseException:
    """The program's exception on this side: the builtin Exception of that name, else CandidateError."""
    cls = getattr(builtins, name, None)
    e: BaseException
    try:
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise TypeError
        e = cls(message)
    except Exception:  # noqa: BLE001 - SystemExit, KeyboardInterrupt, an exception that needs other arguments
        e = CandidateError(f"{name}: {message}")
    e._secondtry_origin = (name, message, line)  # type: ignore[attr-defined]
    return e
