"""Sampling on the device: temperature, top-k, top-p, then Gumbel-max with counter-based noise.

transformers samples with `torch.multinomial` from one generator shared by the whole batch, so a
sample depends on what else is in the batch. Here the noise for vocabulary entry j of a
request's t-th token is a hash of (request key, t, j): the same request gives the same tokens
whatever batch, slot or bucket it runs in, and a request restarted after an out-of-memory
back-off repeats itself exactly. argmax(logits / T + Gumbel noise) is a draw from
softmax(logits / T); top-k and top-p first set the logits they drop to -inf, with the rules of
transformers' TopKLogitsWarper and TopPLogitsWarper (applied in that order, as `generate` does).

The hash is "lowbias32" on 32-bit words (here on int64 tensors with explicit wrap-around); the
Triton kernel `kernels.gumbel_argmax` computes the same bits.

>>> mix32(torch.tensor([0, 1, 2**32 - 1])).tolist() == [_mix32_int(0), _mix32_int(1), _mix32_int(2**32 - 1)]
True
"""

from __future__ import annotations

import hashlib

import torch

_M32 = 0xFFFFFFFF


def request_key(seed: int, request: int | str, sample: int) -> int:
    """The 32-bit key of one sample of one request (a position, or a stable key such as a problem id)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{request}:{sample}".encode()).digest()[:4], "little")


def _mix32_int(x: int) -> int:  # plain-int reference of the hash
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _M32
    return x ^ (x >> 16)


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    # x * c mod 2**32 without int64 overflow: split c into 16-bit halves
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _M32


def mix32(x: torch.Tensor) -> torch.Tensor:
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def gumbel_noise(keys: torch.Tensor, steps: torch.Tensor, vocab: int) -> torch.Tensor:
    """[N, vocab] float32 Gumbel noise for rows keyed by (keys, steps)."""
    return gumbel_noise_at(keys, steps, torch.arange(vocab, device=keys.device, dtype=torch.int64)[None, :])


def gumbel_noise_at(keys: torch.Tensor, steps: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The same noise for the vocabulary entries `tokens` [N, k] (or [1, k]) only."""
    state = mix32(keys.long() ^ mix32(steps.long() ^ 0x9E3779B9))
    bits = mix32(state[:, None] ^ mix32(tokens.long() + 0x632BE5AB))
    u = ((bits >> 9).to(torch.float32) + 0.5) * 2.0**-23  # 23 bits: (k + 0.5) is exact, so u < 1
    return -torch.log(-torch.log(u))


def top_k_filter(scores: torch.Tensor, k: int) -> torch.Tensor:
    kth = torch.topk(scores, min(k, scores.shape[-1]))[0][..., -1, None]
    return scores.masked_fill(scores < kth, float("-inf"))


def top_p_filter(scores: torch.Tensor, p: float) -> torch.Tensor:
    sorted_scores, order = torch.sort(scores, descending=False)
    drop = sorted_scores.softmax(dim=-1).cumsum(dim=-1) <= (1 - p)
    drop[..., -1:] = False  # the most likely token always stays
    return scores.masked_fill(drop.scatter(1, order, drop), float("-inf"))


def sample(
    logits: torch.Tensor,
    keys: torch.Tensor,
    steps: torch.Tensor,
    temperature: float,
    top_k: int = 0,
    top_p: float = 1.0,
    kernels=None,
) -> torch.Tensor:
    """Next token per row of logits [N, V]: greedy at temperature 0, else a keyed draw. kernels: the Triton module."""
    if temperature <= 0:
        return torch.argmax(logits, dim=-1)
    if top_k <= 0 and top_p >= 1.0:
        if kernels is not None:  # reads the logits once, in their own dtype
            return kernels.gumbel_argmax(logits, keys, steps, 1.0 / temperature)
        scores = logits.float() / temperature
    elif 0 < top_k and top_k + TIES < logits.shape[-1]:  # only the k best can win: the rest on those alone
        return _sample_top_k(logits.float() / temperature, keys, steps, top_k, top_p)
    else:
        scores = logits.float() / temperature
        if top_k > 0:  # k close to the vocabulary size
            scores = top_k_filter(scores, top_k)
        if top_p < 1.0:
            scores = top_p_filter(scores, top_p)
        if kernels is not None:
            return kernels.gumbel_argmax(scores, keys, steps, 1.0)
    return torch.argmax(scores + gumbel_noise(keys, steps, scores.shape[-1]), dim=-1)


TIES = 16  # entries beyond the k-th that _sample_top_k looks at, for ties with it (bf16 logits do tie)


def _sample_top_k(
    scores: torch.Tensor, keys: torch.Tensor, steps: torch.Tensor, k: int, p: float
) -> torch.Tensor:
    """top_k_filter, then top_p_filter, then Gumbel-max, computed on the k + TIES best entries of each row
    instead of the whole vocabulary (no sort of it, no full-width noise): the same tokens, as
    tests/backends/test_engine.py checks, unless more than TIES entries tie with a row's k-th."""
    values, tokens = torch.topk(scores, k + TIES)  # descending
    values = values.masked_fill(values < values[..., k - 1 : k], float("-inf"))  # TopKLogitsWarper keeps ties
    if p < 1.0:
        ascending = values.flip(-1)
        drop = ascending.softmax(dim=-1).cumsum(dim=-1) <= (1 - p)  # TopPLogitsWarper's rule
        drop[..., -1:] = False
        values = values.masked_fill(drop.flip(-1), float("-inf"))
    best = torch.argmax(values + gumbel_noise_at(keys, steps, tokens), dim=-1)
    return tokens.gather(1, best[:, None])[:, 0]
