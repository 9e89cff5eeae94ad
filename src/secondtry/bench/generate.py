"""`secondtry bench generate`: generated tokens per second of the engine against transformers, on one GPU.

The model is built from a config with random bf16 weights on the device (no download): the
Qwen3-1.7B architecture by default. Prompts are random token ids; EOS is ignored, so every
request generates exactly its max_new_tokens. Measured in one process:

  bandwidth   a device-to-device copy (bytes read + written per second): the decode ceiling
  engine      the default workload (every request the same length) and a variant with output
              lengths drawn uniformly from a range; warm-up (kernel compilation, graph capture)
              is timed apart. Wall time covers prefill, decode and the host loop.
  roofline    resident sequences / time to read the weights once and every resident
              sequence's KV at the workload's mean context, per step, at the copy bandwidth
  agreement   greedy tokens against `generate` on the same weights: share of sequences whose
              first `agree_tokens` tokens are identical
  transformers plain `generate` (dynamic cache) and `generate` with the static cache, which
              transformers compiles (torch.compile, reduce-overhead); both at batch `hf_batch`
              on the first `hf_batch` requests, the compile timed apart; plain `generate` over
              `hf_plain_new` tokens only (it is slow; shorter contexts only flatter it)

Throughput runs sample at temperature 0.7 (top-k and top-p off), as rounds do.
"""

from __future__ import annotations

import contextlib
import random
import statistics
import time
import traceback
from collections.abc import Callable
from typing import Any

QWEN3_1_7B = dict(
    model_type="qwen3",
    hidden_size=2048,
    num_hidden_layers=28,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
    intermediate_size=6144,
    vocab_size=151936,
    rope_theta=1e6,
    tie_word_embeddings=True,
    rms_norm_eps=1e-6,
    max_position_embeddings=40960,
)
TINY = dict(
    model_type="qwen3",
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    intermediate_size=128,
    vocab_size=256,
    max_position_embeddings=4096,
)
QWEN3_8B = dict(
    model_type="qwen3",
    hidden_size=4096,
    num_hidden_layers=36,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    intermediate_size=12288,
    vocab_size=151936,
    rope_theta=1e6,
    tie_word_embeddings=False,
    rms_norm_eps=1e-6,
    max_position_embeddings=40960,
)
MODELS = {"qwen3-1.7b": QWEN3_1_7B, "qwen3-8b": QWEN3_8B, "tiny-qwen3": TINY}  # tiny: this code on the CPU
TEMPERATURE = 0.7
REQUESTS, PROMPT, NEW, RESIDENT = 1024, 200, 768, 512  # the default workload: requests, prompt and new tokens


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def random_model(config: dict, device: str = "cuda", dtype=None):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(**config)
    dtype = dtype or (torch.bfloat16 if device == "cuda" else torch.float32)
    torch.manual_seed(0)
    with torch.device(device):  # initialised where it runs: seconds, not minutes
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    model.generation_config.eos_token_id = None  # EOS ignored: every request runs to its length
    model.generation_config.pad_token_id = 0
    return model.eval()


def random_workload(
    vocab: int, requests: int, prompt: int, variant: tuple[int, int], seed: int
) -> tuple[list[list[int]], list[int]]:
    """Random prompt ids (`prompt` tokens each) and the variant workload's lengths, drawn uniformly from `variant`."""
    rng = random.Random(seed)
    prompts = [[rng.randrange(vocab) for _ in range(prompt)] for _ in range(requests)]
    return prompts, [rng.randint(*variant) for _ in range(requests)]


