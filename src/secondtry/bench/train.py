"""`secondtry bench train`: real tokens per second of LoRA SFT, the project's trainer against TRL and a plain loop.

One process, one model architecture with random weights (Qwen3-1.7B by default), the same
examples for every path: total lengths drawn uniformly from `min_len`–`max_len`, of which a
prompt of `prompt_min`–`prompt_max` tokens carries no loss. Every path takes about
`tokens_per_step` real tokens per optimizer step and LoRA on all linear layers (rank 16):

  secondtry      `training.build_trainer` with the config's defaults: TRL SFTTrainer,
                 best-fit packing into rows of `pack` tokens, per-example varlen attention
                 (`training.attention`), TRL's fused LM head, no gradient checkpointing,
                 Liger kernels where installed
  secondtry_no_liger / secondtry_liger   the same with Liger off / on
  secondtry_gc   the same with gradient checkpointing (less memory, more compute)
  trl_packing    TRL's defaults with `packing=True` (rows of `pack` tokens): sdpa attention,
                 gradient checkpointing on (TRL's default)
  trl_packing_no_gc  the same without gradient checkpointing
  padded_peft    a hand loop: PEFT model, AdamW, micro-batches of `padded_batch` examples
                 padded to their longest, accumulated to `tokens_per_step`, sdpa attention,
                 transformers' loss on full logits

Each path runs in its own process (Liger patches transformers process-wide) on a fresh model.
For each: real (non-pad) tokens/s over `steps` timed steps after `warmup` steps, the median
step time, peak GPU memory (allocated), and the loss of one packed batch against the same
examples run one by one (`leak`: relative difference; above bf16 noise, tokens saw other
examples). Model FLOPs utilisation counts 2 x (matmul params) per token forward, twice that
for LoRA training (forward + input gradients), plus attention, against a measured bf16
matrix-product rate.
"""

from __future__ import annotations

import importlib.metadata
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .generate import MODELS, _device, _sync, random_model


def make_examples(
    n: int, min_len: int, max_len: int, prompt_min: int, prompt_max: int, vocab: int, seed: int = 0
) -> list[dict[str, list[int]]]:
    """Pre-tokenized rows: `input_ids` and `completion_mask` (1 on the tokens that carry loss)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        total = rng.randint(min_len, max_len)
        prompt = min(rng.randint(prompt_min, prompt_max), total - 1)
        rows.append(
            {
                "input_ids": [rng.randrange(16, vocab - 16) for _ in range(total)],
                "completion_mask": [0] * prompt + [1] * (total - prompt),
            }
        )
    return rows


def tokenizer():
    """A stand-in tokenizer: the rows are token ids already; TRL only needs pad and EOS."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(WordLevel({"<pad>": 0, "<eos>": 1, "<unk>": 2}, unk_token="<unk>"))
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )


def flops_per_token(config: dict, rows: list[dict[str, list[int]]], lora: bool = True) -> float:
    """Training FLOPs per token: matmuls (2/param forward; x2 LoRA, x3 full) plus causal attention."""
    h, layers = config["hidden_size"], config["num_hidden_layers"]
    q = config["num_attention_heads"] * config["head_dim"]
    kv = config["num_key_value_heads"] * config["head_dim"]
    per_layer = h * q * 2 + h * kv * 2 + 3 * h * config["intermediate_size"]
    params = layers * per_layer + config["vocab_size"] * h
    lengths = [len(r["input_ids"]) for r in rows]
    mean_context = sum(n * (n + 1) / 2 for n in lengths) / sum(lengths)  # keys seen per query, causal
    attention = 4 * layers * q * mean_context  # QK^T and PV, forward
    return (2 if lora else 3) * 2 * params + 3 * attention  # attention backward ~ 2x its forward


