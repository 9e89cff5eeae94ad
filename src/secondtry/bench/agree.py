"""`secondtry bench agree`: the engine against transformers `generate` on real weights, greedy.

Random weights make greedy comparison meaningless (bf16 near-ties everywhere); a trained model's
top token usually wins by a margin. For each dtype, on the first `--n` problems of a task file
with the model's chat template (the prompt a run's first attempt gets), measured in one process:

  generate        transformers `generate`, greedy, left-padded batches of `--batch` prompts
  generate_other  the same at batch `--other-batch`: generate's own agreement with itself when only
                  the batch (padding, kernel shapes) changes, the floor bf16 rounding sets
  engine          the generation engine (backends/engine), greedy, its own slots and buckets

Each figure is the share of sequences whose first `--tokens` new tokens are identical (a sequence
ending earlier compares through its EOS), with the mean identical prefix (`bench generate`'s
`agreement`: a sequence identical through its EOS counts all `--tokens`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def run(
    model_path: str,
    data: Path,
    task: str = "gsm8k",
    n: int = 256,
    tokens: int = 64,
    batch: int = 64,
    other_batch: int = 16,
    dtypes: tuple[str, ...] = ("float32", "bfloat16"),
    device: str = "auto",
    report=lambda stage, figures: None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch

    from ..backends.engine import Engine
    from ..backends.hf import render
    from ..config import TaskConfig
    from ..models import eos_ids, load_model, load_tokenizer, resolve_device
    from ..tasks import TASKS
    from ..types import Message
    from .generate import agreement, hf_greedy, through_eos

    dev = resolve_device(device)
    tokenizer = load_tokenizer(model_path)
    problems = TASKS[task](TaskConfig(name=task, path=str(data), limit=n, shuffle=False), 0)
    prompts = [
        tokenizer(render(tokenizer, [Message("user", p.prompt)], {}), add_special_tokens=False)["input_ids"]
        for p in problems
    ]
    figures: dict[str, Any] = {}
    for dtype in dtypes:
        start = time.perf_counter()
        model = load_model(model_path, dtype, dev)
        eos = eos_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        ref = hf_greedy(model, prompts, tokens, batch, pad, eos)
        other = hf_greedy(model, prompts, tokens, other_batch, pad, eos)
        engine = Engine(model, eos)
        outs = engine.generate(prompts, max_new_tokens=tokens, temperature=0.0)
        got = [through_eos(row[0].tokens, set(eos), tokens) for row in outs]
        name = {"float32": "fp32", "bfloat16": "bf16"}.get(dtype, dtype)
        figures.update(agreement(ref, other, tokens, f"{name}_generate_other"))
        figures.update(agreement(ref, got, tokens, f"{name}_engine"))
        figures[f"{name}_engine_kernels"] = engine.model.kernels is not None
        figures[f"{name}_stage_s"] = round(time.perf_counter() - start, 1)
        report(name, {k: v for k, v in figures.items() if k.startswith(name)})
        engine.release()
        del engine, model
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    workload = {
        "model": model_path,
        "task": task,
        "data": str(data),
        "problems": len(prompts),
        "new_tokens": tokens,
        "batch": batch,
        "other_batch": other_batch,
        "greedy": True,
        "device": str(dev),
        "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None,
        "torch": torch.__version__,
        "mean_prompt_tokens": round(sum(map(len, prompts)) / max(1, len(prompts)), 1),
    }
    return workload, figures
