"""The `hf` backend: on a GPU, the generation engine (backends/engine, docs/engine.md) over the
model's transformers weights; on a CPU, or with `backend.engine: off`, or for a model the engine
does not support, transformers `generate` as below.

Conversations are rendered with the tokenizer's chat template, expanded `n` times, sorted
by length (less padding; longest first so an out-of-memory error shows up at once) and
generated in batches of `backend.batch_size`, left-padded. A CUDA out-of-memory error halves
the batch and goes on.

Sampling is seeded per row, not per batch: the noise that picks row r's token at step t is a
hash of (seed, the conversation's key, its sample index, t, token id) — Gumbel-max, i.e. the
argmax of scores + Gumbel noise, which is a draw from softmax(scores). A sample therefore does
not depend on which batch, chunk or neighbours its row had: a resumed chunk, a smaller batch
after an out-of-memory error or another chunk size draw the same tokens (up to float rounding
of batched matmuls on a GPU; on CPU runs repeat byte for byte).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..config import Config, SamplingConfig
from ..log import Log
from ..memory import free_memory, is_oom
from ..models import eos_ids, load_model, load_tokenizer, resolve_device
from ..types import Completion, Message
from .engine.sampling import mix32
from .engine.sampling import request_key as row_seed  # one keying scheme for both generation paths


def render(
    tokenizer, messages: Sequence[Message], chat_template_kwargs: dict, *, generation_prompt: bool = True
) -> str:
    """The exact text the model is conditioned on."""
    return tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in messages],
        tokenize=False,
        add_generation_prompt=generation_prompt,
        **chat_template_kwargs,
    )


def gumbel_noise(keys: torch.Tensor, step: int, tokens: torch.Tensor) -> torch.Tensor:
    """Gumbel(0, 1) noise [rows, k] for token ids `tokens` [rows, k]: a function of (row key, step, token id).

    >>> key = torch.tensor([7])
    >>> bool(gumbel_noise(key, 3, torch.tensor([[5]])) == gumbel_noise(key, 3, torch.tensor([[9, 5]]))[0, 1])
    True
    """
    state = mix32(keys.long() ^ mix32(torch.full_like(keys.long(), step) ^ 0x9E3779B9))
    bits = mix32(state[:, None] ^ mix32(tokens.long() + 0x632BE5AB))
    u = ((bits >> 9).to(torch.float32) + 0.5) * 2.0**-23  # 23 bits: k + 0.5 is exact, so 0 < u < 1
    return -torch.log(-torch.log(u))


class SeededSampling:
    """A logits processor that samples with per-row seeds (generate runs it with do_sample=False).

    Temperature, top-k and top-p are applied as transformers applies them when sampling; the
    chosen token is then the argmax of the warped scores plus `gumbel_noise`.
    """

    def __init__(
        self, params: SamplingConfig, seeds: list[int], prompt_width: int, device: torch.device
    ) -> None:
        from transformers import (
            LogitsProcessorList,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        warpers = [TemperatureLogitsWarper(params.temperature)]
        if params.top_k:
            warpers.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1.0:
            warpers.append(TopPLogitsWarper(params.top_p))
        self.warp = LogitsProcessorList(warpers)
        self.top_k = params.top_k
        self.seeds = torch.tensor(seeds, dtype=torch.int64, device=device)
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = self.warp(input_ids, scores)
        step = input_ids.shape[1] - self.prompt_width  # left padding: the same step for every row
        if self.top_k and self.top_k < scores.shape[1]:  # noise only where a token can still win
            values, tokens = scores.topk(self.top_k, dim=-1)
        else:
            tokens = torch.arange(scores.shape[1], device=scores.device).expand_as(scores)
            values = scores
        noisy = torch.full_like(scores, float("-inf"))
        return noisy.scatter_(1, tokens, values + gumbel_noise(self.seeds, step, tokens))


class HFSampler:
    """transformers `generate` in length-sorted, left-padded batches."""

    def __init__(self, model_path: str, cfg: Config, log: Log = Log()) -> None:
        self.cfg, self.log = cfg, log
        self.device = resolve_device(cfg.backend.device)
        self.tokenizer = load_tokenizer(model_path)
        self.tokenizer.padding_side = "left"
        self.model = load_model(model_path, cfg.model.dtype, self.device)
        self.batch_size = cfg.backend.batch_size
        self.oom_backoffs = 0
        self.eos_ids = eos_ids(self.model, self.tokenizer)
        wanted = cfg.backend.engine == "on" or (cfg.backend.engine == "auto" and self.device.type == "cuda")
        self.engine = self._engine() if wanted else None

    def _engine(self):
        """The generation engine (docs/engine.md) when it supports this model; else None, and `generate` it is."""
        from .engine import Engine, unsupported
        from .engine.scheduler import triton_available

        needs_triton = self.device.type == "cuda"  # on a CPU the engine runs its torch path
        why = unsupported(self.model) or (
            None if not needs_triton or triton_available() else "Triton is not installed"
        )
        if why is not None:
            self.log.warn(f"generation engine off ({why}); using transformers generate")
            return None
        return Engine(self.model, self.eos_ids, max_slots=self.cfg.backend.max_slots, warn=self.log.warn)

    def render(self, messages: Sequence[Message]) -> str:
        return render(self.tokenizer, messages, self.cfg.model.chat_template_kwargs)

    def encode(self, conversations: Sequence[Sequence[Message]]) -> list[list[int]]:
        """Each conversation's prompt token ids: its chat template rendered, no special tokens added."""
        if not conversations:
            return []
        rendered = [self.render(c) for c in conversations]
        return self.tokenizer(rendered, add_special_tokens=False)["input_ids"]

    def stream(
        self,
        params: Sequence[SamplingConfig],
        *,
        first: Sequence[Sequence[Message]] = (),
        turns: int = 1,
        progress: Callable[[int], None] | None = None,
    ) -> EngineStream | None:
        """One engine session for a stage (backends/stream.py); None without the engine (`generate` in waves)."""
        if self.engine is None:
            return None
        return EngineStream(self, params, first, turns, progress)

    def generate(
        self,
        conversations: Sequence[Sequence[Message]],
        params: SamplingConfig,
        n: int = 1,
        seed: int = 0,
        progress: Callable[[int], None] | None = None,
        keys: Sequence[str] | None = None,
    ) -> list[list[Completion]]:
        """`n` completions per conversation. Sample j of conversation i is seeded by (seed, keys[i], j);
        keys default to the positions, pass stable ids (problem ids) to make samples independent of them."""
        keys = [str(i) for i in range(len(conversations))] if keys is None else [str(k) for k in keys]
        ids = self.encode(conversations)
        if self.engine is not None:  # sample j of a problem is keyed by (seed, its key, j), as below
            from .engine import generate_completions

            return generate_completions(
                self.engine,
                self.tokenizer,
                ids,
                params,
                n=n,
                seed=seed,
                progress=progress,
                seeds=[row_seed(seed, k, 0) for k in keys],
            )
        jobs = [(i, j) for i in range(len(ids)) for j in range(n)]
        jobs.sort(key=lambda job: -len(ids[job[0]]))
        out: list[list[Completion | None]] = [[None] * n for _ in ids]
        start = 0
        while start < len(jobs):
            size = min(self.batch_size, len(jobs) - start)
            chunk = jobs[start : start + size]
            try:
                completions = self._generate_batch(
                    [ids[i] for i, _ in chunk], params, [row_seed(seed, keys[i], j) for i, j in chunk]
                )
            except Exception as e:
                if not is_oom(e) or size == 1:
                    raise
                completions = None
            if completions is None:
                free_memory()  # outside the except block: its traceback pins the failed batch's tensors
                self.batch_size = max(1, size // 2)  # later calls keep the smaller batch
                self.oom_backoffs += 1
                self.log.warn(
                    f"out of GPU memory generating a batch of {size}; going on with batch {self.batch_size}"
                )
                continue
            for (i, j), completion in zip(chunk, completions):
                out[i][j] = completion
            start += size
            if progress:
                progress(size)
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def _generate_batch(
        self, batch: list[list[int]], params: SamplingConfig, seeds: list[int]
    ) -> list[Completion]:
        from transformers import LogitsProcessorList

        width = max(len(x) for x in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in batch], device=self.device)
        attention = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in batch], device=self.device)
        sampling = [SeededSampling(params, seeds, width, self.device)] if params.temperature > 0 else []
        generated = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            max_new_tokens=params.max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,  # sampling, if any, is SeededSampling
            logits_processor=LogitsProcessorList(sampling),
            eos_token_id=self.eos_ids,
            pad_token_id=pad,
        )[:, width:].tolist()
        results = []
        for x, new in zip(batch, generated):
            stop = next((k for k, t in enumerate(new) if t in self.eos_ids), None)
            body = new if stop is None else new[:stop]
            results.append(
                Completion(
                    text=self.tokenizer.decode(body, skip_special_tokens=True),
                    n_tokens=len(body) + (stop is not None),
                    finish_reason="length" if stop is None else "stop",
                    prompt_tokens=len(x),
                )
            )
        return results

    def close(self) -> None:
        if getattr(self, "engine", None) is not None:
            self.engine.release()
            self.engine = None
        del self.model
        free_memory()