def matmul_rate(n: int = 8192, reps: int = 10) -> float:
    """bf16 matrix-product FLOP/s on random data (mean of `reps` after warm-up)."""
    import torch

    if _device() == "cpu":
        n = 512
    a, b = (torch.randn(n, n, device=_device(), dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    _sync()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync()
    return 2 * n**3 * reps / (time.perf_counter() - t)


class Clock:
    """Step end times (after a device sync) and the real tokens each step took."""

    def __init__(self) -> None:
        self.ends: list[float] = []
        self.tokens: list[int] = []

    def step(self, tokens: int) -> None:
        _sync()
        self.ends.append(time.perf_counter())
        self.tokens.append(tokens)

    def figures(self, warmup: int, peak: int) -> dict[str, Any]:
        times = [b - a for a, b in zip(self.ends[warmup - 1 :], self.ends[warmup:])]
        tokens = sum(self.tokens[warmup:])
        return {
            "tokens_per_s": round(tokens / sum(times)),
            "step_s_median": round(statistics.median(times), 4),
            "tokens_per_step": round(tokens / len(times)),
            "steps_timed": len(times),
            "peak_mem_gb": round(peak / 1e9, 2),
        }


def _trainer_clock(trainer, clock: Clock):
    from transformers import TrainerCallback

    class Steps(TrainerCallback):
        seen = 0

        def on_step_end(self, args, state, control, **kwargs):
            clock.step(int(state.num_input_tokens_seen) - self.seen)
            self.seen = int(state.num_input_tokens_seen)

    trainer.add_callback(Steps())


def _lora(rank: int):
    from peft import LoraConfig

    return LoraConfig(
        r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )


def _trainer_config(**training):
    """A config for `training.build_trainer` alone: the project's training defaults, no tracker."""
    from ..config import build_config

    return build_config(
        {
            "name": "bench",
            "model": {"path": "random"},
            "train_task": {"name": "synthetic"},
            "eval_task": {"name": "synthetic", "split": "test"},
            "stopping": {"max_rounds": 1},
            "training": {"dropout": 0.0, "warmup_ratio": 0.0, "report_to": [], **training},
        }
    )


def run_secondtry(
    model,
    rows,
    tok,
    work: Path,
    pack: int,
    rows_per_step: int,
    steps: int,
    rank: int,
    clock: Clock,
    bf16: bool = True,
    liger: bool | str = "auto",
    gradient_checkpointing: bool = False,
):
    from datasets import Dataset

    from ..training.sft import build_trainer

    cfg = _trainer_config(
        steps=steps,
        batch_size=rows_per_step,
        max_length=pack,
        rank=rank,
        alpha=2 * rank,
        lr=2e-5,
        packing=True,
        liger=liger,
        gradient_checkpointing=gradient_checkpointing,
    )
    trainer = build_trainer(model, tok, Dataset.from_list(rows), cfg, work, seed=0, bf16=bf16)
    _trainer_clock(trainer, clock)
    trainer.train()
    return trainer


def run_trl(
    model,
    rows,
    tok,
    work: Path,
    pack: int,
    rows_per_step: int,
    steps: int,
    rank: int,
    clock: Clock,
    bf16: bool = True,
    gradient_checkpointing: bool = True,
):
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(work / "trl"),
        max_steps=steps,
        per_device_train_batch_size=rows_per_step,
        packing=True,
        max_length=pack,
        bf16=bf16,
        use_cpu=not bf16,
        learning_rate=2e-5,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        include_num_input_tokens_seen=True,
        gradient_checkpointing=gradient_checkpointing,
        logging_steps=1,
        seed=0,
        data_seed=0,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=_lora(rank),
    )
    trainer.remove_callback(PrinterCallback)
    _trainer_clock(trainer, clock)
    trainer.train()
    return trainer


def run_padded(model, rows, tok, tokens_per_step: int, micro: int, steps: int, rank: int, clock: Clock):
    """The plain loop: padded micro-batches accumulated to about `tokens_per_step` real tokens."""
    import torch
    from peft import get_peft_model

    peft_model = get_peft_model(model, _lora(rank))
    peft_model.train()
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=2e-5)
    order = list(range(len(rows)))
    at = 0
    for _ in range(steps):
        taken = 0
        while taken < tokens_per_step:
            batch = [rows[order[(at + i) % len(rows)]] for i in range(micro)]
            at += micro
            longest = max(len(r["input_ids"]) for r in batch)
            ids = torch.zeros(micro, longest, dtype=torch.long)
            mask = torch.zeros(micro, longest, dtype=torch.long)
            labels = torch.full((micro, longest), -100, dtype=torch.long)
            for i, r in enumerate(batch):
                n = len(r["input_ids"])
                ids[i, :n] = torch.tensor(r["input_ids"])
                mask[i, :n] = 1
                labels[i, :n] = torch.tensor(
                    [t if m else -100 for t, m in zip(r["input_ids"], r["completion_mask"])]
                )
            dev = peft_model.device
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                out = peft_model(input_ids=ids.to(dev), attention_mask=mask.to(dev), labels=labels.to(dev))
            out.loss.backward()
            taken += int(mask.sum())
        opt.step()
        opt.zero_grad(set_to_none=True)
        clock.step(taken)
    return peft_model


