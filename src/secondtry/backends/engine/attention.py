"""Attention over the slot cache: prompts (causal, several at once) and single decode tokens.

The cache of one layer is [slots, kv_heads, max_len, head_dim]: a (slot, kv head) pair is one
contiguous run of memory, so the decode kernel streams it at full width and reads nothing past
the row's live length. A batch of prompts is attended after its keys are written into the
cache. On the GPU (bf16/fp16) the keys are read back flat and the prompts go through the
FlashAttention-2 varlen kernel that ships inside PyTorch: no padding, grouped-query heads as
they are, and no per-shape set-up (SDPA picked cuDNN on the H200, which builds a plan for every
new batch shape: seconds over a round of prompts of many lengths). Elsewhere they are gathered
right-padded and attended with SDPA, so plain causal masking is exact for every real position
(padding sits after a prompt's last token, where no real query looks).

`decode_attention_torch` is the kernel's reference and the CPU path: the same result, computed
with SDPA and a length mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def prefill_attention(
    q: torch.Tensor, kc: torch.Tensor, vc: torch.Tensor, layout: PromptLayout, scale: float
) -> torch.Tensor:
    """q [T, H, D] of prompts laid out back to back; their keys are already in kc/vc[layout.slots]."""
    heads, kv_heads = q.shape[1], kc.shape[1]
    if _flash_ok(q):
        k, v = kc[layout.token_slot, :, layout.offset], vc[layout.token_slot, :, layout.offset]  # [T, KVH, D]
        return torch.ops.aten._flash_attention_forward(
            q, k, v, layout.cu, layout.cu, layout.width, layout.width, 0.0, True, False, scale=scale
        )[0]
    width = layout.width
    if layout.uniform:  # prompts of one length: the flat batch is already [prompts, length, ...]
        qp = q.view(layout.count, width, heads, q.shape[2])
    else:
        qp = q.new_zeros((layout.count, width, heads, q.shape[2]))
        qp[layout.prompt, layout.offset] = q
    k = kc[layout.slots, :, :width]
    v = vc[layout.slots, :, :width]
    if heads != kv_heads:
        k = k.repeat_interleave(heads // kv_heads, dim=1)
        v = v.repeat_interleave(heads // kv_heads, dim=1)
    o = F.scaled_dot_product_attention(qp.transpose(1, 2), k, v, is_causal=True, scale=scale)
    o = o.transpose(1, 2)
    return o.reshape(q.shape) if layout.uniform else o[layout.prompt, layout.offset]


def _flash_ok(q: torch.Tensor) -> bool:
    return (
        q.is_cuda
        and q.dtype in (torch.float16, torch.bfloat16)
        and q.shape[-1] <= 256
        and q.shape[-1] % 8 == 0
        and hasattr(torch.ops.aten, "_flash_attention_forward")
    )


def decode_attention_torch(
    q: torch.Tensor, kc: torch.Tensor, vc: torch.Tensor, rows: torch.Tensor, lens: torch.Tensor, scale: float
) -> torch.Tensor:
    """q [B, H, D] (one token a row) over kc/vc[rows[b], :, :lens[b]]."""
    heads, kv_heads = q.shape[1], kc.shape[1]
    width = max(1, int(lens.max()))
    k = kc[rows, :, :width]
    v = vc[rows, :, :width]
    if heads != kv_heads:
        k = k.repeat_interleave(heads // kv_heads, dim=1)
        v = v.repeat_interleave(heads // kv_heads, dim=1)
    live = torch.arange(width, device=q.device)[None, :] < lens.clamp(min=1)[:, None]  # idle rows: position 0
    o = F.scaled_dot_product_attention(q[:, :, None], k, v, attn_mask=live[:, None, None, :], scale=scale)
    return o[:, :, 0]


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on the device without waiting for the device: staged through pinned memory."""
    return x.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else x


class PromptLayout:
    """Where each token of a batch of prompts sits: prompt index, offset in it, and the prompt's slot."""

    def __init__(self, lengths: list[int], slots: list[int], device: torch.device) -> None:
        self.count, self.width = len(lengths), max(lengths)
        self.lengths, self.uniform = lengths, len(set(lengths)) == 1
        prompt = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
        self.prompt = to_device(prompt, device)
        self.offset = to_device(torch.cat([torch.arange(n) for n in lengths]), device)
        self.slots = to_device(torch.tensor(slots), device)
        self.token_slot = to_device(torch.tensor(slots)[prompt], device)
        self.last = to_device(
            torch.tensor(lengths).cumsum(0) - 1, device
        )  # each prompt's last token in the batch
        self.cu = to_device(torch.tensor([0] + lengths).cumsum(0).to(torch.int32), device)  # prompt bounds
