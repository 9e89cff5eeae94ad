"""On a GPU, packed-row attention runs torch's FlashAttention-2 varlen kernel: forward and
gradients match per-example attention in float32 within bf16 rounding (run with -m gpu)."""

import pytest
import torch

from secondtry.training.attention import _flash_ok, varlen_attention

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.mark.parametrize("heads,kv_heads,dim", [(16, 8, 128), (12, 2, 64), (8, 8, 128)])
def test_flash_varlen_matches_per_example_attention_forward_and_backward(heads, kv_heads, dim):
    torch.manual_seed(0)
    lengths = [300, 1, 77, 1200, 513]
    total = sum(lengths)
    cu = torch.tensor([0, *lengths], device="cuda").cumsum(0).to(torch.int32)
    q = torch.randn(1, heads, total, dim, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(1, kv_heads, total, dim, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(1, kv_heads, total, dim, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    assert _flash_ok(q.transpose(1, 2).reshape(total, heads, dim))
    module = torch.nn.Module()
    out, _ = varlen_attention(
        module, q, k, v, None, scaling=dim**-0.5, cu_seq_lens_q=cu, max_length_q=max(lengths)
    )
    grad = torch.randn_like(out)
    out.backward(grad)

    q32, k32, v32 = (x.detach().float().requires_grad_() for x in (q, k, v))
    ref, _ = varlen_attention(
        module, q32, k32, v32, None, scaling=dim**-0.5, cu_seq_lens_q=cu.cpu()
    )  # per example
    ref.backward(grad.float())
    assert _rel(out, ref) < 1e-2
    for got, want in ((q.grad, q32.grad), (k.grad, k32.grad), (v.grad, v32.grad)):
        assert torch.isfinite(got).all() and _rel(got, want) < 2e-2
