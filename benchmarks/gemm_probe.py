"""Decode GEMM shapes of Qwen3-1.7B on a GPU: cuBLAS vs cuBLASLt vs Triton (torch.compile max-autotune).

Recorded in benchmarks/results/gemm-1xh200-2026-11-29.json: no library path is faster by more than
a few percent on the shapes that dominate a decode step, except the fused qkv product at 512 rows.
"""

import json
import os
import time

import torch
import torch.nn.functional as F

torch.manual_seed(0)
shapes = {
    "qkv": (2048, 4096),
    "o": (2048, 2048),
    "gate_up": (2048, 12288),
    "down": (6144, 2048),
    "lm_head": (2048, 151936),
}


def bench(fn, x, w, reps=200):
    for _ in range(10):
        fn(x, w)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(20):
            fn(x, w)
    g.replay()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps // 20):
        g.replay()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / reps


res = {}
for M in (256, 512):
    for name, (K, N) in shapes.items():
        x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(N, K, device="cuda", dtype=torch.bfloat16) / 50
        row = {}
        for lib in ("cublas", "cublaslt"):
            torch.backends.cuda.preferred_blas_library(lib)
            s = bench(F.linear, x, w)
            row[lib] = round(2 * M * K * N / s / 1e12)
        torch.backends.cuda.preferred_blas_library("cublas")
        try:
            f = torch.compile(F.linear, mode="max-autotune-no-cudagraphs", dynamic=False)
            s = bench(f, x, w)
            row["triton_autotune"] = round(2 * M * K * N / s / 1e12)
            ref = F.linear(x, w)
            row["max_diff"] = float((f(x, w) - ref).abs().max())
        except Exception as e:
            row["triton_autotune"] = repr(e)[:100]
        res[f"{name}@{M}"] = row
        print(name, M, row, flush=True)
json.dump(res, open(os.path.join(os.environ.get("OUT", "."), "gemm.json"), "w"), indent=1)
