"""Pretrain a small Llama on teacher solutions of the synthetic task, and cache it by recipe."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from ..log import Log
from ..tasks import synthetic
from .tokenizer import build_tokenizer

TOY_VERSION = (
    3  # bump when the training code changes what a recipe makes (2: neutral retries; 3: one CPU thread)
)
RETRY_PROMPT = "Try again carefully."
MAX_POSITIONS = 512  # room for several retry turns of history
GROUP = 8  # batches drawn together and grouped by length
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4},
    "demo": {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4},
    "gpu": {
        "hidden_size": 512,
        "num_hidden_layers": 8,
        "num_attention_heads": 8,
    },  # 34M parameters (33,617,408)
}
GPU_SIZES = {"gpu"}  # pretrained on a CUDA device (bf16 autocast); refused on a CPU


@dataclass(frozen=True)
class Recipe:
    size: str
    steps: int
    batch: int
    lr: float
    seed: int = 0
    error_rate: float = 0.06
    retry_share: float = (
        0.3  # share of two-turn documents (a wrong attempt, the retry turn, a second attempt)
    )
    # the second attempt's error rate as a multiple of a first attempt's: 1 is a neutral world, where retrying
    # is no better than sampling again; below 1 plants an advantage for retrying (stated in every report)
    retry_error_scale: float = 1.0
    weight_decay: float = 0.1
    loaders: int = 0  # worker processes that make the batches (0: the training process, one stream)
    world: int = synthetic.WORLD_VERSION
    toy: int = TOY_VERSION

    def key(self) -> str:
        fields = dataclasses.asdict(self)
        if not self.loaders:  # recipes from before `loaders` keep their keys (and caches)
            del fields["loaders"]
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]


RECIPES: dict[str, Recipe] = {
    "tiny": Recipe(size="tiny", steps=200, batch=16, lr=3e-3, error_rate=0.08),
    "demo": Recipe(
        size="demo", steps=1500, batch=16, lr=3e-3, error_rate=0.08
    ),  # fewer steps: arithmetic not learnt
    # tens of millions of parameters, for runs on a GPU: more data and steps, a smaller step size
    # (making a batch of 128 documents takes about 25 ms of Python, longer than the model's step: 3 workers)
    "gpu": Recipe(size="gpu", steps=4000, batch=128, lr=6e-4, error_rate=0.08, loaders=3),
}


def build_model(size: str, tokenizer: PreTrainedTokenizerFast | None = None) -> LlamaForCausalLM:
    """A freshly initialised LlamaForCausalLM of a named size ("tiny" or "demo")."""
    if size not in SIZES:
        raise ValueError(f"unknown toy model size {size!r}; choose one of {', '.join(SIZES)}")
    tok = tokenizer or build_tokenizer(MAX_POSITIONS)
    shape = SIZES[size]
    config = LlamaConfig(
        vocab_size=len(tok),
        intermediate_size=4 * shape["hidden_size"],
        num_key_value_heads=shape["num_attention_heads"],
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        **shape,
    )
    return LlamaForCausalLM(config)


def documents(
    rng: random.Random, count: int, error_rate: float, retry_share: float, retry_error_scale: float = 1.0
) -> list[list[dict[str, str]]]:
    """Teacher conversations on train-split expressions: single-turn, or a wrong attempt then a retry whose
    steps are wrong at `retry_error_scale` times the first attempts' rate (1: no better than a fresh attempt)."""
    docs = []
    for _ in range(count):
        while True:
            operands, ops = synthetic.random_problem(rng, rng.choice([2, 3, 4]))
            expr = synthetic.expression(operands, ops)
            if synthetic.split_of(expr) == "train":  # test expressions stay unseen
                break
        msgs = [{"role": "user", "content": expr}]
        if rng.random() < retry_share:
            msgs += [
                {
                    "role": "assistant",
                    "content": synthetic.wrong_teacher_solution(operands, ops, rng, error_rate),
                },
                {"role": "user", "content": RETRY_PROMPT},
                {
                    "role": "assistant",
                    "content": synthetic.teacher_solution(operands, ops, rng, error_rate * retry_error_scale),
                },
            ]
        else:
            msgs.append(
                {"role": "assistant", "content": synthetic.teacher_solution(operands, ops, rng, error_rate)}
            )
        docs.append(msgs)
    return docs