def packed_vs_alone(model, rows: list[dict[str, list[int]]], attn: str, n: int = 4) -> dict[str, float]:
    """`n` examples packed in one row vs run one at a time: the loss's relative difference, and the
    largest logit difference inside the first example (rounding noise: it has nothing before it)
    and inside the later ones (where tokens of earlier examples could leak in)."""
    import torch

    from ..training.attention import register

    sample, dev = rows[:n], model.device
    ids = torch.tensor([t for r in sample for t in r["input_ids"]], device=dev)[None]
    labels = torch.tensor(
        [t if m else -100 for r in sample for t, m in zip(r["input_ids"], r["completion_mask"])], device=dev
    )[None]
    position = torch.cat([torch.arange(len(r["input_ids"])) for r in sample]).to(dev)[None]
    cu = torch.tensor([0] + [len(r["input_ids"]) for r in sample]).cumsum(0).to(torch.int32).to(dev)
    labels[0, cu[:-1].long()] = -100
    with torch.no_grad():
        register()
        model.set_attn_implementation(attn)
        kwargs = (
            {
                "cu_seq_lens_q": cu,
                "cu_seq_lens_k": cu,
                "max_length_q": int(cu.diff().max()),
                "max_length_k": int(cu.diff().max()),
            }
            if attn != "sdpa"
            else {}
        )
        packed = model(input_ids=ids, position_ids=position, **kwargs).logits[0].float()
        model.set_attn_implementation("sdpa")
        alone = torch.cat(
            [
                model(input_ids=ids[:, a:b]).logits[0].float()
                for a, b in zip(cu[:-1].tolist(), cu[1:].tolist())
            ]
        )

        def loss(logits: torch.Tensor) -> float:
            target = labels[0, 1:]
            keep = target != -100
            return float(torch.nn.functional.cross_entropy(logits[:-1][keep], target[keep]))

        first = int(cu[1])
        diff = (packed - alone).abs().amax(-1)
        return {
            "loss_rel_diff": abs(loss(packed) - loss(alone)) / loss(alone),
            "max_logit_diff_first_example": float(diff[:first].max()),
            "max_logit_diff_later_examples": float(diff[first:].max()),
        }


def _path(name: str, p: dict[str, Any], queue=None) -> dict[str, Any]:
    """Run one path on a fresh random model; its figures (or its error). Runs in its own process
    when `queue` is given: kernel patchers (Liger) change transformers for the whole process."""
    import torch

    config = MODELS[p["model"]]
    rows = make_examples(
        p["examples"], p["min_len"], p["max_len"], p["prompt_min"], p["prompt_max"], config["vocab_size"]
    )
    tok, device = tokenizer(), _device()
    cuda = bf16 = device == "cuda"
    liger = {"secondtry_no_liger": False, "secondtry_liger": True}.get(name, "auto")
    rows_per_step, total, rank, pack = (
        max(1, p["tokens_per_step"] // p["pack"]),
        p["warmup"] + p["steps"],
        p["rank"],
        p["pack"],
    )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    clock = Clock()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            model = random_model(config, device).train()
            if name.startswith("secondtry"):
                run_secondtry(
                    model,
                    rows,
                    tok,
                    work,
                    pack,
                    rows_per_step,
                    total,
                    rank,
                    clock,
                    bf16,
                    liger=liger,
                    gradient_checkpointing=name == "secondtry_gc",
                )
            elif name.startswith("trl_packing"):
                run_trl(
                    model,
                    rows,
                    tok,
                    work,
                    pack,
                    rows_per_step,
                    total,
                    rank,
                    clock,
                    bf16,
                    name == "trl_packing",
                )
            else:
                run_padded(model, rows, tok, p["tokens_per_step"], p["padded_batch"], total, rank, clock)
        figures = clock.figures(p["warmup"], torch.cuda.max_memory_allocated() if cuda else 0)
        if name.startswith("secondtry"):
            from ..training.sft import use_liger

            figures["liger"] = use_liger(liger, device)
    except Exception as e:  # one failing path is reported; the others still run
        figures = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
    if queue is not None:
        queue.put(figures)
    return figures


def _isolated(name: str, p: dict[str, Any]) -> dict[str, Any]:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_path, args=(name, p, queue))
    child.start()
    child.join()
    return queue.get() if not queue.empty() else {"error": f"the process exited with code {child.exitcode}"}