def copy_bandwidth(gib: float = 4.0, reps: int = 20) -> float:
    """Bytes read + written per second by a device-to-device copy (median of `reps`)."""
    import torch

    x = torch.randn(int(gib * 2**30) // 2, dtype=torch.bfloat16, device="cuda")
    y = torch.empty_like(x)
    times = []
    for i in range(reps + 3):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        y.copy_(x)
        b.record()
        b.synchronize()
        if i >= 3:
            times.append(a.elapsed_time(b) / 1e3)
    del x, y
    torch.cuda.empty_cache()
    return 2 * gib * 2**30 / statistics.median(times)


def roofline_tok_s(
    model, kv_bytes_per_token: int, bandwidth: float, resident: int, lengths: list[tuple[int, int]]
) -> float:
    """Decode bound: `resident` tokens per (weights + resident x KV at the mean context) / bandwidth."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())  # a tied matrix counts once
    tokens = sum(new for _, new in lengths)
    context = sum(p * new + new * (new - 1) / 2 for p, new in lengths) / tokens  # mean over generated tokens
    return resident * bandwidth / (weights + kv_bytes_per_token * resident * context)


def tune_attention(
    kernels, kv_heads: int, heads: int, head_dim: int, rows: int, context: int
) -> dict[str, Any]:
    """Time the decode-attention kernel for a few block shapes at a given load; keep the fastest."""
    import torch
    import triton

    slots = rows + 1
    kc = torch.randn(slots, kv_heads, context, head_dim, dtype=torch.bfloat16, device="cuda")
    vc = torch.randn_like(kc)
    q = torch.randn(rows, heads, head_dim, dtype=torch.bfloat16, device="cuda")
    idx = torch.arange(rows, device="cuda")
    lens = torch.full((rows,), context, device="cuda")
    results = {}
    for block_n, warps, stages in [
        (64, 4, 2),
        (64, 4, 3),
        (128, 4, 2),
        (128, 4, 3),
        (128, 8, 2),
        (256, 8, 2),
        (64, 2, 3),
    ]:
        kernels.ATTN.update(BLOCK_N=block_n, num_warps=warps, num_stages=stages)
        try:
            ms = triton.testing.do_bench(
                lambda: kernels.decode_attention(q, kc, vc, idx, lens, 0.088),
                warmup=25,
                rep=100,
                return_mode="median",
            )
        except Exception as e:  # a shape the compiler refuses
            results[f"{block_n}/{warps}/{stages}"] = repr(e)[:80]
            continue
        results[f"{block_n}/{warps}/{stages}"] = round(2 * kc.numel() * 2 * rows / slots / (ms / 1e3) / 1e9)
    best = max((k for k, v in results.items() if isinstance(v, int)), key=lambda k: results[k])
    block_n, warps, stages = map(int, best.split("/"))
    kernels.ATTN.update(BLOCK_N=block_n, num_warps=warps, num_stages=stages)
    kc = vc = None  # free the caches before the next measurement
    torch.cuda.empty_cache()
    return {"attn_gb_s": results, "attn_best": best}


def gemm_rates(model, rows: tuple[int, ...] = (256, 512)) -> dict[str, Any]:
    """TFLOP/s of the decode step's matrix products (weights of layer 0 and the lm_head) at a few row counts."""
    import torch
    import torch.nn.functional as F
    import triton

    a, m = model.model.layers[0].self_attn, model.model.layers[0].mlp
    shapes = {
        "qkv": torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]),
        "o": a.o_proj.weight,
        "gate_up": torch.cat([m.gate_proj.weight, m.up_proj.weight]),
        "down": m.down_proj.weight,
        "lm_head": model.get_output_embeddings().weight,
    }
    out = {}
    for r in rows:
        for name, w in shapes.items():
            x = torch.randn(r, w.shape[1], dtype=w.dtype, device=w.device)
            ms = triton.testing.do_bench(
                lambda x=x, w=w: F.linear(x, w), warmup=10, rep=50, return_mode="median"
            )
            out[f"{name}@{r}"] = round(2 * r * w.numel() / (ms / 1e3) / 1e12)
    return {"gemm_tflop_s": out}


def time_engine(engine, prompts: list[list[int]], new: list[int], temperature: float, seed: int = 0) -> dict:
    engine.warm_up(
        max(len(p) for p in prompts) + max(new), max(new), temperature=temperature, ignore_eos=True
    )
    _sync()
    steps, start = engine.steps, time.perf_counter()
    outs = engine.generate(prompts, max_new_tokens=new, temperature=temperature, seed=seed, ignore_eos=True)
    _sync()
    wall = time.perf_counter() - start
    generated = sum(len(o.tokens) for row in outs for o in row)
    if generated != sum(new):  # EOS is ignored: every request runs to its length
        raise RuntimeError(f"the engine generated {generated} tokens, the requests asked for {sum(new)}")
    return {
        "tok_s": round(generated / wall),
        "wall_s": round(wall, 2),
        "tokens": generated,
        "decode_steps": engine.steps - steps,
        "slots": engine.slots,
        "prefill_s": round(engine.stats.get("prefill", 0), 2),
        "decode_s": round(engine.stats.get("decode", 0), 2),
    }


