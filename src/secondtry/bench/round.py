"""`secondtry bench round`: what one round of the reference experiment costs, stage by stage, and projected.

Qwen3-1.7B weights cannot be downloaded here, so the reference config (`--config`, by default
configs/math500-qwen3-1.7b.yaml) runs on the same architecture with random bf16 weights and a
tokenizer built here: a byte-level BPE trained on the training problems, padded with filler
tokens to the architecture's 151,936 entries, with a ChatML template. The loop is the real one
(`loop.run`: base evaluation, then one round of attempts -> retries -> verification -> filter
-> SFT -> evaluation) on `--train` problems of the training split and `--eval` of the test
split, with every stage doing its real work. Random weights neither stop nor solve, so two
components are replaced, for this command only (`seams`: passed to `loop.run`, nothing patched):

  lengths   every request generates exactly its own length, EOS ignored: drawn per prompt from
            a log-normal (median `--median-new`, sigma `--sigma`), cut at sampling.max_new_tokens
            (an Engine subclass; on a CPU the engine is used too, to check this code)
  verdicts  the verifier judges every output as in a run (its time is real); the verdict is
            then set correct with probability `--pass-rate`, keyed by (problem, text), so the
            share of problems retried (1 - pass rate) is the reference base model's: 62 % fail
            at 38 % pass@1. Retries pass at the same rate (the reference's ~20 % would keep
            fewer examples; SFT costs its fixed steps of full packed rows either way)

Each generation stage runs as one engine session (backends/stream.py): first attempts, their
verdicts (made beside the engine) and the retries of the failed ones flow through one running
batch, chunk after chunk. The loop's generation rate (tokens over the stage's wall time, loading,
verification and bookkeeping included) is set beside the engine's own rate on `bench generate`'s
default workload, measured in the same process on a model of the same architecture
(`engine_tok_s`, `attempts_share`, `eval_share`).

Projection to the full round (12,000 training problems, MATH-500): attempts and filter scale
with the problems (`--train` at or above the engine's resident slots keeps it in steady state),
evaluation with the test problems, SFT is measured at the config's steps (with `--steps` below
them: the measured time, model loading and merging included, times the config's steps over those
run; its rows are packed full at any scale). Base evaluation happens once per experiment and is
given apart.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FULL_TRAIN, FULL_EVAL = 12000, 500


def _unit(*parts: Any) -> float:
    """A number in [0, 1) from the parts (stable across processes and runs)."""
    digest = hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def draw_length(key: Any, median: float, sigma: float, cap: int, floor: int = 16) -> int:
    """A log-normal length keyed by `key`, within [floor, cap]."""
    u = min(max(_unit("length", key), 1e-12), 1 - 1e-12)
    return int(min(cap, max(floor, round(median * math.exp(sigma * statistics.NormalDist().inv_cdf(u))))))


def build_tokenizer(texts: list[str], vocab: int):
    """Byte-level BPE trained on `texts` (up to 32,000 entries), filler tokens up to `vocab`, a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=min(vocab, 32000),
        special_tokens=special,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    state = json.loads(tok.to_str())
    have = state["model"]["vocab"]
    for i in range(vocab - len(have)):  # words a random model may emit; no merge produces them
        have[f"Ġw{i}"] = len(have)
    tok = Tokenizer.from_str(json.dumps(state))
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        chat_template=template,
        clean_up_tokenization_spaces=False,
        model_max_length=32768,
    )


def build_model(arch: dict, texts: list[str], out: Path, device: str) -> Path:
    """The architecture with random weights and the tokenizer above, saved as an HF model folder."""
    from .generate import random_model

    tok = build_tokenizer(texts, arch["vocab_size"])
    if len(tok) != arch["vocab_size"]:
        raise RuntimeError(
            f"the benchmark tokenizer has {len(tok)} tokens, the architecture {arch['vocab_size']}"
        )
    model = random_model(arch, device)
    for c in (model.config, model.generation_config):
        c.eos_token_id, c.pad_token_id, c.bos_token_id = tok.eos_token_id, tok.pad_token_id, None
    model.save_pretrained(out)
    tok.save_pretrained(out)
    del model
    return out


