"""Where the engine's prefill time goes on a GPU (Qwen3-1.7B architecture, random bf16 weights).

Prefill of 512 prompts of 200 tokens (one wave of the default workload), timed at a few flat
batch sizes (`prefill_tokens`), beside a plain transformers forward of the same tokens, and a
kernel profile of one wave. Writes prefill.json and prefill_profile.txt to $OUT (or here).
"""

import json
import os
import random
import time

import torch
from torch.profiler import ProfilerActivity, profile

from secondtry.backends.engine import Engine
from secondtry.bench.generate import QWEN3_1_7B, random_model

out_dir = os.environ.get("OUT", ".")
rng = random.Random(0)
prompts = [[rng.randrange(151936) for _ in range(200)] for _ in range(512)]
net = random_model(QWEN3_1_7B, "cuda")
flops = 2 * sum(p.numel() for n, p in net.named_parameters() if "embed" not in n) * 200 * 512
res = {"prompt_tokens": 200 * 512}


def wave(engine):
    torch.cuda.synchronize()
    t = time.perf_counter()
    engine.generate(prompts, max_new_tokens=1, temperature=0.7, ignore_eos=True)
    torch.cuda.synchronize()
    return time.perf_counter() - t


for chunk in (8192, 16384, 32768):
    engine = Engine(net, max_slots=512, prefill_tokens=chunk)
    engine.warm_up(968, 768, temperature=0.7, ignore_eos=True)
    wave(engine)
    s = min(wave(engine) for _ in range(3))
    res[f"engine_prefill_tok_s@{chunk}"] = round(200 * 512 / s)
    res[f"engine_prefill_tflop_s@{chunk}"] = round(flops / s / 1e12)
    if chunk == 16384:
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            wave(engine)
        table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=30, max_name_column_width=60)
        open(os.path.join(out_dir, "prefill_profile.txt"), "w").write(table)
    engine.release()
    del engine
    print(res, flush=True)

ids = torch.tensor(prompts[:80], device="cuda")  # 16,000 tokens, as one transformers forward
with torch.inference_mode():
    for _ in range(2):
        net.model(ids)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(3):
        net.model(ids)
    torch.cuda.synchronize()
s = (time.perf_counter() - t) / 3 * 512 / 80
res["hf_forward_tok_s"] = round(200 * 512 / s)
print(res, flush=True)
json.dump(res, open(os.path.join(out_dir, "prefill.json"), "w"), indent=1)