def time_hf(model, prompts: list[list[int]], new: int, static: bool, temperature: float) -> dict:
    import torch
    from transformers import StoppingCriteria

    class After(StoppingCriteria):  # warm-up: the static cache's full shape, a few steps only
        def __init__(self, steps: int) -> None:
            self.steps = steps

        def __call__(self, input_ids, scores, **kwargs):
            self.steps -= 1
            return torch.full(
                (input_ids.shape[0],), self.steps <= 0, dtype=torch.bool, device=input_ids.device
            )

    ids = torch.tensor(prompts, device=_device())
    kwargs = dict(
        attention_mask=torch.ones_like(ids),
        max_new_tokens=new,
        do_sample=True,
        temperature=temperature,
        top_k=0,
        top_p=1.0,
        pad_token_id=0,
    )
    if static:
        kwargs["cache_implementation"] = "static"
    start = time.perf_counter()
    with torch.inference_mode():
        model.generate(ids, stopping_criteria=[After(4)], **kwargs)
    _sync()
    warm = time.perf_counter() - start
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(ids, **kwargs)
    _sync()
    wall = time.perf_counter() - start
    generated = (out.shape[1] - ids.shape[1]) * ids.shape[0]
    return {
        "tok_s": round(generated / wall),
        "wall_s": round(wall, 2),
        "warm_up_s": round(warm, 1),
        "tokens": generated,
        "batch": ids.shape[0],
        "new_tokens": new,
        "compiled": hasattr(model, "_compiled_call") or warm > 10,
    }


def hf_greedy(
    model, prompts: list[list[int]], tokens: int, batch: int = 64, pad: int = 0, eos: list[int] | None = None
) -> list[list[int]]:
    """transformers `generate`, greedy, in left-padded batches; with `eos`, each sequence through its first EOS."""
    import torch

    ref = []
    for i in range(0, len(prompts), batch):
        chunk = prompts[i : i + batch]
        width = max(len(p) for p in chunk)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk], device=model.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=model.device)
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                eos_token_id=eos,
                pad_token_id=pad,
            )
        ref += out[:, width:].tolist()
    return ref if eos is None else [through_eos(t, set(eos), tokens) for t in ref]


def through_eos(tokens: list[int], eos: set[int], n: int) -> list[int]:
    """The first n tokens, through the first EOS."""
    out = []
    for t in tokens[:n]:
        out.append(t)
        if t in eos:
            break
    return out


def agreement(ref: list[list[int]], got: list[list[int]], tokens: int, name: str = "agree") -> dict:
    """Share of sequences whose first `tokens` tokens are identical, and the mean identical prefix."""
    same = [next((k for k, (a, b) in enumerate(zip(r, g)) if a != b), tokens) for r, g in zip(ref, got)]
    return {
        f"{name}_share": round(sum(s == tokens for s in same) / len(same), 4),
        f"{name}_mean_prefix": round(sum(same) / len(same), 2),
    }


def greedy_agreement(
    model, engine, prompts: list[list[int]], tokens: int, config: dict | None = None
) -> dict:
    """The engine's greedy tokens against `generate`; beside it, how far `generate` agrees with itself at another
    batch size, the engine's torch path and unfused matrix products, and the same check in float32."""
    import torch

    from secondtry.backends.engine import Engine

    def run(e):
        return [o[0].tokens for o in e.generate(prompts, max_new_tokens=tokens, ignore_eos=True)]

    ref = hf_greedy(model, prompts, tokens)
    out = {"agree_sequences": len(prompts), **agreement(ref, run(engine), tokens)}
    out.update(agreement(ref, hf_greedy(model, prompts, tokens, batch=16), tokens, "agree_hf_batch16"))
    out.update(
        agreement(ref, run(Engine(model, max_slots=len(prompts), fuse=False)), tokens, "agree_unfused")
    )
    out.update(
        agreement(ref, run(Engine(model, max_slots=len(prompts), kernels=False)), tokens, "agree_torch_path")
    )
    if config is not None and torch.cuda.is_available():
        net32 = random_model(config, "cuda", torch.float32)
        out.update(
            agreement(
                hf_greedy(net32, prompts, tokens),
                run(Engine(net32, max_slots=len(prompts))),
                tokens,
                "agree_fp32",
            )
        )
        del net32
        torch.cuda.empty_cache()
    return out


