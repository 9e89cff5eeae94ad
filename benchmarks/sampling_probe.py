"""What top-k / top-p sampling costs the engine on a GPU (Qwen3-1.7B architecture, random bf16 weights).

The loop samples with the reference config's top_k 20 / top_p 0.8, while `bench generate` samples
with both off. Measured in one process, side by side:

  sample_ms   one `sampling.sample` call on [rows, 151936] bf16 logits, replayed as a CUDA graph:
              temperature only (the Triton Gumbel kernel), top-k 20 + top-p 0.8 on the k + TIES best
              entries (the engine's path), the same filters over the whole vocabulary (a sort of it)
  engine      generated tokens per second of `Engine.generate`, EOS ignored, 512 prompts of 200 tokens:
              fixed 256 new tokens, temperature only against top-k/top-p, n=1 against n=4
Writes sampling.json to $OUT (or here).
"""

import json
import os
import random
import time

import torch

from secondtry.backends.engine import Engine, kernels, sampling
from secondtry.bench.generate import QWEN3_1_7B, random_model

out_dir = os.environ.get("OUT", ".")
res: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
V = QWEN3_1_7B["vocab_size"]


def graph_ms(fn, reps: int = 50) -> float:
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    g.replay()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        g.replay()
    torch.cuda.synchronize()
    return round((time.perf_counter() - t) / reps * 1e3, 3)


def full_vocab(logits, keys, steps):  # the whole-vocabulary filters, then the Gumbel kernel
    scores = sampling.top_p_filter(sampling.top_k_filter(logits.float() / 0.7, 20), 0.8)
    return kernels.gumbel_argmax(scores, keys, steps, 1.0)


def sample_ms(rows: int) -> dict[str, float]:
    logits = torch.randn(rows, V, device="cuda", dtype=torch.bfloat16) * 3
    keys = torch.arange(rows, device="cuda", dtype=torch.int64) * 7919
    steps = torch.full((rows,), 5, device="cuda", dtype=torch.int64)
    return {
        "temperature_only": graph_ms(
            lambda: sampling.sample(logits, keys, steps, 0.7, 0, 1.0, kernels=kernels)
        ),
        "top_k20_top_p0.8": graph_ms(
            lambda: sampling.sample(logits, keys, steps, 0.7, 20, 0.8, kernels=kernels)
        ),
        "top_k20_only": graph_ms(lambda: sampling.sample(logits, keys, steps, 0.7, 20, 1.0, kernels=kernels)),
        "full_vocab_filters": graph_ms(lambda: full_vocab(logits, keys, steps)),
        "topk36_alone": graph_ms(lambda: torch.topk(logits.float(), 36)),
        "greedy": graph_ms(lambda: sampling.sample(logits, keys, steps, 0.0, 0, 1.0, kernels=kernels)),
    }


for rows in (64, 256, 512):
    res[f"sample_ms@{rows}"] = sample_ms(rows)
    print(rows, res[f"sample_ms@{rows}"], flush=True)

net = random_model(QWEN3_1_7B, "cuda")
rng = random.Random(0)
prompts = [[rng.randrange(V) for _ in range(200)] for _ in range(512)]
engine = Engine(net, max_slots=512)


def tok_s(ps, n, **kw):
    engine.generate(ps[:64], n=n, max_new_tokens=32, ignore_eos=True, **kw)  # graphs for these settings
    torch.cuda.synchronize()
    t = time.perf_counter()
    outs = engine.generate(ps, n=n, max_new_tokens=256, ignore_eos=True, **kw)
    torch.cuda.synchronize()
    return round(sum(len(o.tokens) for per in outs for o in per) / (time.perf_counter() - t))


for name, kw in {
    "temperature_only": dict(temperature=0.7),
    "top_k20_top_p0.8": dict(temperature=0.7, top_k=20, top_p=0.8),
    "greedy": dict(temperature=0.0),
}.items():
    res[f"engine_tok_s:{name}:n1"] = tok_s(prompts, 1, **kw)
    res[f"engine_tok_s:{name}:n4"] = tok_s(prompts[:128], 4, **kw)
    print({k: v for k, v in res.items() if k.startswith("engine")}, flush=True)

json.dump(res, open(os.path.join(out_dir, "sampling.json"), "w"), indent=1)
print(json.dumps(res, indent=1))
