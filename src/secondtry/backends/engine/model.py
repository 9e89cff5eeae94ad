"""A transformers causal LM (Llama, Qwen2, Qwen3, Mistral families) run token-flat over the slot cache.

The model's own modules and weights are used as they are: embeddings, norms, the q/k/v/o
projections with their biases (Qwen2), q_norm/k_norm (Qwen3), the MLP, the rotary module (its
cos/sin table, so every RoPE scaling variant it knows comes out right) and the lm_head, tied or
not. Only attention and the cache are the engine's own.

Tokens of every sequence in a step are one flat batch [T, hidden]: a prompt's tokens and decode
tokens alike carry their position and their slot, so matrix products never see padding.

Two paths, the same mathematics:
  torch    calls the model's modules, attention through SDPA: the CPU path, and the reference
  kernels  Triton kernels for norm+residual, q/k-norm+rotary+cache write, decode attention and
           SiLU*up (kernels.py); with `fuse`, q/k/v and gate/up become one matrix product each,
           their weights one tensor that the model's parameters then view (no extra memory)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .attention import PromptLayout, decode_attention_torch, prefill_attention

FAMILIES = ("llama", "qwen2", "qwen3", "mistral")


def unsupported(model) -> str | None:
    """Why the engine cannot run this model, or None when it can."""
    cfg = getattr(model, "config", None)
    kind = getattr(cfg, "model_type", None)
    if kind not in FAMILIES:
        return f"model type {kind!r} is not one of {', '.join(FAMILIES)}"
    if any(t != "full_attention" for t in getattr(cfg, "layer_types", None) or []):
        return "sliding-window layers are not supported"
    if kind == "mistral" and getattr(cfg, "sliding_window", None):
        return "sliding-window attention is not supported"
    if getattr(cfg, "hidden_act", "silu") != "silu":
        return f"activation {cfg.hidden_act!r} is not SiLU"
    rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    if rope.get("rope_type", "default") in ("dynamic", "longrope"):
        return f"rope type {rope['rope_type']!r} depends on the sequence length"
    return None


class EngineModel:
    """Forward passes of the wrapped model over flat token batches, writing K/V into the slot cache."""

    def __init__(self, model, kernels=None, fuse: bool = False) -> None:
        why = unsupported(model)
        if why:
            raise ValueError(f"the engine cannot run this model: {why}")
        self.hf = model
        core = model.model
        self.embed, self.layers, self.norm = core.embed_tokens, list(core.layers), core.norm
        self.rotary, self.lm_head = core.rotary_emb, model.get_output_embeddings()
        attn = self.layers[0].self_attn
        cfg = model.config
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.hidden_size, self.intermediate_size = cfg.hidden_size, cfg.intermediate_size
        self.head_dim, self.scale = attn.head_dim, attn.scaling
        self.qk_norm = hasattr(attn, "q_norm")
        self.eps = self.norm.variance_epsilon
        self.dtype, self.device = self.embed.weight.dtype, self.embed.weight.device
        self.vocab = self.lm_head.weight.shape[0]
        self.kernels = kernels
        self.fused = [self._fuse(layer) for layer in self.layers] if fuse else None

    @torch.no_grad()
    def _fuse(self, layer) -> tuple:
        """One weight (and bias) for q/k/v and one for gate/up; the modules' parameters become views of them."""
        a, m = layer.self_attn, layer.mlp
        return (*_join([a.q_proj, a.k_proj, a.v_proj]), *_join([m.gate_proj, m.up_proj]))

    def kv_bytes_per_token(self) -> int:
        return len(self.layers) * 2 * self.kv_heads * self.head_dim * self.embed.weight.element_size()

    @torch.no_grad()
    def rope_table(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin [length, head_dim] in the model dtype, exactly as the rotary module gives them."""
        x = torch.zeros(1, dtype=self.dtype, device=self.device)
        cos, sin = self.rotary(x, torch.arange(length, device=self.device)[None])
        return cos[0].contiguous(), sin[0].contiguous()

    def forward(
        self,
        ids: torch.Tensor,
        pos: torch.Tensor,
        slot: torch.Tensor,
        cache: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        attend: Callable,
    ) -> torch.Tensor:
        """Final hidden states [T, hidden] for tokens ids [T] at positions pos [T] of slots slot [T].

        cache: [layers, 2, slots, kv_heads, max_len, head_dim]; attend(q, kc, vc) -> [T, H, D].
        """
        if self.kernels is None:
            return self._forward_torch(ids, pos, slot, cache, rope, attend)
        return self._forward_kernels(ids, pos, slot, cache, rope, attend)

    def _forward_torch(self, ids, pos, slot, cache, rope, attend):
        t, h, kvh, d = ids.shape[0], self.heads, self.kv_heads, self.head_dim
        cos, sin = rope[0][pos][:, None], rope[1][pos][:, None]
        x = self.embed(ids)
        for i, layer in enumerate(self.layers):
            a = layer.self_attn
            hs = layer.input_layernorm(x)
            q, k, v = a.q_proj(hs).view(t, h, d), a.k_proj(hs).view(t, kvh, d), a.v_proj(hs).view(t, kvh, d)
            if self.qk_norm:
                q, k = a.q_norm(q), a.k_norm(k)
            q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin  # transformers' rotary
            cache[i, 0, slot, :, pos] = k
            cache[i, 1, slot, :, pos] = v
            x = x + a.o_proj(attend(q, cache[i, 0], cache[i, 1]).reshape(t, h * d))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return self.norm(x)

    def _forward_kernels(self, ids, pos, slot, cache, rope, attend):
        k_ = self.kernels
        t, h, d = ids.shape[0], self.heads, self.head_dim
        x, delta = self.embed(ids), None
        for i, layer in enumerate(self.layers):
            a, m = layer.self_attn, layer.mlp
            x, hs = k_.add_rmsnorm(x, delta, layer.input_layernorm.weight, self.eps)
            if self.fused:
                qkv = F.linear(hs, self.fused[i][0], self.fused[i][1])
            else:
                qkv = torch.cat([a.q_proj(hs), a.k_proj(hs), a.v_proj(hs)], dim=-1)
            qn, kn = (a.q_norm.weight, a.k_norm.weight) if self.qk_norm else (None, None)
            q = k_.qkv_post(
                qkv,
                pos,
                slot,
                cache[i, 0],
                cache[i, 1],
                rope[0],
                rope[1],
                qn,
                kn,
                self.eps,
                h,
                self.kv_heads,
                d,
            )
            o = attend(q, cache[i, 0], cache[i, 1])
            delta = a.o_proj(o.reshape(t, h * d))
            x, hs = k_.add_rmsnorm(x, delta, layer.post_attention_layernorm.weight, self.eps)
            if self.fused:
                gu = F.linear(hs, self.fused[i][2], self.fused[i][3])
            else:
                gu = torch.cat([m.gate_proj(hs), m.up_proj(hs)], dim=-1)
            delta = m.down_proj(k_.silu_mul(gu))
        return k_.add_rmsnorm(x, delta, self.norm.weight, self.eps)[1]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)

    def prefill_attend(self, layout: PromptLayout) -> Callable:
        return lambda q, kc, vc: prefill_attention(q, kc, vc, layout, self.scale)

    def decode_attend(self, rows: torch.Tensor, lens: torch.Tensor, splits: int = 1) -> Callable:
        if self.kernels is None:
            return lambda q, kc, vc: decode_attention_torch(q, kc, vc, rows, lens, self.scale)
        return lambda q, kc, vc: self.kernels.decode_attention(q, kc, vc, rows, lens, self.scale, splits)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _join(linears: list) -> tuple[torch.Tensor, torch.Tensor | None]:
    weight = torch.cat([lin.weight for lin in linears], dim=0)
    bias = None
    if any(lin.bias is not None for lin in linears):
        bias = torch.cat(
            [lin.bias if lin.bias is not None else weight.new_zeros(lin.out_features) for lin in linears]
        )
    start = 0
    for lin in linears:
        rows = lin.out_features
        lin.weight.data = weight[start : start + rows]  # the module keeps working, on the joined storage
        if lin.bias is not None:
            lin.bias.data = bias[start : start + rows]
        start += rows
    return weight, bias