@contextlib.contextmanager
def _all_live(engine, context: int):
    """Every slot live at `context` tokens (state written directly; the KV is whatever the cache holds)."""
    import torch

    s = engine.slots
    with torch.inference_mode():
        engine.done[:s], engine.pos[:s], engine.count[:s] = False, context, 1
        engine.maxn[:s], engine.tok[:s] = engine.cap, 1
        engine.rows[max(engine.buckets)].copy_(torch.arange(s))
        try:
            yield max(engine.buckets)
        finally:
            engine.done[:s] = True


def step_times(engine, contexts: tuple[int, ...], steps: int = 20) -> dict:
    """Milliseconds per graphed decode step with every slot live, at a few contexts; the straight line through them
    splits a step into a fixed part (matrix products, glue) and a part per context token (KV reads)."""
    import torch

    times = {}
    for ctx in contexts:
        with _all_live(engine, ctx) as bucket:
            graph = engine._graph(bucket)
            graph.replay()
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            for _ in range(steps):
                graph.replay()
            b.record()
            b.synchronize()
            times[ctx] = a.elapsed_time(b) / steps
    (c0, t0), (c1, t1) = min(times.items()), max(times.items())
    slope = (t1 - t0) / (c1 - c0)  # ms per context token, all slots
    kv = engine.model.kv_bytes_per_token() * engine.slots
    return {
        "step_ms": {str(k): round(v, 3) for k, v in times.items()},
        "step_fixed_ms": round(t0 - slope * c0, 3),
        "step_kv_tb_s": round(kv / (slope / 1e3) / 1e12, 3),
    }