def seams(
    median: float, sigma: float, pass_rate: float, tally: dict[str, Any], waves: bool = False
) -> dict[str, Any]:
    """`loop.run`'s components for this benchmark: samplers whose engine generates drawn lengths with EOS
    ignored, and the config's verifier pool with its verdicts forced to `pass_rate` after it judged.
    Lengths drawn at the cap count as cut, as a real run's would, and are expected: no warning about them.
    `waves`: the sampler offers no stream, so the loop generates turn by turn (one engine session per
    `generate` call: the path before streams), for comparison. Each session's decode steps and the tokens
    they made are tallied: tokens / (steps x slots) is how full the engine was kept (`occupancy`)."""
    from ..backends.engine import Engine
    from ..backends.hf import HFSampler
    from ..loop import verifier_pool

    class DrawnLengths(Engine):
        """Each request generates exactly its drawn length (EOS ignored); one below the cap ends as a
        completion ("stop"), one at the cap is cut ("length"). Each session's cache is tallied."""

        def open(self, max_len, max_new_tokens, **kwargs):
            kwargs["ignore_eos"] = True
            super().open(max_len, max_new_tokens, **kwargs)
            self.caps: dict[int, int] = {}
            self.steps_at_open, self.decoded = self.steps, 0
            tally.setdefault("sessions", []).append({"max_len": self.max_len, "slots": self.slots})

        def submit(self, ids, *, max_new_tokens=None, **kwargs):
            cap = self.cap if max_new_tokens is None else max_new_tokens
            r = super().submit(ids, max_new_tokens=draw_length(list(ids), median, sigma, cap), **kwargs)
            self.caps[r] = cap
            return r

        def step(self):
            finished = super().step()
            self.decoded += sum(len(o.tokens) - 1 for _, _, o in finished)  # the first token is prefill's
            if not self.busy():
                tally["sessions"][-1].update(
                    rebuilds=self.rebuilds,
                    slots_last=self.slots,
                    backoffs=self.backoffs,
                    decode_steps=self.steps - self.steps_at_open,
                    decoded_tokens=self.decoded,
                )
            return [
                (
                    r,
                    j,
                    dataclasses.replace(o, finish_reason="stop")
                    if o.finish_reason == "length" and len(o.tokens) < self.caps[r]
                    else o,
                )
                for r, j, o in finished
            ]

    class Sampler(HFSampler):
        """The hf sampler, always on the drawn-length engine (on a CPU its torch path, to check this code)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if self.engine is None:
                self.engine = self._engine()

        def _engine(self):
            return DrawnLengths(
                self.model, self.eos_ids, max_slots=self.cfg.backend.max_slots, warn=self.log.warn
            )

        def stream(self, *args: Any, **kwargs: Any):
            return None if waves else super().stream(*args, **kwargs)

    def make_verifier(cfg):
        return ForcedVerdicts(verifier_pool(cfg), pass_rate, tally)

    return {"make_sampler": Sampler, "make_verifier": make_verifier, "warn_cut": False}


class ForcedVerdicts:
    """A verifier whose verdicts are set correct with probability `pass_rate`, keyed by (problem, text), after
    `pool` judged them (the loop times verification itself: cost.*_verify_s). `tally["verdicts"]` counts
    them."""

    def __init__(self, pool: Any, pass_rate: float, tally: dict[str, float]) -> None:
        self.pool, self.pass_rate, self.tally = pool, pass_rate, tally

    def map(self, items, progress=None) -> list:
        items = list(items)
        verdicts = self.pool.map(items, progress)
        self.tally["verdicts"] = self.tally.get("verdicts", 0) + len(items)
        return [
            dataclasses.replace(v, correct=_unit("verdict", p.id, text) < self.pass_rate)
            for (p, text), v in zip(items, verdicts)
        ]

    @property
    def threaded(self) -> bool:
        return bool(getattr(self.pool, "threaded", False))

    def close(self) -> None:
        self.pool.close()


def engine_rate(arch: dict, device: str) -> dict[str, Any]:
    """`bench generate`'s engine figure on its default workload (1,024 requests of 200 random prompt tokens and
    768 new, 512 resident, temperature 0.7, EOS ignored; a small one on a CPU), on a fresh model of `arch`."""
    import gc

    import torch

    from ..backends.engine import Engine
    from .generate import (
        NEW,
        PROMPT,
        REQUESTS,
        RESIDENT,
        TEMPERATURE,
        random_model,
        random_workload,
        time_engine,
    )

    cuda = device == "cuda"
    requests, prompt, new, resident = (REQUESTS, PROMPT, NEW, RESIDENT) if cuda else (16, 16, 24, 8)
    model = random_model(arch, device)
    prompts, _ = random_workload(arch["vocab_size"], requests, prompt, (new, new), seed=0)
    engine = Engine(model, [], max_slots=resident)
    timed = time_engine(engine, prompts, [new] * requests, TEMPERATURE)
    engine.release()
    del engine, model
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return {
        "engine_tok_s": timed["tok_s"],
        "engine_slots": timed["slots"],
        "engine_workload": f"{requests} requests, prompt {prompt}, new {new}, at most {resident} resident",
    }


def training_problems(cfg, n: int) -> list:
    """The first `n` problems of the config's training task, through its loader (bad rows are named and skipped)."""
    from ..tasks import TASKS

    task = cfg.train_task.model_copy(update={"limit": n, "shuffle": False, "on_bad_row": "skip"})
    return TASKS[task.name](task, cfg.seed)


