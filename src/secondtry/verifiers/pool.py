"""Run a verifier over many items in worker processes, with a hard per-item wall-clock limit.

Workers are started with 'spawn' (never fork: the parent may hold torch threads) and run
items on their main thread, so math-verify's own SIGALRM timeouts work there as well.
The parent kills (SIGKILL) and replaces a worker whose item overruns `timeout_s` or that
dies; that item gets `correct=None` and every other item is still judged.

A worker is a fresh interpreter that looks its verifier up by name, so it imports the run's plugins
(`plugins=`, the config's `plugins`, and the `secondtry.plugins` entry points) before the lookup; a
plugin that fails there stops the pool with the worker's error.

As always with 'spawn', a script that uses the pool needs an `if __name__ == "__main__":` guard.

>>> from secondtry.types import Problem
>>> items = [(Problem(id="a", prompt="", answer="2"), r"\\boxed{2}"), (Problem(id="b", prompt="", answer="2"), "3")]
>>> [v.correct for v in verify_all("math", items, workers=0)]
[True, False]
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import pickle
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.reduction import ForkingPickler
from typing import Any, Protocol

from secondtry.types import Problem, Verdict

VerifyFn = Callable[[Problem, str], Verdict]
Progress = Callable[[int], Any]

_STARTUP_S = 120.0  # a worker that is not ready by then means a broken environment
_WARMUP = (Problem(id="warmup", prompt="", answer="1"), "\\boxed{1}")


class Judge(Protocol):
    """What the loop needs of a verifier: verdicts in item order, and closing. `VerifierPool` is one.
    A judge with a true `threaded` attribute is called from a thread beside the generation engine (one
    thread at a time); without it, on the main thread between engine steps."""

    def map(
        self, items: Iterable[tuple[Problem, str]], progress: Progress | None = None
    ) -> list[Verdict]: ...

    def close(self) -> None: ...


def _resolve(name: str | None, fn: VerifyFn | None, plugins: Sequence[str] = ()) -> VerifyFn:
    if fn is not None:
        return fn
    from secondtry.plugins import load
    from secondtry.verifiers import VERIFIERS  # lazy: the registry imports this package

    load(plugins)
    if name not in VERIFIERS:
        raise KeyError(f"unknown verifier {name!r}; valid names: {sorted(VERIFIERS)}")
    return VERIFIERS[name]


def _judge(fn: VerifyFn, item: Any) -> Verdict:
    """One verdict, whatever the item or the verifier does short of killing the process."""
    try:
        problem, completion = item
        v = fn(problem, completion)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # SystemExit, MemoryError, math-verify's TimeoutException too
        return Verdict(correct=None, reason=f"cannot judge: {type(e).__name__}: {str(e)[:200]}")
    if not isinstance(v, Verdict):
        return Verdict(correct=None, reason=f"cannot judge: verifier returned {type(v).__name__}")
    return v


def _exit_when_orphaned(ppid: int) -> None:
    while os.getppid() == ppid:
        time.sleep(1.0)
    os._exit(1)


def _worker_main(
    conn: Connection,
    name: str | None,
    fn: VerifyFn | None,
    options: Mapping[str, Any],
    plugins: Sequence[str] = (),
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # a parent killed while this worker is stuck in an item would otherwise leave it running forever
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    try:
        verify = functools.partial(_resolve(name, fn, plugins), **options)
    except Exception as e:  # a plugin that does not import here, or a name it did not register
        conn.send(("failed", f"{type(e).__name__}: {e}"))
        return
    if fn is None:
        _judge(verify, _WARMUP)  # pay lazy imports (sympy, antlr) before the first timed item
    conn.send("ready")
    try:
        while (chunk := conn.recv()) is not None:
            for idx, item in chunk:
                v = _judge(verify, item)
                try:
                    conn.send((idx, v))
                except (pickle.PicklingError, TypeError, AttributeError):  # pickling fails before any write
                    conn.send((idx, Verdict(correct=None, reason="cannot judge: verdict does not pickle")))
    except (EOFError, OSError):  # parent gone
        pass


class _Worker:
    def __init__(self, proc: Any, conn: Connection) -> None:
        self.proc, self.conn = proc, conn
        self.ready = False
        self.since = time.monotonic()  # start of the current item (or of startup)
        self.inflight: deque[int] = deque()


class VerifierPool:
    """Reusable pool: workers start once, in the constructor, and serve every `.map`.

    `fn` (a module-level function, so that it pickles) replaces the registry lookup; for tests.
    `options` are the verifier's keyword options (`verifier.options`, checked by `check_options`).
    `plugins` are imported (with the entry points) here and in each worker before the verifier is looked up.
    `workers=0` judges inline, in this process, with no hard timeout. Not thread-safe.
    After a `.map`, `timeouts`, `crashes` and `max_overrun_s` (how far past `timeout_s` the
    slowest killed item ran before its verdict) describe what the hard limit had to do.
    """

    def __init__(
        self,
        name: str | None = None,
        workers: int = 2,
        timeout_s: float = 10.0,
        *,
        options: Mapping[str, Any] | None = None,
        fn: VerifyFn | None = None,
        chunk_size: int = 16,
        plugins: Sequence[str] = (),
    ) -> None:
        self.options, self.plugins = dict(options or {}), list(plugins)
        # a bad name raises KeyError here, a plugin that fails to import PluginError
        self._fn = functools.partial(_resolve(name, fn, self.plugins), **self.options)
        self.name, self._child_fn = (name, None) if fn is None else (None, fn)
        self.workers, self.timeout_s, self.chunk_size = workers, timeout_s, max(1, chunk_size)
        self._ctx = mp.get_context("spawn")
        self._pool = [self._start() for _ in range(workers)]
        self.restarts = 0  # workers replaced after a timeout or a crash
        self.timeouts = self.crashes = 0
        self.max_overrun_s = 0.0

    @property
    def threaded(self) -> bool:
        """Whether `map` may be called from a thread other than the main one (one thread at a time): true when
        the verdicts are made in worker processes (inline verifiers may use SIGALRM, a main-thread signal)."""
        return self.workers > 0

    def _start(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_worker_main,
            args=(child, self.name, self._child_fn, self.options, self.plugins),
            daemon=True,
            name="secondtry-verifier",
        )
        proc.start()
        child.close()
        return _Worker(proc, parent)

    def _replace(self, w: _Worker) -> None:
        if w.proc.is_alive():
            w.proc.kill()
        w.proc.join()
        w.conn.close()
        self._pool[self._pool.index(w)] = self._start()
        self.restarts += 1

    def map(self, items: Iterable[tuple[Problem, str]], progress: Progress | None = None) -> list[Verdict]:
        """Verdicts in the order of `items`. `progress(n)` gets the number of items just finished."""
        items = list(items)
        if self.workers == 0:
            out = []
            for item in items:
                out.append(_judge(self._fn, item))
                if progress:
                    progress(1)
            return out
        if not self._pool:
            raise RuntimeError("VerifierPool is closed")
        results: list[Verdict | None] = [None] * len(items)
        todo = deque(range(len(items)))
        # small batches are still spread over every worker
        size = max(1, min(self.chunk_size, -(-len(items) // (4 * self.workers))))
        try:
            self._run(items, results, todo, size, progress)
        except BaseException:
            for w in list(self._pool):  # don't leave stale work behind for the next map
                if w.inflight:
                    self._replace(w)
            raise
        return results  # type: ignore[return-value]

    def _run(
        self,
        items: Sequence[Any],
        results: list[Verdict | None],
        todo: deque[int],
        size: int,
        progress: Progress | None,
    ) -> None:
        left = len(items)

        def finish(i: int, v: Verdict) -> None:
            nonlocal left
            results[i] = v
            left -= 1
            if progress:
                progress(1)

        def drain(w: _Worker) -> bool:
            """Read what the worker has sent; False if its pipe is closed (it died)."""
            try:
                while w.conn.poll():
                    msg = w.conn.recv()
                    w.since = time.monotonic()
                    if msg == "ready":
                        w.ready = True
                    elif isinstance(msg, tuple) and msg[0] == "failed":
                        self.close()
                        raise RuntimeError(f"verifier worker failed to start: {msg[1]}")
                    else:
                        idx, v = msg
                        w.inflight.popleft()
                        finish(idx, v)
            except (EOFError, OSError):
                return False
            return True

        def fail(w: _Worker, reason: str) -> None:
            if not w.ready:
                code = w.proc.exitcode
                self.close()
                raise RuntimeError(f"verifier worker failed to start ({reason}, exit code {code})")
            if w.inflight:
                finish(w.inflight.popleft(), Verdict(correct=None, reason=f"cannot judge: {reason}"))
                todo.extendleft(reversed(w.inflight))  # the rest of its chunk goes to the others
                w.inflight.clear()
            self._replace(w)

        while left:
            for w in self._pool:
                if w.ready and not w.inflight and todo:
                    chunk = [todo.popleft() for _ in range(min(size, len(todo)))]
                    todo.extendleft(reversed(self._send(w, chunk, items, finish)))
            if not left:
                break
            limits = [
                w.since + (self.timeout_s if w.ready else _STARTUP_S)
                for w in self._pool
                if w.inflight or not w.ready
            ]
            timeout = max(0.0, min(limits) - time.monotonic()) if limits else None
            ready = set(wait([w.conn for w in self._pool] + [w.proc.sentinel for w in self._pool], timeout))
            for w in list(self._pool):
                if w.conn in ready or w.proc.sentinel in ready:
                    if not drain(w) or not w.proc.is_alive():
                        w.proc.join(1)
                        self.crashes += bool(w.ready)
                        fail(w, f"worker died (exit code {w.proc.exitcode})")
            now = time.monotonic()
            for w in list(self._pool):
                if w.inflight or not w.ready:
                    limit = self.timeout_s if w.ready else _STARTUP_S
                    if now - w.since > limit and drain(w) and now - w.since > limit:
                        if w.ready:
                            self.timeouts += 1
                            self.max_overrun_s = max(self.max_overrun_s, time.monotonic() - w.since - limit)
                        fail(w, f"timed out after {limit}s")

    def _send(
        self, w: _Worker, chunk: list[int], items: Sequence[Any], finish: Callable[[int, Verdict], None]
    ) -> list[int]:
        """Hand `chunk` to an idle worker; returns the indices that could not be sent."""
        payload = [(i, items[i]) for i in chunk]
        try:
            data = ForkingPickler.dumps(payload)
        except Exception:  # some item does not pickle: judge those apart, send the rest
            payload = []
            for i in chunk:
                try:
                    pickle.dumps(items[i])
                    payload.append((i, items[i]))
                except Exception as e:
                    finish(
                        i,
                        Verdict(
                            correct=None, reason=f"cannot judge: item does not pickle: {type(e).__name__}"
                        ),
                    )
            if not payload:
                return []
            data = ForkingPickler.dumps(payload)
        try:
            w.conn.send_bytes(data)  # the worker is idle in recv(), so this cannot block for long
        except (OSError, ValueError):  # it died meanwhile: its sentinel fires, the items go back
            return [i for i, _ in payload]
        w.inflight.extend(i for i, _ in payload)
        w.since = time.monotonic()
        return []

    def close(self) -> None:
        pool, self._pool = self._pool, []
        for w in pool:
            try:
                w.conn.send(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 2.0
        for w in pool:
            w.proc.join(max(0.0, deadline - time.monotonic()))
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join()
            w.conn.close()

    def __enter__(self) -> VerifierPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def verify_all(
    name: str | None,
    items: Iterable[tuple[Problem, str]],
    workers: int = 2,
    timeout_s: float = 10.0,
    progress: Progress | None = None,
    *,
    options: Mapping[str, Any] | None = None,
    fn: VerifyFn | None = None,
    plugins: Sequence[str] = (),
) -> list[Verdict]:
    """One-shot `VerifierPool(...).map(items)`; workers start and stop within the call."""
    with VerifierPool(name, workers, timeout_s, options=options, fn=fn, plugins=plugins) as pool:
        return pool.map(items, progress)
