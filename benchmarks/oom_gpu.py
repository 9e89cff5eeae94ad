"""Provoke real CUDA out-of-memory errors and show what the back-off does, as JSON.

    python benchmarks/oom_gpu.py     # on a GPU machine: about 100 s on one H200

secondtry's config needs pydantic; where it is missing (the GPU machine), bring its wheels:
`pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64
pydantic pydantic-core annotated-types typing-inspection -d wheels`, there
`pip install --no-deps --target /tmp/pyd wheels/*.whl` and run with PYTHONPATH=/tmp/pyd.

Generation goes through `backends/hf.py` (HFSampler on transformers `generate`, `backend.engine:
off`) with a batch far too large for memory; training through `training/sft.py` when TRL and
datasets import, else through a plain PyTorch step under the same back-off function
(`memory.fit_batch`). The model is a randomly initialised Qwen3-1.7B-shaped network (built here,
nothing downloaded) with the toy character tokenizer. Prints one JSON record and writes it to
benchmarks/results/oom-<machine>-<date>.json. Without a GPU it prints "no GPU" and exits 0.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # runs from a checkout without installing the package

import torch  # noqa: E402

from secondtry.log import Log  # noqa: E402


class Collect(Log):
    """Keeps the back-off warnings (and prints them)."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        print(f"warning: {message}", file=sys.stderr)


def random_model(folder: Path) -> Path:
    """A Qwen3-1.7B-shaped model with random bf16 weights and the toy tokenizer (it has a chat template)."""
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    from secondtry.toy.tokenizer import build_tokenizer

    tok = build_tokenizer(model_max_length=4096)
    config = Qwen3Config(
        vocab_size=len(tok),
        hidden_size=2048,
        intermediate_size=6144,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    del model
    torch.cuda.empty_cache()
    return folder


def prompts(n: int, chars: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice("0123456789+-= ") for _ in range(chars)) for _ in range(n)]


def config(model: Path, **sections):
    from secondtry.config import build_config

    return build_config(
        {
            "name": "oom",
            "model": {"path": str(model), "dtype": "bfloat16"},
            "train_task": {"name": "synthetic"},
            "eval_task": {"name": "synthetic", "split": "test"},
            **sections,
        }
    )


def generation(model: Path, batch: int, n: int, chars: int, new_tokens: int) -> dict:
    """n prompts of `chars` tokens at `batch` rows: the sampler halves its batch until it fits."""
    from secondtry.backends.hf import HFSampler
    from secondtry.config import HFBackendConfig, SamplingConfig
    from secondtry.types import Message

    log = Collect()
    backend = {"batch_size": batch, "device": "cuda"}
    if (
        "engine" in HFBackendConfig.model_fields
    ):  # transformers generate: the engine sizes its slots from free memory
        backend["engine"] = "off"
    sampler = HFSampler(str(model), config(model, backend=backend), log)
    convs = [[Message("user", p)] for p in prompts(n, chars)]
    params = SamplingConfig(temperature=1.0, max_new_tokens=new_tokens)
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    outs = sampler.generate(convs, params, n=1, seed=0)
    wall = time.perf_counter() - start
    peak, final = torch.cuda.max_memory_allocated() / 2**30, sampler.batch_size
    check = min(32, n)  # the same rows again at a batch that fits from the start: per-row seeds, same tokens?
    sampler.batch_size = check
    again = sampler.generate(convs[:check], params, n=1, seed=0)
    same = sum(a[0].text == b[0].text for a, b in zip(outs[:check], again)) / check
    sampler.close()
    return {
        "start_batch": batch,
        "final_batch": final,
        "backoffs": len(log.warnings),
        "warnings": log.warnings,
        "prompts": n,
        "prompt_tokens": chars,
        "new_tokens": new_tokens,
        "completions": sum(len(o) for o in outs),
        "wall_s": round(wall, 1),
        "peak_mem_gb": round(peak, 1),
        "same_tokens_as_unbacked_batch": same,
    }