def _encode(tok: PreTrainedTokenizerFast, doc: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Token ids, and a mask of the last assistant turn: a forced-wrong first attempt is context, not a target."""
    out = tok.apply_chat_template(doc, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    mask = list(out["assistant_masks"])
    start = len(mask)
    while start > 0 and mask[start - 1]:
        start -= 1
    return out["input_ids"], [0] * start + mask[start:]


def _collate(pad_id: int, encoded: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    """Right-padded ids with labels on assistant tokens only (their <|end|> included)."""
    width = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), width), pad_id)
    labels = torch.full((len(encoded), width), -100)
    attention = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, (row, mask) in enumerate(encoded):
        n = len(row)
        ids[i, :n] = torch.tensor(row)
        attention[i, :n] = 1
        labels[i, :n] = torch.where(torch.tensor(mask, dtype=torch.bool), ids[i, :n], -100)
    return {"input_ids": ids, "attention_mask": attention, "labels": labels}


def _batches(
    tok: PreTrainedTokenizerFast,
    rng: random.Random,
    batch: int,
    error_rate: float,
    retry_share: float,
    retry_error_scale: float = 1.0,
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless batches, grouped by length (GROUP batches at a time) so little compute goes to padding."""
    while True:
        docs = documents(rng, batch * GROUP, error_rate, retry_share, retry_error_scale)
        encoded = sorted((_encode(tok, d) for d in docs), key=lambda e: len(e[0]))
        group = [encoded[i : i + batch] for i in range(0, len(encoded), batch)]
        rng.shuffle(group)
        for b in group:
            yield _collate(tok.pad_token_id, b)


class _Stream(torch.utils.data.IterableDataset):
    """`_batches` in a data-loader worker: worker w draws from its own generator, seeded (seed, w); the loader
    takes one batch from each worker in turn, so a fixed number of workers gives a fixed sequence."""

    def __init__(
        self, seed: int, batch: int, error_rate: float, retry_share: float, retry_error_scale: float = 1.0
    ) -> None:
        self.seed, self.batch, self.error_rate, self.retry_share = seed, batch, error_rate, retry_share
        self.retry_error_scale = retry_error_scale

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        rng = random.Random(f"{self.seed}/{info.id if info else 0}")
        return _batches(
            build_tokenizer(MAX_POSITIONS),
            rng,
            self.batch,
            self.error_rate,
            self.retry_share,
            self.retry_error_scale,
        )


def pretrain(
    size: str,
    out_dir: str | Path,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    log: Log | None = None,
    error_rate: float = 0.06,
    retry_share: float = 0.3,
    weight_decay: float = 0.1,
    loaders: int = 0,
    retry_error_scale: float = 1.0,
) -> Path:
    """Train a fresh model for exactly `steps` AdamW steps and save it atomically to `out_dir`: on the CPU
    (one thread, deterministic), or for the GPU sizes on a CUDA device under bf16 autocast (float32 weights). With
    `loaders`, that many worker processes make the batches while the model trains."""
    log = log or Log()
    out_dir = Path(out_dir)
    cuda = size in GPU_SIZES
    if cuda and not torch.cuda.is_available():
        raise ValueError(
            f"toy model size {size!r} is pretrained on a GPU (a few minutes on an H200) and no CUDA "
            f"device is here; on a CPU use toy:demo"
        )
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    # one thread on the CPU: a sum splits differently over two threads than over one, and over 1,500 steps
    # such rounding differences grow into another model (the demo model's base sampled pass@1 came out at
    # 19.5 % with one thread and 36.3 % with two), so the same recipe gives the same weights on any machine
    torch.set_num_threads(threads if cuda else 1)
    torch.use_deterministic_algorithms(not cuda)
    device = torch.device("cuda" if cuda else "cpu")
    try:
        torch.manual_seed(seed)
        rng = random.Random(seed)
        tok = build_tokenizer(MAX_POSITIONS)
        model = build_model(size, tok).to(device)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay)
        warmup = max(1, steps // 20)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda s: (
                min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
            ),
        )  # warmup, cosine to lr/10
        batches = (
            _batches(tok, rng, batch, error_rate, retry_share, retry_error_scale)
            if not loaders
            else iter(
                torch.utils.data.DataLoader(
                    _Stream(seed, batch, error_rate, retry_share, retry_error_scale),
                    batch_size=None,
                    num_workers=loaders,
                    prefetch_factor=8,
                    pin_memory=cuda,
                )
            )
        )
        losses: list[float] = []
        start = time.perf_counter()
        with log.progress(f"pretraining toy model ({size})", steps, "steps") as bar:
            for _ in range(steps):
                batch_ = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                    loss = model(**batch_).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                schedule.step()
                losses.append(round(loss.item(), 4))
                bar(1)
        wall_s = time.perf_counter() - start
        model.to("cpu").eval()
        model.generation_config = GenerationConfig(
            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, max_new_tokens=128
        )
        record: dict[str, Any] = {
            "size": size,
            "steps": steps,
            "batch": batch,
            "lr": lr,
            "seed": seed,
            "error_rate": error_rate,
            "retry_share": retry_share,
            "retry_error_scale": retry_error_scale,
            "weight_decay": weight_decay,
            "loaders": loaders,
            "threads": torch.get_num_threads(),
            "world": synthetic.WORLD_VERSION,
            "toy": TOY_VERSION,
            "params": sum(p.numel() for p in model.parameters()),
            "wall_s": round(wall_s, 2),
            "losses": losses,
        }
        tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            (tmp / "recipe.json").write_text(
                json.dumps(record) + "\n"
            )  # written last: marks a complete folder
            if out_dir.exists():
                shutil.rmtree(out_dir)
            os.replace(tmp, out_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info(
            f"pretrained toy model {size}: {record['params']:,} parameters, {steps} steps in {wall_s:.0f} s, "
            f"loss {sum(losses[:10]) / min(10, steps):.3f} -> {sum(losses[-10:]) / min(10, steps):.3f}"
        )
        return out_dir
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def default_cache_dir() -> Path:
    return Path(os.environ.get("SECONDTRY_CACHE") or Path.home() / ".cache" / "secondtry" / "toy")


def toy_model(
    name: str, cache_dir: str | Path | None = None, log: Log | None = None, retry_error_scale: float = 1.0
) -> Path:
    """The folder of the named toy model, pretrained on first use and cached by recipe (the named recipe, in
    the world `retry_error_scale` makes: see Recipe)."""
    if name not in RECIPES:
        raise ValueError(f"unknown toy model {name!r}; choose one of {', '.join(RECIPES)}")
    log = log or Log()
    recipe = dataclasses.replace(RECIPES[name], retry_error_scale=retry_error_scale)
    path = Path(cache_dir or default_cache_dir()).expanduser() / f"{name}-{recipe.key()}"
    if (path / "recipe.json").is_file():
        return path
    log.info(f"toy model {name} not cached; pretraining it into {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return pretrain(
        recipe.size,
        path,
        recipe.steps,
        recipe.batch,
        recipe.lr,
        recipe.seed,
        log=log,
        error_rate=recipe.error_rate,
        retry_share=recipe.retry_share,
        weight_decay=recipe.weight_decay,
        loaders=recipe.loaders,
        retry_error_scale=recipe.retry_error_scale,
    )