PATHS = (
    "secondtry",
    "secondtry_no_liger",
    "secondtry_liger",
    "secondtry_gc",
    "trl_packing",
    "trl_packing_no_gc",
    "padded_peft",
)
DEFAULT_PATHS = (
    "secondtry",
    "secondtry_no_liger",
    "secondtry_gc",
    "trl_packing",
    "trl_packing_no_gc",
    "padded_peft",
)


def run(
    model: str = "qwen3-1.7b",
    examples: int = 2000,
    min_len: int = 300,
    max_len: int = 1200,
    prompt_min: int = 50,
    prompt_max: int = 250,
    tokens_per_step: int = 16384,
    pack: int = 4096,
    padded_batch: int = 8,
    rank: int = 16,
    warmup: int = 3,
    steps: int = 10,
    paths: tuple[str, ...] = DEFAULT_PATHS,
    isolate: bool = True,
    report: Callable[[str, dict], None] = lambda name, f: None,
) -> tuple[dict, dict]:
    """Every path in `paths` (each in its own process with `isolate`), then the ratios and the leak check."""
    import torch

    p = {
        "model": model,
        "examples": examples,
        "min_len": min_len,
        "max_len": max_len,
        "prompt_min": prompt_min,
        "prompt_max": prompt_max,
        "tokens_per_step": tokens_per_step,
        "pack": pack,
        "padded_batch": padded_batch,
        "rank": rank,
        "warmup": warmup,
        "steps": steps,
    }
    config = MODELS[model]
    rows = make_examples(examples, min_len, max_len, prompt_min, prompt_max, config["vocab_size"])
    workload = {**p, "rows_per_step": max(1, tokens_per_step // pack), "torch": torch.__version__}
    for name in ("transformers", "trl", "peft", "liger-kernel"):
        try:
            workload[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:  # optional packages
            workload[name] = None
    figures: dict[str, Any] = {"matmul_tflops": round(matmul_rate() / 1e12, 1)}
    flops = flops_per_token(config, rows)
    figures["gflop_per_token"] = round(flops / 1e9, 3)
    figures["compute_limit_tokens_per_s"] = round(figures["matmul_tflops"] * 1e12 / flops)
    for name in paths:
        figures[name] = _isolated(name, p) if isolate else _path(name, p)
        report(name, figures[name])
    limit = figures["compute_limit_tokens_per_s"]
    for name in paths:
        f = figures[name]
        if "tokens_per_s" in f:
            f["mfu"] = round(f["tokens_per_s"] / limit, 3)
    for ours in ("secondtry", "secondtry_gc"):
        base = figures.get(ours, {})
        for other in paths:
            if (
                not other.startswith("secondtry")
                and "tokens_per_s" in base
                and "tokens_per_s" in figures[other]
            ):
                figures[f"{ours}_speedup_vs_{other}"] = round(
                    base["tokens_per_s"] / figures[other]["tokens_per_s"], 2
                )
                if figures[other]["peak_mem_gb"]:
                    figures[f"{ours}_memory_ratio_vs_{other}"] = round(
                        base["peak_mem_gb"] / figures[other]["peak_mem_gb"], 2
                    )
    m = random_model(config, _device()).eval()
    figures["leak"] = {
        "secondtry_varlen": packed_vs_alone(m, rows, "secondtry_varlen"),
        "sdpa_packed_position_ids": packed_vs_alone(m, rows, "sdpa"),
    }
    del m
    return workload, figures


def profile(
    model: str = "qwen3-1.7b", steps: int = 3, pack: int = 4096, rows_per_step: int = 4, top: int = 25
) -> str:
    """The project trainer's top CUDA kernels over `steps` steps (after 2 warm-up steps)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    from transformers import TrainerCallback

    config = MODELS[model]
    rows = make_examples(400, 300, 1200, 50, 250, config["vocab_size"])
    table: list[str] = []

    class Prof(TrainerCallback):
        prof = None

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 2:
                self.prof = torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
                self.prof.__enter__()

        def on_step_end(self, args, state, control, **kwargs):
            if self.prof is not None and state.global_step == 2 + steps:
                _sync()
                self.prof.__exit__(None, None, None)
                table.append(self.prof.key_averages().table(sort_by="cuda_time_total", row_limit=top))
                self.prof = None

    from datasets import Dataset

    from ..training.sft import build_trainer

    cfg = _trainer_config(steps=2 + steps, batch_size=rows_per_step, max_length=pack)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(
            random_model(config, "cuda").train(),
            tokenizer(),
            Dataset.from_list(rows),
            cfg,
            Path(tmp),
            seed=0,
            bf16=True,
            callbacks=[Prof()],
        )
        trainer.train()
    return table[0] if table else ""
