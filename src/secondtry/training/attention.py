"""Attention for packed training rows: each example attends only to itself.

Packed (padding-free) batches put several examples end to end in one row; TRL's collator
gives their boundaries as `cu_seq_lens_q/k` and `max_length_q/k`, which reach the
attention function as keyword arguments. transformers' own varlen path needs the
flash-attn package, which often cannot be installed (it cannot on our GPU machine), and
its `sdpa` path turns packed `position_ids` into a dense block-diagonal mask: correct, but
the kernel then computes every block of the row and reads the mask, and it cannot use
the flash kernel. `secondtry_varlen` calls the FlashAttention-2 varlen kernel that ships
inside PyTorch (`aten._flash_attention_forward`, differentiable, grouped-query heads
supported), so each example costs its own length squared and nothing crosses a boundary.

Where that kernel is not available (CPU, float32, head size over 256) the same function
runs `scaled_dot_product_attention` once per example: slower, identical in meaning. The
implementation is registered with transformers under `VARLEN` and selected with
`model.set_attn_implementation(VARLEN)`; mask creation is skipped for it (transformers
builds no mask for implementations it does not know), so a batch without boundaries is
one causal sequence per row, and a padded batch is refused.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

VARLEN = "secondtry_varlen"


def _flash_ok(q: torch.Tensor) -> bool:
    return (
        q.is_cuda
        and q.dtype in (torch.float16, torch.bfloat16)
        and q.shape[-1] <= 256
        and q.shape[-1] % 8 == 0
        and hasattr(torch.ops.aten, "_flash_attention_forward")
    )


def _per_example(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bounds: list[int], scale: float | None, dropout: float
) -> torch.Tensor:
    """q [T, H, D], k/v [T, Hkv, D]: causal attention inside each [bounds[i], bounds[i+1])."""
    rep = q.shape[1] // k.shape[1]
    outs = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        qi, ki, vi = (x[a:b].transpose(0, 1) for x in (q, k, v))
        if rep > 1:
            ki, vi = ki.repeat_interleave(rep, 0), vi.repeat_interleave(rep, 0)
        outs.append(
            F.scaled_dot_product_attention(
                qi, ki, vi, dropout_p=dropout, is_causal=True, scale=scale
            ).transpose(0, 1)
        )
    return torch.cat(outs, 0)


def varlen_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function contract: query [B, H, T, D] -> output [B, T, H, D]."""
    batch, heads, length, dim = query.shape
    cu = kwargs.get("cu_seq_lens_q")
    if attention_mask is not None:
        raise ValueError(f"{VARLEN} attention takes packed rows (cu_seq_lens), not a padding mask")
    if cu is None:  # no boundaries: each row is one sequence
        cu = torch.arange(0, (batch + 1) * length, length, dtype=torch.int32, device=query.device)
        longest = length
    else:
        if batch != 1:
            raise ValueError(f"{VARLEN} attention: packed boundaries need a single row, got {batch} rows")
        longest = kwargs.get("max_length_q") or int(cu.diff().max())
    dropout = dropout if module.training else 0.0
    q = query.transpose(1, 2).reshape(batch * length, heads, dim)
    k = key.transpose(1, 2).reshape(batch * length, key.shape[1], dim)
    v = value.transpose(1, 2).reshape(batch * length, value.shape[1], dim)
    if _flash_ok(q):
        cu = cu.to(device=q.device, dtype=torch.int32)
        out = torch.ops.aten._flash_attention_forward(
            q, k, v, cu, cu, int(longest), int(longest), dropout, True, False, scale=scaling
        )[0]
    else:
        out = _per_example(q, k, v, [int(x) for x in cu.tolist()], scaling, dropout)
    return out.view(batch, length, heads, dim), None


def register() -> str:
    """Make `VARLEN` known to transformers (idempotent); returns its name."""
    from transformers import AttentionInterface

    AttentionInterface.register(VARLEN, varlen_attention)
    return VARLEN
