"""Backends: a Sampler turns conversations into completions.

    sampler = BACKENDS[name](model_path, cfg, log)   # openai also takes servers= (backends/servers.py)
    sampler.generate(conversations, params, n=1, seed=0, progress=None, keys=None) -> list[list[Completion]]
    sampler.render(messages) -> str                  # the prompt text the model sees
    sampler.close()

`generate` returns, for every conversation, `n` completions. The same inputs and seed give
the same outputs on the same machine. `Sampler` is the contract the loop relies on (all of it);
`register_backend` adds a backend (a plugin's: secondtry/plugins.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from secondtry.config import Config, SamplingConfig
from secondtry.log import Log
from secondtry.plugins import register
from secondtry.types import Completion, Message

from .hf import HFSampler
from .openai import OpenAISampler


@runtime_checkable
class Sampler(Protocol):
    """What the loop calls on a backend's sampler."""

    def generate(
        self,
        conversations: Sequence[Sequence[Message]],
        params: SamplingConfig,
        n: int = 1,
        seed: int = 0,
        progress: Callable[[int], None] | None = None,
        keys: Sequence[str] | None = None,
    ) -> list[list[Completion]]:
        """`n` completions per conversation, in order. Sample j of conversation i is seeded by
        (seed, keys[i], j) (keys default to the positions), so a problem samples the same text whatever
        else is in the call. `progress(k)` counts finished completions."""
        ...

    def render(self, messages: Sequence[Message]) -> str:
        """The conversation as the prompt text the model is given (recorded as what a retry sees)."""
        ...

    def close(self) -> None:
        """Free the model's memory (the loop closes a sampler before training and at the end)."""
        ...


class SamplerFactory(Protocol):
    """A backend: `factory(model_path, cfg, log, **extra) -> Sampler` (extra: `servers=`, the run's launcher,
    when `backend.launch` is set). A Sampler class is one."""

    def __call__(self, model_path: str, cfg: Config, log: Log, **extra: Any) -> Sampler: ...


BACKENDS: dict[str, Any] = {
    "hf": HFSampler,
    "openai": OpenAISampler,
}


OPTIONS: dict[str, type[BaseModel]] = {}  # a plugin backend's model of its `backend.options`, if it gave one


def register_backend(name: str, factory: Any = None, *, options: type[BaseModel] | None = None) -> Any:
    """Add a backend: `register_backend("name", SamplerClass)`, or `@register_backend("name")` on a class (or
    function) called as `factory(model_path, cfg, log, **extra)` that returns a `Sampler`. A name already
    taken is refused. Its config section is `backend.name`, `batch_size`, `device` and `options`; `options`
    (a pydantic model) checks `backend.options` before a run, and `backend_options(cfg)` gives them typed."""

    def add(obj: Any) -> Any:
        register(BACKENDS, "backend", name, obj)
        if options is not None:
            OPTIONS[name] = options
        return obj

    return add if factory is None else add(factory)


def backend_options(cfg: Config) -> BaseModel | None:
    """A plugin backend's `backend.options` as the model it registered (None: it registered none). Raises
    ValueError naming each bad key as `backend.options.KEY`."""
    model = OPTIONS.get(cfg.backend.name)
    if model is None:
        return None
    try:
        return model.model_validate(getattr(cfg.backend, "options", {}))
    except ValidationError as e:
        raise ValueError(
            "\n".join(f"backend.options.{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        ) from None