RETRY_ROOM = 256  # tokens a retry turn adds to a conversation besides the failed completion (sizing only)


class EngineStream:
    """A stage's generation as one engine session (backends/stream.py): requests join the running batch
    as they are submitted. The session's sampling setting is the stage's sampled one; greedy requests
    (temperature 0) ride in the same batch with a per-slot flag. Its cache holds the longest first-turn
    prompt, a generation and one retry turn; a request of a later turn that is longer waits until the rest
    of the stage is done, and the engine then rebuilds its cache for it (with a warning)."""

    lookahead = True

    def __init__(
        self,
        sampler: HFSampler,
        params: Sequence[SamplingConfig],
        first: Sequence[Sequence[Message]],
        turns: int,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.sampler, self.engine, self.progress = sampler, sampler.engine, progress
        sampled = {(p.temperature, p.top_k, p.top_p) for p in params if p.temperature > 0}
        if len(sampled) > 1:
            raise ValueError(f"one engine session samples with one setting; got {sorted(sampled)}")
        self.setting = next(iter(sampled), (0.0, 0, 1.0))
        self.max_new = max(p.max_new_tokens for p in params)
        first_ids = sampler.encode(first)
        # tokenized once: every chain of a problem (greedy and sampled evaluation) reuses its first prompt's ids
        self.first_ids = {tuple(c): ids for c, ids in zip(first, first_ids)}
        longest = max(map(len, first_ids), default=0)
        # first attempts and one retry turn fit; a longer chain's later turns may not, and wait for the rest
        # of the stage (scheduler.py): a cache for every turn's worst case would hold far fewer sequences
        max_len = longest + self.max_new + min(turns - 1, 1) * (self.max_new + RETRY_ROOM)
        temperature, top_k, top_p = self.setting
        self.engine.open(max(max_len, 2), self.max_new, temperature=temperature, top_k=top_k, top_p=top_p)
        self.requests: dict[int, tuple[Any, int, bool, list[Completion | None]]] = {}

    def submit(
        self,
        tag: Any,
        conversation: Sequence[Message],
        params: SamplingConfig,
        *,
        n: int = 1,
        seed: int = 0,
        key: str = "0",
        counts: bool = False,
    ) -> None:
        greedy = params.temperature <= 0
        if not greedy and (params.temperature, params.top_k, params.top_p) != self.setting:
            raise ValueError(
                f"this session samples with {self.setting}; a request asked for "
                f"{(params.temperature, params.top_k, params.top_p)}"
            )
        ids = self.first_ids.get(tuple(conversation)) or self.sampler.encode([conversation])[0]
        r = self.engine.submit(
            ids,
            n=n,
            seed=row_seed(seed, key, 0),
            request=0,
            max_new_tokens=params.max_new_tokens,
            greedy=greedy,
        )
        self.requests[r] = (tag, len(ids), counts, [None] * n)

    def poll(self) -> list[tuple[Any, list[Completion]]]:
        from .engine import completion

        done = []
        for r, j, out in self.engine.step():
            tag, prompt_tokens, counts, outs = self.requests[r]
            outs[j] = completion(self.sampler.tokenizer, out, prompt_tokens)
            if counts and self.progress:
                self.progress(1)
            if all(o is not None for o in outs):
                done.append((tag, outs))
                del self.requests[r]
        return done  # type: ignore[return-value]

    def busy(self) -> bool:
        return self.engine.busy()

    def wants_more(self) -> bool:
        return self.engine.waiting() < max(1, self.engine.slots)

    def close(self) -> None:
        self.requests, self.first_ids = {}, {}