def real_verdicts(cfg, problems: list) -> dict[str, Any]:
    """Verdicts/s of the config's verifier and workers on the problems' real solutions (what a trained model
    writes)."""
    from ..loop import verifier_pool

    items = [(p, p.solution) for p in problems if p.solution]
    with verifier_pool(cfg) as pool:
        pool.map(items[:8])  # workers started and warm
        start = time.perf_counter()
        verdicts = pool.map(items)
        wall = time.perf_counter() - start
    return {
        "real_verdicts": len(items),
        "real_verdicts_per_s": round(len(items) / wall, 1),
        "real_verdicts_correct": round(sum(v.correct is True for v in verdicts) / max(1, len(items)), 3),
    }


def run(
    config: Path,
    train_path: Path,
    test_path: Path,
    work: Path,
    arch_name: str = "qwen3-1.7b",
    train: int = 2048,
    evaluate: int = 500,
    steps: int | None = None,
    median_new: float = 380,
    sigma: float = 0.6,
    pass_rate: float = 0.38,
    overrides: list[str] | None = None,
    log=None,
    waves: bool = False,
    report: Callable[[str, dict], None] = lambda stage, f: None,
) -> tuple[dict, dict]:
    """(workload, figures): the measured round and its projection to the full reference round."""
    import torch

    from ..config import ConfigError, load_config
    from ..loop import run as run_loop
    from ..store import read_json, read_jsonl
    from ..types import Kind
    from .generate import MODELS

    device = "cuda" if torch.cuda.is_available() else "cpu"
    arch = dict(MODELS[arch_name])
    if arch_name == "tiny-qwen3":
        arch["vocab_size"] = (
            1024  # room for the byte alphabet and a few merges: a check of this code on a CPU
        )
    model_dir = work / "model"
    sets = [
        f"model.path={model_dir}",
        f"train_task.path={train_path}",
        f"eval_task.path={test_path}",
        f"train_task.limit={train}",
        "train_task.shuffle=true",
        f"eval_task.limit={evaluate}",
        f"run_dir={work / 'runs'}",
        "stopping.policies=[max_rounds]",
        "stopping.max_rounds=1",
        "training.report_to=[]",
    ]
    cfg = load_config(config, sets + list(overrides or []))
    # the small measured round holds no validation split out of its few problems; the projection charges the
    # config's split as evaluation of that many more problems (a validation split is evaluated every round)
    held_out = cfg.evaluation.validation
    cfg = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(update={"validation": 0})})
    full_steps = cfg.training.steps
    if steps is not None:
        cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"steps": steps})})
    sample = training_problems(cfg, 4000)  # the tokenizer's text; their solutions give the verdict rate
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    build_model(arch, [p.prompt for p in sample], model_dir, device)
    figures: dict[str, Any] = {"build_model_s": round(time.perf_counter() - start, 1)}
    report("model", figures)
    tally: dict[str, float] = {}
    start = time.perf_counter()
    run_loop(
        cfg, **({"log": log} if log is not None else {}), **seams(median_new, sigma, pass_rate, tally, waves)
    )
    figures["loop_s"] = round(time.perf_counter() - start, 1)
    root = cfg.run_path
    base, one = read_json(root / "round_0" / "round.json"), read_json(root / "round_1" / "round.json")
    if not (root / "round_1" / "eval.jsonl").is_file():
        raise ConfigError(
            f"{root / 'round_1'}: the measured round ended before its evaluation (no retry was kept to train "
            "on); give it more problems (--train), a higher --pass-rate, or lengths below the cap (--median-new "
            "under sampling.max_new_tokens)"
        )
    cost = one["cost"]
    attempts = list(read_jsonl(root / "round_1" / "attempts.jsonl"))
    problems = len({a["problem_id"] for a in attempts})
    eval_problems = len(list(read_jsonl(root / "round_1" / "eval.jsonl")))
    eval_outputs = list(read_jsonl(root / "round_1" / "eval_attempts.jsonl"))
    tokens = {
        "attempts": sum(a["n_tokens"] for a in attempts),
        "eval": sum(r["n_tokens"] for r in eval_outputs),
    }
    info = one["figures"].get("training", {})
    stages = {
        "attempts_s": cost["attempts_s"],
        "filter_s": cost["filter_s"],
        "train_s": cost.get("train_s"),
        "eval_s": cost.get("eval_s"),
        "base_eval_s": base["cost"]["eval_s"],
    }
    figures.update({k: round(v, 3) for k, v in stages.items() if v is not None})
    for stage in (
        "attempts",
        "eval",
    ):  # where the stage's time went: loading, generating, verifying, the rest
        for part in ("load_s", "generate_s", "verify_s"):
            if f"{stage}_{part}" in cost:
                figures[f"{stage}_{part}"] = cost[f"{stage}_{part}"]
    figures.update(
        {
            "train_problems": problems,
            "eval_problems": eval_problems,
            "first_attempts": sum(a["kind"] == Kind.FIRST for a in attempts),
            "retries": sum(a["kind"] == Kind.RETRY for a in attempts),
            "kept": one["figures"]["train"]["examples"].get("kept"),
            "attempts_tokens": tokens["attempts"],
            "attempts_tok_s": round(tokens["attempts"] / cost["attempts_s"]),
            "eval_tokens": tokens["eval"],
            "eval_tok_s": round(tokens["eval"] / cost["eval_s"]) if cost.get("eval_s") else None,
            "attempts_generate_tok_s": round(tokens["attempts"] / cost["attempts_generate_s"])
            if cost.get("attempts_generate_s")
            else None,
            "eval_generate_tok_s": round(tokens["eval"] / cost["eval_generate_s"])
            if cost.get("eval_generate_s")
            else None,
            "mean_new_tokens": round(tokens["attempts"] / max(1, len(attempts)), 1),
            "verdicts": int(tally.get("verdicts", 0)),
            "sft_steps": info.get("steps"),
            "sft_tokens": info.get("tokens_trained"),
            "sft_tok_s": round(info["tokens_trained"] / cost["train_s"]) if cost.get("train_s") else None,
        }
    )
    figures.update(real_verdicts(cfg, sample[: min(2000, 4 * train)]))
    figures["sessions"] = tally.get("sessions", [])
    # how full the engine was kept: decoded tokens per decode step and slot, over every session of the loop
    # (a device-free figure: turn-by-turn generation drains the engine at the end of every call)
    slot_steps = sum(t.get("decode_steps", 0) * t.get("slots_last", t["slots"]) for t in figures["sessions"])
    figures["occupancy"] = (
        round(sum(t.get("decoded_tokens", 0) for t in figures["sessions"]) / slot_steps, 3)
        if slot_steps
        else None
    )
    figures.update(engine_rate(arch, device))  # bench generate's default workload, this process, this device
    for stage in ("attempts", "eval"):
        if figures.get(f"{stage}_tok_s") and figures.get("engine_tok_s"):
            figures[f"{stage}_share"] = round(figures[f"{stage}_tok_s"] / figures["engine_tok_s"], 3)
    scale_train, scale_eval = (FULL_TRAIN - held_out) / problems, (FULL_EVAL + held_out) / eval_problems
    # random text has no answer to parse, so its verdicts cost nothing: a round's verdicts are charged apart,
    # at the rate the verifier judged real MATH solutions (boxed answers) with the config's workers
    full_verdicts = len(attempts) * scale_train + len(eval_outputs) * scale_eval
    figures["projected_verdicts"] = round(full_verdicts)
    projected = {
        "attempts_s": cost["attempts_s"] * scale_train,
        "filter_s": cost["filter_s"] * scale_train,
        "train_s": (cost.get("train_s") or 0.0) * full_steps / cfg.training.steps,
        "eval_s": (cost.get("eval_s") or 0.0) * scale_eval,
        "verify_s": full_verdicts / figures["real_verdicts_per_s"],
    }
    figures["projected"] = {k: round(v, 1) for k, v in projected.items()}
    figures["projected_round_min"] = round(sum(projected.values()) / 60, 2)
    figures["projected_base_eval_min"] = round(base["cost"]["eval_s"] * scale_eval / 60, 2)
    figures["sft_steps_measured"] = cfg.training.steps
    figures["sft_projected"] = cfg.training.steps != full_steps
    figures["measured_round_min"] = round(
        sum(v for k, v in stages.items() if k != "base_eval_s" and v) / 60, 2
    )
    workload = {
        "config": str(config),
        "architecture": arch_name,
        "weights": "random bf16" if device == "cuda" else "random float32",
        "train_problems": problems,
        "eval_problems": eval_problems,
        "full_train_problems": FULL_TRAIN,
        "full_eval_problems": FULL_EVAL,
        "full_validation_problems": held_out,
        "new_tokens": f"log-normal, median {median_new}, sigma {sigma}, cut at sampling.max_new_tokens "
        f"({cfg.sampling.max_new_tokens}), EOS ignored",
        "pass_rate_forced": pass_rate,
        "generation": "turn by turn (--waves)" if waves else "streamed",
        "sft_steps": cfg.training.steps,
        "sft_steps_projected": full_steps,
        "sft_rows_per_step": cfg.training.batch_size,
        "sft_row_tokens": cfg.training.max_length,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "torch": torch.__version__,
    }
    report("done", figures)
    return workload, figures