def training_sft(model: Path, batch: int, length: int, steps: int) -> dict:
    """training/sft.py with a per-device batch far too large: fit_batch halves it, doubles accumulation."""
    from secondtry.training import train
    from secondtry.types import Example, Message

    log = Collect()
    body = prompts(batch * steps, length, seed=1)
    examples = [
        Example(f"p{i}", (Message("user", b[: length // 4]),), b, "retry") for i, b in enumerate(body)
    ]
    cfg = config(
        model,
        backend={"device": "cuda"},
        training={"steps": steps, "batch_size": batch, "max_length": length, "lr": 1e-5, "warmup_ratio": 0},
    )
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        info = train(str(model), examples, cfg, Path(tmp) / "out", seed=0, log=log)
    return {
        "path": "training/sft.py (TRL SFTTrainer + LoRA)",
        "start_batch": batch,
        "backoffs": info.get("oom_backoffs", []),
        "warnings": log.warnings,
        "steps": info["steps"],
        "tokens_trained": info["tokens_trained"],
        "wall_s": round(time.perf_counter() - start, 1),
        "peak_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 1),
    }


def training_torch(model: Path, batch: int, length: int, steps: int) -> dict:
    """A plain PyTorch full fine-tuning step under memory.fit_batch (no TRL here)."""
    from transformers import AutoModelForCausalLM

    from secondtry.memory import fit_batch

    log = Collect()
    net = AutoModelForCausalLM.from_pretrained(model, dtype=torch.bfloat16).cuda().train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-5)
    vocab = net.config.vocab_size

    def run(micro: int, accum: int) -> int:
        opt.zero_grad(set_to_none=True)  # a step cut short by the error left partial gradients
        gen = torch.Generator(device="cuda").manual_seed(0)
        for _ in range(steps):  # no checkpoint here: a back-off starts the steps over
            for _ in range(accum):
                ids = torch.randint(vocab, (micro, length), device="cuda", generator=gen)
                (net(input_ids=ids, labels=ids).loss / accum).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return steps

    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    done, backoffs = fit_batch(run, batch, 1, log, "training (plain PyTorch)")
    return {
        "path": "plain PyTorch step through memory.fit_batch (TRL not importable)",
        "start_batch": batch,
        "backoffs": backoffs,
        "warnings": log.warnings,
        "steps": done,
        "tokens_trained": steps * batch * length,
        "wall_s": round(time.perf_counter() - start, 1),
        "peak_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--gen-batch", type=int, default=4096, help="generation batch to start from (far too large)"
    )
    ap.add_argument("--gen-prompts", type=int, default=4096)
    ap.add_argument("--prompt-tokens", type=int, default=1000)
    ap.add_argument("--new-tokens", type=int, default=8)
    ap.add_argument("--train-batch", type=int, default=256, help="per-device training batch to start from")
    ap.add_argument("--train-length", type=int, default=1024)
    ap.add_argument("--train-steps", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no GPU")
        return
    try:
        import pydantic  # noqa: F401
    except ImportError:
        sys.exit(
            "benchmarks/oom_gpu.py needs pydantic (secondtry's config): see the wheels step at the top of this file"
        )
    from secondtry.bench import write_record

    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = random_model(Path(tmp) / "qwen3-1.7b-random")
        figures["generate"] = generation(
            model, args.gen_batch, args.gen_prompts, args.prompt_tokens, args.new_tokens
        )
        try:
            import datasets  # noqa: F401
            import trl  # noqa: F401

            sft = True
        except ImportError:
            sft = False
        run = training_sft if sft else training_torch
        figures["train"] = run(model, args.train_batch, args.train_length, args.train_steps)
    workload = {
        "model": "Qwen3-1.7B shape, random bf16 weights, toy character tokenizer",
        **{k: v for k, v in vars(args).items() if k != "out"},
    }
    shown = [a for a in sys.argv[1:] if a != "--out" and a != str(args.out) and not a.startswith("--out=")]
    command = " ".join(["python benchmarks/oom_gpu.py", *shown])
    path = write_record("oom", command.strip(), workload, figures, args.out)
    print(json.dumps({"figures": figures, "record": str(path)}, indent=1))


if __name__ == "__main__":
    main()
