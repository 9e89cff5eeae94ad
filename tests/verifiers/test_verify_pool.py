"""Verifier pool: order, hard per-item timeout, crashes, reuse, inline path."""

from __future__ import annotations

import ctypes
import json
import os
import time
from pathlib import Path

import pytest

from secondtry.types import Problem, Verdict
from secondtry.verifiers.pool import VerifierPool, verify_all

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TIMEOUT = 1.0
# a pool that fails to cut off a hang must fail, not stall
pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def toy(problem: Problem, completion: str, *, suffix: str = "") -> Verdict:
    """Test-only verifier; module-level so that spawned workers can import it."""
    completion = completion + suffix if isinstance(completion, str) else completion
    if completion == "hang":
        time.sleep(3600)
    elif completion == "exit":
        os._exit(3)
    elif completion == "segv":
        ctypes.string_at(0)
    elif completion == "raise":
        raise ValueError("bad item")
    elif completion == "none":
        return None  # type: ignore[return-value]
    return Verdict(correct=completion == problem.answer, extracted=completion, reason=f"pid {os.getpid()}")


def _items(n: int) -> list[tuple[Problem, str]]:
    return [(Problem(id=str(i), prompt="", answer=str(i % 3)), str(i % 2)) for i in range(n)]


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(fn=toy, workers=2, timeout_s=TIMEOUT, chunk_size=4) as p:
        p.map(_items(2))  # wait until the workers are up
        yield p


def _correct(vs: list[Verdict]) -> list[bool | None]:
    return [v.correct for v in vs]


def test_order_preserved_and_progress(pool: VerifierPool) -> None:
    items = _items(101)
    ticks: list[int] = []
    out = pool.map(items, progress=ticks.append)
    assert _correct(out) == [c == p.answer for p, c in items]
    assert [v.extracted for v in out] == [c for _, c in items]
    assert sum(ticks) == 101


def test_workers_are_reused(pool: VerifierPool) -> None:
    pids = {w.proc.pid for w in pool._pool}
    pool.map(_items(20))
    pool.map(_items(20))
    assert {w.proc.pid for w in pool._pool} == pids


def test_hanging_item_cut_off(pool: VerifierPool) -> None:
    items = _items(10) + [(Problem(id="h", prompt="", answer="0"), "hang")] + _items(10)
    t = time.monotonic()
    out = pool.map(items)
    assert time.monotonic() - t < TIMEOUT + 1.0
    assert out[10] == Verdict(correct=None, reason=f"cannot judge: timed out after {TIMEOUT}s")
    assert _correct(out[:10] + out[11:]) == [c == p.answer for p, c in items[:10] + items[11:]]
    assert None not in _correct(pool.map(_items(6)))  # the replacement worker serves


def test_timeouts_counted_with_overrun(pool: VerifierPool) -> None:
    before = pool.timeouts
    pool.map([(Problem(id="h", prompt="", answer="0"), "hang")] + _items(4))
    assert pool.timeouts == before + 1
    assert 0.0 <= pool.max_overrun_s < 1.0  # killed within a second of its limit
    assert pool.crashes == 0


def test_options_reach_the_workers() -> None:
    items = [(Problem(id="a", prompt="", answer="12"), "1")]
    with VerifierPool(fn=toy, workers=1, timeout_s=TIMEOUT, options={"suffix": "2"}) as p:
        assert p.map(items)[0].extracted == "12"
    assert verify_all("unused", items, workers=0, fn=toy, options={"suffix": "2"})[0].correct is True


def test_two_hangs_at_once(pool: VerifierPool) -> None:
    hang = (Problem(id="h", prompt="", answer="0"), "hang")
    items = [hang, hang] + _items(8)
    t = time.monotonic()
    out = pool.map(items)
    assert time.monotonic() - t < 2 * TIMEOUT + 3.0  # both workers are stuck; replacements must start
    assert _correct(out[:2]) == [None, None] and None not in _correct(out[2:])


@pytest.mark.parametrize(("bad", "code"), [("exit", 3), ("segv", -11)])
def test_crashing_item(pool: VerifierPool, bad: str, code: int) -> None:
    items = _items(7) + [(Problem(id="c", prompt="", answer="0"), bad)] + _items(7)
    crashes = pool.crashes
    out = pool.map(items)
    assert pool.crashes == crashes + 1
    assert out[7].correct is None and out[7].reason == f"cannot judge: worker died (exit code {code})"
    assert None not in _correct(out[:7] + out[8:])


def test_raising_and_bad_items(pool: VerifierPool) -> None:
    unpicklable = Problem(id="u", prompt="", answer="0", meta={"f": lambda: 0})
    items = [
        (Problem(id="r", prompt="", answer="0"), "raise"),
        "not a pair",
        (unpicklable, "0"),
        (Problem(id="n", prompt="", answer="0"), "none"),
        *_items(3),
    ]
    out = pool.map(items)  # type: ignore[arg-type]
    assert out[0].correct is None and "ValueError: bad item" in out[0].reason
    assert out[1].correct is None and out[2].correct is None and "pickle" in out[2].reason
    assert out[3].correct is None and "NoneType" in out[3].reason
    assert None not in _correct(out[4:])


def test_empty(pool: VerifierPool) -> None:
    assert pool.map([]) == []


def test_unknown_name() -> None:
    with pytest.raises(KeyError, match="math"):
        VerifierPool("no-such-verifier", workers=0)


def test_inline_matches_toy() -> None:
    items = _items(10) + [(Problem(id="r", prompt="", answer="0"), "raise")]
    out = verify_all("unused", items, workers=0, fn=toy)
    assert _correct(out) == [c == p.answer for p, c in items[:10]] + [None]


@pytest.mark.skipif(not (DATA / "math").is_dir(), reason=f"no MATH data at {DATA / 'math'}")
def test_math_pool_matches_inline() -> None:
    rows = [json.loads(line) for line in (DATA / "math" / "test.jsonl").open()][:200]
    probs = [Problem(id=r["unique_id"], prompt=r["problem"], answer=r["answer"]) for r in rows]
    items = [(p, r["solution"]) for p, r in zip(probs[:100], rows)]
    items += [(p, r["solution"]) for p, r in zip(probs[100:], rows[101:] + rows[:1])]  # mostly wrong
    inline = verify_all("math", items, workers=0)
    pooled = verify_all("math", items, workers=2, timeout_s=30)
    assert pooled == inline
    assert (
        sum(v.correct is True for v in pooled[:100]) == 100
        and sum(v.correct is False for v in pooled[100:]) > 90
    )
