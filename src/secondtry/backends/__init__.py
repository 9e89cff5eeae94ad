"""Backends: a Sampler turns conversations into completions.

    sampler = BACKENDS[name](model_path, cfg, log)   # openai also takes servers= (backends/servers.py)
    sampler.generate(conversations, params, n=1, seed=0, progress=None) -> list[list[Completion]]
    sampler.close()

`generate` returns, for every conversation, `n` completions. The same inputs and seed give
the same outputs on the same machine.
"""

from __future__ import annotations

from .hf import HFSampler
from .openai import OpenAISampler

BACKENDS = {
    "hf": HFSampler,
    "openai": OpenAISampler,
}