def decode_profile(engine, context: int, path) -> dict:
    """Per-kernel time of a few eager decode steps with every slot live (no prefill in the picture)."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    with _all_live(engine, context) as bucket, torch.inference_mode():
        engine._step(bucket)
        torch.cuda.synchronize()
        with profiler(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                engine._step(bucket)
            torch.cuda.synchronize()
    path.write_text(
        prof.key_averages().table(sort_by="cuda_time_total", row_limit=40, max_name_column_width=70)
    )
    return {}


def run(
    model: str = "qwen3-1.7b",
    requests: int = REQUESTS,
    prompt: int = PROMPT,
    new: int = NEW,
    resident: int = RESIDENT,
    variant: tuple[int, int] = (64, 1536),
    hf_batch: int = 256,
    hf_plain_new: int = 128,
    agree: int = 128,
    agree_tokens: int = 32,
    hf: bool = True,
    seed: int = 0,
    profile_to=None,
    report: Callable[[str, dict], None] = lambda stage, figures: None,
) -> tuple[dict, dict]:
    """(workload, figures); `report(stage, figures so far)` after each stage. A failed stage is recorded, not fatal."""
    import torch

    from secondtry.backends.engine import Engine

    config = MODELS[model]
    prompts, lengths = random_workload(config["vocab_size"], requests, prompt, variant, seed)
    workload = {
        "model": model,
        "weights": "random bf16",
        "requests": requests,
        "prompt_tokens": prompt,
        "new_tokens": new,
        "resident": resident,
        "variant_new_tokens": list(variant),
        "eos": "ignored",
        "temperature": TEMPERATURE,
        "hf_batch": hf_batch,
        "hf_plain_new_tokens": hf_plain_new,
        "agree_sequences": agree,
        "agree_tokens": agree_tokens,
        "seed": seed,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
    }
    figures: dict[str, Any] = {}

    def stage(name: str, fn: Callable[[], dict]) -> None:
        start = time.perf_counter()
        try:
            figures.update(fn())
        except Exception:
            figures[f"{name}_error"] = traceback.format_exc()[-2000:]
        figures[f"{name}_stage_s"] = round(time.perf_counter() - start, 1)
        report(name, figures)

    import transformers

    workload["transformers"] = transformers.__version__
    if torch.cuda.is_available():
        stage("bandwidth", lambda: {"copy_tb_s": round(copy_bandwidth() / 1e12, 3)})
    net = random_model(config, _device())
    start = time.perf_counter()
    engine = Engine(net, max_slots=resident)
    figures["engine_init_s"] = round(time.perf_counter() - start, 2)
    kv = engine.model.kv_bytes_per_token()
    if engine.model.kernels is not None:
        stage(
            "tune",
            lambda: tune_attention(
                engine.model.kernels,
                engine.model.kv_heads,
                engine.model.heads,
                engine.model.head_dim,
                resident,
                prompt + new // 2,
            ),
        )

    def default() -> dict:
        start = time.perf_counter()
        engine.warm_up(prompt + new, new, temperature=TEMPERATURE, ignore_eos=True)
        warm = time.perf_counter() - start
        r = time_engine(engine, prompts, [new] * requests, TEMPERATURE, seed)
        bound = roofline_tok_s(
            net,
            kv,
            figures.get("copy_tb_s", 4.29) * 1e12,
            min(resident, requests),
            [(prompt, new)] * requests,
        )
        return {
            "engine_tok_s": r["tok_s"],
            "engine_wall_s": r["wall_s"],
            "engine_warm_up_s": round(warm, 1),
            "engine_decode_steps": r["decode_steps"],
            "engine_slots": r["slots"],
            "engine_prefill_s": r["prefill_s"],
            "engine_decode_s": r["decode_s"],
            "roofline_tok_s": round(bound),
            "roofline_share": round(r["tok_s"] / bound, 3),
        }

    def varied() -> dict:
        r = time_engine(engine, prompts, lengths, TEMPERATURE, seed)
        bound = roofline_tok_s(
            net,
            kv,
            figures.get("copy_tb_s", 4.29) * 1e12,
            min(resident, requests),
            [(prompt, n) for n in lengths],
        )
        return {
            "variant_engine_tok_s": r["tok_s"],
            "variant_wall_s": r["wall_s"],
            "variant_decode_steps": r["decode_steps"],
            "variant_slots": r["slots"],
            "variant_prefill_s": r["prefill_s"],
            "variant_decode_s": r["decode_s"],
            "variant_roofline_tok_s": round(bound),
            "variant_roofline_share": round(r["tok_s"] / bound, 3),
        }

    stage("engine", default)
    if engine.model.kernels is not None and engine.graphs:
        stage("steps", lambda: step_times(engine, (prompt, prompt + new // 2, prompt + new - 24)))
        stage("gemm", lambda: gemm_rates(net))
        if profile_to is not None:
            stage("profile", lambda: decode_profile(engine, prompt + new // 2, profile_to))
    stage("agreement", lambda: greedy_agreement(net, engine, prompts[:agree], agree_tokens, config))
    stage("variant", varied)
    engine.release()
    if hf:
        sub = prompts[:hf_batch]
        stage(
            "hf_plain",
            lambda: {
                f"hf_plain_{k}": v for k, v in time_hf(net, sub, hf_plain_new, False, TEMPERATURE).items()
            },
        )
        stage(
            "hf_static",
            lambda: {f"hf_static_{k}": v for k, v in time_hf(net, sub, new, True, TEMPERATURE).items()},
        )
        figures["hf_tok_s"] = figures.get("hf_static_tok_s")
        figures["hf_plain_tok_s"] = figures.get("hf_plain_tok_s")
        figures["hf_compile_s"] = figures.get("hf_static_warm_up_s")
        if figures.get("hf_tok_s") and figures.get("engine_tok_s"):
            figures["speedup"] = round(figures["engine_tok_s"] / figures["hf_tok_s"], 2)
    report("done", figures)
    return workload, figures


if __name__ == "__main__":  # python -m secondtry.bench.generate [OUT_DIR]: the GPU run, with a record
    import json
    import sys
    from pathlib import Path

    from secondtry.bench import write_record

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("benchmarks/results")
    out.mkdir(parents=True, exist_ok=True)

    def show(stage: str, figures: dict) -> None:
        print(
            f"[{stage}]",
            json.dumps({k: v for k, v in figures.items() if not k.endswith("_error")}),
            flush=True,
        )
        for k, v in figures.items():
            if k.endswith("_error") and k.startswith(stage):
                print(v, flush=True)
        (out / "partial.json").write_text(json.dumps(figures, indent=1))

    workload, figures = run(report=show, profile_to=out / "profile.txt")
    print(
        write_record(
            "generate", "python3 -m secondtry.bench.generate " + str(out), workload, figures, out, gpus=1
        )
    )
