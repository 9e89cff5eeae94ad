"""The `hf` backend: batched sampling with transformers `generate`, on CPU or GPU.

Conversations are rendered with the tokenizer's chat template, expanded `n` times, sorted
by length (less padding; longest first so an out-of-memory error shows up at once) and
generated in batches of `backend.batch_size`, left-padded. Each batch is seeded from
(seed, batch index), so a run repeats exactly on the same machine. A CUDA out-of-memory
error halves the batch and goes on.
"""

from __future__ import annotations

import gc
import hashlib
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..config import Config, SamplingConfig
from ..log import Log
from ..types import Completion, Message


class ModelLoadError(ValueError):
    """A model or tokenizer that cannot be used; the message says why and what to do."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"backend.device={name} but no CUDA device is visible; use backend.device=cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    _check_model_path(path)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as e:
        raise ModelLoadError(f"cannot load a tokenizer from {path}: {type(e).__name__}: {str(e)[:300]}") from None
    if not getattr(tok, "chat_template", None):
        raise ModelLoadError(f"the tokenizer at {path} has no chat template; use an instruct/chat model or add "
                             f"`chat_template` to its tokenizer_config.json")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str, dtype: str, device: torch.device):
    from transformers import AutoModelForCausalLM

    _check_model_path(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype, device))
    except Exception as e:
        raise ModelLoadError(f"cannot load a causal LM from {path}: {type(e).__name__}: {str(e)[:300]}") from None
    return model.to(device).eval()


def _check_model_path(path: str) -> None:
    p = Path(path).expanduser()
    if (path.startswith((".", "/", "~")) or p.exists()) and not p.is_dir():
        raise ModelLoadError(f"model not found: {path} (a local model folder, or a hub id like Qwen/Qwen3-1.7B)")


def render(tokenizer, messages: Sequence[Message], chat_template_kwargs: dict, *, generation_prompt: bool = True) -> str:
    """The exact text the model is conditioned on."""
    return tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in messages],
        tokenize=False, add_generation_prompt=generation_prompt, **chat_template_kwargs)


def _batch_seed(seed: int, batch: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{batch}".encode()).digest()[:4], "little")


class HFSampler:
    """transformers `generate` in length-sorted, left-padded batches."""

    def __init__(self, model_path: str, cfg: Config, log: Log = Log()) -> None:
        self.cfg, self.log = cfg, log
        self.device = resolve_device(cfg.backend.device)
        self.tokenizer = load_tokenizer(model_path)
        self.tokenizer.padding_side = "left"
        self.model = load_model(model_path, cfg.model.dtype, self.device)
        self.batch_size = cfg.backend.batch_size
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self.eos_ids = sorted(set(eos) | {self.tokenizer.eos_token_id} - {None})

    def render(self, messages: Sequence[Message]) -> str:
        return render(self.tokenizer, messages, self.cfg.model.chat_template_kwargs)

    def generate(self, conversations: Sequence[Sequence[Message]], params: SamplingConfig, n: int = 1,
                 seed: int = 0, progress: Callable[[int], None] | None = None) -> list[list[Completion]]:
        prompts = [self.render(c) for c in conversations]
        ids = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        jobs = [(i, j) for i in range(len(ids)) for j in range(n)]
        jobs.sort(key=lambda job: -len(ids[job[0]]))
        out: list[list[Completion | None]] = [[None] * n for _ in ids]
        start, batch_no = 0, 0
        while start < len(jobs):
            size = min(self.batch_size, len(jobs) - start)
            chunk = jobs[start:start + size]
            try:
                completions = self._generate_batch([ids[i] for i, _ in chunk], params, _batch_seed(seed, batch_no))
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    raise
                self.batch_size = max(1, size // 2)
                self.log.warn(f"out of GPU memory at batch {size}; going on with batch {self.batch_size}")
                gc.collect()
                torch.cuda.empty_cache()
                continue
            for (i, j), completion in zip(chunk, completions):
                out[i][j] = completion
            start += size
            batch_no += 1
            if progress:
                progress(size)
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def _generate_batch(self, batch: list[list[int]], params: SamplingConfig, seed: int) -> list[Completion]:
        width = max(len(x) for x in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in batch], device=self.device)
        attention = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in batch], device=self.device)
        sample = params.temperature > 0
        torch.manual_seed(seed)
        generated = self.model.generate(
            input_ids=input_ids, attention_mask=attention, max_new_tokens=params.max_new_tokens,
            do_sample=sample, temperature=params.temperature if sample else None,
            top_p=params.top_p if sample else None, top_k=params.top_k if sample else None,  # 0 disables top-k
            eos_token_id=self.eos_ids, pad_token_id=pad,
        )[:, width:].tolist()
        results = []
        for x, new in zip(batch, generated):
            stop = next((k for k, t in enumerate(new) if t in self.eos_ids), None)
            body = new if stop is None else new[:stop]
            results.append(Completion(
                text=self.tokenizer.decode(body, skip_special_tokens=True),
                n_tokens=len(body) + (stop is not None),
                finish_reason="length" if stop is None else "stop",
                prompt_tokens=len(x),
            ))
        return results

    def close(self) -> None:
        del self.model
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
