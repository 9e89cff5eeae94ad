"""Streams: generation fed as work appears, for the loop's generation stages.

    stream = open_stream(sampler, params, first=conversations, turns=2)
    stream.submit(tag, conversation, params, n=4, seed=s, key=problem_id, counts=True)
    for tag, completions in stream.poll(): ...      # what finished since the last poll
    stream.busy(), stream.wants_more(), stream.close()

A stage submits its first attempts, judges each request's completions as they come back, and
submits a retry turn the moment a first attempt is judged wrong. A sampler with a `stream`
method (the `hf` backend on its engine) runs them all in one running batch: a retry joins it at
once and the engine never drains between turns or chunks. Any other sampler gets `Waves`: what
was submitted is generated at the next poll, one `generate` call per (params, n, seed) in the
order of submission, which is the order and grouping the loop used turn by turn, so its records
are the same as before streams.

Sample j of a request is seeded by (seed, key, j) on every path, so a problem draws the same
text whichever way it was batched (up to float rounding of batched matrix products on a GPU).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..config import SamplingConfig
from ..types import Completion, Message


@runtime_checkable
class Stream(Protocol):
    """Generation fed while it runs (see the module docstring)."""

    lookahead: bool  # True: a stage may submit its next chunk while this one runs

    def submit(
        self,
        tag: Hashable,
        conversation: Sequence[Message],
        params: SamplingConfig,
        *,
        n: int = 1,
        seed: int = 0,
        key: str = "0",
        counts: bool = False,
    ) -> None: ...

    def poll(self) -> list[tuple[Hashable, list[Completion]]]:
        """Run a while; the requests (tag, their n completions) that finished since the last poll."""
        ...

    def busy(self) -> bool:
        """Requests submitted and not handed back yet."""
        ...

    def wants_more(self) -> bool:
        """Whether more work would keep it busy (few requests wait for a slot)."""
        ...

    def close(self) -> None: ...


@dataclass
class _Pending:
    tag: Hashable
    conversation: Sequence[Message]
    params: SamplingConfig
    n: int
    seed: int
    key: str
    counts: bool


class Waves:
    """A stream over any sampler's `generate`: what was submitted is generated when polled, one call per
    (params, n, seed) group in order of first submission, conversations in submission order. A stage
    feeds it one chunk at a time (`lookahead` is False)."""

    lookahead = False

    def __init__(self, sampler: Any, progress: Callable[[int], None] | None = None) -> None:
        self.sampler, self.progress = sampler, progress
        self.pending: list[_Pending] = []

    def submit(
        self,
        tag: Hashable,
        conversation: Sequence[Message],
        params: SamplingConfig,
        *,
        n: int = 1,
        seed: int = 0,
        key: str = "0",
        counts: bool = False,
    ) -> None:
        self.pending.append(_Pending(tag, conversation, params, n, seed, key, counts))

    def poll(self) -> list[tuple[Hashable, list[Completion]]]:
        groups: dict[tuple, list[_Pending]] = {}
        for p in self.pending:
            groups.setdefault((p.params.model_dump_json(), p.n, p.seed, p.counts), []).append(p)
        self.pending = []
        out: list[tuple[Hashable, list[Completion]]] = []
        for batch in groups.values():
            first = batch[0]
            completions = self.sampler.generate(
                [p.conversation for p in batch],
                first.params,
                n=first.n,
                seed=first.seed,
                keys=[p.key for p in batch],
                progress=self.progress if first.counts else None,
            )
            out += [(p.tag, cs) for p, cs in zip(batch, completions)]
        return out

    def busy(self) -> bool:
        return bool(self.pending)

    def wants_more(self) -> bool:
        return not self.pending

    def close(self) -> None:
        self.pending = []


def open_stream(
    sampler: Any,
    params: Sequence[SamplingConfig],
    *,
    first: Sequence[Sequence[Message]] = (),
    turns: int = 1,
    progress: Callable[[int], None] | None = None,
) -> Stream:
    """The sampler's own stream when it has one (`sampler.stream(params, first=, turns=, progress=)`: the
    sampling settings the stage uses, its first-turn conversations and the most turns a chain takes, for
    sizing), else `Waves` over its `generate`."""
    make = getattr(sampler, "stream", None)
    if make is not None:
        made = make(params, first=first, turns=turns, progress=progress)
        if made is not None:
            return made
    return Waves(sampler, progress)
