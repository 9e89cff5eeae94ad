"""SFT on (problem -> correct retry) with TRL `SFTTrainer`, LoRA through PEFT or full fine-tuning.

Examples are conversational prompt-completion pairs, so TRL puts the loss on the assistant
turn only (`completion_only_loss`), whatever the chat template. With `training.packing`
(the default) TRL packs them best-fit into rows of `max_length` tokens with no padding, and
the attention runs per example through `attention.VARLEN` (torch's FlashAttention-2 varlen
kernel on a GPU): no token sees another example. TRL's fused LM head scores only the
completion tokens, in tiles, without the full vocabulary-sized logits. The output folder
holds the merged model in HF format (loadable with `AutoModelForCausalLM.from_pretrained`),
the LoRA adapter in `adapter/`, and a model card; with `training.merge: false` it holds only the
adapter, over the base model (`adapters.py`: an earlier round's adapter is stacked in).

With a `checkpoints` folder, the trainer saves its whole state there every
`checkpoint.train_steps` steps and a new call resumes from the last complete checkpoint: on
CPU the resumed run ends with the same weights, bit for bit, as one that was never stopped
(optimizer, scheduler, RNG and data order are restored). A CUDA out-of-memory error halves
the batch, doubles gradient accumulation and resumes from the last checkpoint
(`memory.fit_batch`).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from .. import distributed
from ..config import Config
from ..log import Log
from ..memory import fit_batch
from ..models import adapter_base, load_model, load_tokenizer, resolve_device, resolve_dtype
from ..store import check_seal, crash_point, fsync_tree, seal, write_text
from ..types import Example
from . import adapters
from .attention import register

COMPLETE = "complete"  # written into a checkpoint folder once every file of it is on disk


def _dataset(examples: list[Example], cfg: Config):
    from datasets import Dataset

    rows = []
    for e in examples:
        row: dict[str, Any] = {
            "prompt": [{"role": m.role, "content": m.content} for m in e.messages],
            "completion": [{"role": "assistant", "content": e.completion}],
        }
        if cfg.model.chat_template_kwargs:
            row["chat_template_kwargs"] = dict(cfg.model.chat_template_kwargs)
        rows.append(row)
    return Dataset.from_list(rows)


def _step_callback(bar, where: str):
    """Progress, crash points, and checkpoints marked complete (older ones removed) once on disk."""
    from transformers import TrainerCallback

    class Steps(TrainerCallback):
        shown = 0  # steps the bar shows: a resumed or backed-off run does not count its steps twice

        def on_train_begin(self, args, state, control, **kwargs):
            bar.resize(state.max_steps)  # training.max_epochs may have cut the steps

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step > self.shown:
                bar(state.global_step - self.shown)
                self.shown = state.global_step
            crash_point(f"{where}:step{state.global_step}")

        def on_save(self, args, state, control, **kwargs):
            if not distributed.is_main():  # rank 0 saves the checkpoint and marks it
                return
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            crash_point(f"{where}:saving{state.global_step}")  # saved, not yet marked: not resumed from
            fsync_tree(folder)
            seal(folder, folder / COMPLETE, step=state.global_step)  # files and their hash, checked on resume
            for old in Path(args.output_dir).glob("checkpoint-*"):
                if old != folder:
                    shutil.rmtree(old, ignore_errors=True)

    return Steps()


def last_checkpoint(folder: Path, log: Log = Log(), where: str = "train") -> Path | None:
    """The latest checkpoint marked complete whose files match their record (the marker); incomplete ones (a
    kill mid-save) are removed, and damaged ones too, with the reason in the log."""
    done = []
    for p in folder.glob("checkpoint-*"):
        why = check_seal(p, p / COMPLETE) if (p / COMPLETE).is_file() else "incomplete"
        if why is None:
            done.append(p)
        elif distributed.is_main():
            if why != "incomplete":
                log.warn(
                    f"{where}: {p.name} is not trusted, {why}; it is removed and training goes on "
                    f"from an earlier point"
                )
            shutil.rmtree(p, ignore_errors=True)
    return max(done, key=lambda p: int(p.name.rsplit("-", 1)[1]), default=None)


_MISSING_TOLD: set[str] = set()  # trackers this process already named as missing: said once, not every round


def trackers(wanted: list[str], log: Log = Log()) -> list[str]:
    """The configured trackers whose package is installed (the others are named once, and skipped)."""
    import importlib.util

    have = [name for name in wanted if importlib.util.find_spec(name) is not None]
    missing = sorted(set(wanted) - set(have) - _MISSING_TOLD)
    if missing:
        _MISSING_TOLD.update(missing)
        log.info(
            f"training logs: {', '.join(missing)} not installed, so not written (pip install "
            f"{' '.join(missing)}, or training.report_to=[] to say nothing)"
        )
    return have


def _round_of(where: str) -> str:
    """ "round 2 " for a stage of round 2 (round_2/train), else nothing: the start of a progress label."""
    return where.split("/")[0].replace("_", " ") + " " if where.startswith("round_") else ""


def use_liger(setting: bool | str, device_type: str) -> bool:
    """`training.liger` resolved: auto means a CUDA device and liger-kernel importable."""
    import importlib.util

    if setting == "auto":
        return device_type == "cuda" and importlib.util.find_spec("liger_kernel") is not None
    if setting and importlib.util.find_spec("liger_kernel") is None:
        raise ValueError(
            "training.liger: true needs liger-kernel (pip install liger-kernel); or set it to auto"
        )
    return bool(setting)


@contextlib.contextmanager
def contained_patches(model):
    """Undo, on exit, what kernel patchers (Liger) change in the model's modeling module.

    Liger replaces functions and class methods of e.g. `modeling_qwen3` for the whole
    process; a round then evaluates with stock transformers code.
    """
    module = sys.modules[type(model).__module__]
    saved = dict(vars(module))
    methods = {
        (cls, name): value
        for cls in saved.values()
        if isinstance(cls, type) and cls.__module__ == module.__name__
        for name, value in vars(cls).items()
        if callable(value)
    }
    try:
        yield
    finally:
        for name in set(vars(module)) - set(saved):
            delattr(module, name)
        for name, value in saved.items():
            if vars(module).get(name) is not value:
                setattr(module, name, value)
        for (cls, name), value in methods.items():
            if vars(cls).get(name) is not value:
                setattr(cls, name, value)


def _save(
    trained,
    tokenizer,
    cfg: Config,
    device: torch.device,
    staging: Path,
    out_dir: Path,
    where: str,
    start_model: str,
) -> None:
    """The adapter (LoRA), the merged model and the tokenizer, moved into `out_dir` whole; with
    `training.merge: false` the adapter alone, over the base model (training/adapters.py)."""
    shutil.rmtree(staging, ignore_errors=True)  # a kill mid-save left it
    if cfg.training.method == "lora":
        lora = trained.peft_config["default"]
        if isinstance(lora.target_modules, set):  # written in hash order otherwise: equal runs, unequal files
            lora.target_modules = sorted(lora.target_modules)
        if cfg.training.merge:
            trained.save_pretrained(staging / "adapter")
            trained = trained.merge_and_unload()
        else:
            base = adapter_base(start_model)  # started from an earlier round's adapter: stack onto it
            adapters.keep(trained, base or start_model, start_model if base else None, staging)
    if cfg.training.method == "full" or cfg.training.merge:
        trained.set_attn_implementation("sdpa")  # the packed-row attention is for training only
        trained.to(resolve_dtype(cfg.model.dtype, device)).save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    crash_point(f"{where}:merged")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)


def lora_config(cfg: Config):
    """The PEFT LoRA config of `training`."""
    from peft import LoraConfig

    t = cfg.training
    return LoraConfig(
        r=t.rank,
        lora_alpha=t.alpha,
        lora_dropout=t.dropout,
        target_modules=t.target_modules,
        task_type="CAUSAL_LM",
    )


def uses_fsdp(cfg: Config) -> bool:
    """training.fsdp, where there are several GPU processes to shard over. One process trains the model
    whole; on CPUs accelerate has no FSDP and the processes train under DDP (train() says so)."""
    return cfg.training.fsdp and distributed.active() and torch.cuda.is_available()


def _gathered(trainer, start_model: str, cfg: Config):
    """After FSDP training: the whole model, its weights gathered from every rank (a collective: every
    rank calls it), rebuilt on rank 0 in host memory (it may not fit one GPU); None on the others."""
    from peft import get_peft_model

    state = trainer.accelerator.get_state_dict(trainer.model)  # full, on rank 0's host memory
    if not distributed.is_main():
        return None
    t = cfg.training
    model = load_model(start_model, "float32" if t.method == "full" else cfg.model.dtype, torch.device("cpu"))
    if t.method == "lora":
        model = get_peft_model(model, lora_config(cfg))
    missing, unexpected = model.load_state_dict(state, strict=False)
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    if unexpected or set(missing) & set(trained):
        raise RuntimeError(
            f"FSDP state did not match the model: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    return model


def sharded_params(model) -> int:
    """Parameters held as DTensor shards (FSDP2); 0 for a model that is whole on each rank."""
    from torch.distributed.tensor import DTensor

    return sum(isinstance(p, DTensor) for p in model.parameters())


def per_rank_batch(batch: int) -> int:
    """training.batch_size is the global batch: with several processes each takes its share."""
    ranks = distributed.world_size()
    if batch % ranks:
        raise ValueError(
            f"training.batch_size={batch} does not split over {ranks} processes; make it a multiple "
            f"of {ranks}"
        )
    return batch // ranks


def build_trainer(
    model,
    tokenizer,
    examples: list[Example] | Any,
    cfg: Config,
    work: Path,
    seed: int,
    bf16: bool,
    callbacks: list | None = None,
    batch: int | None = None,
    accum: int | None = None,
    save_steps: int | None = None,
    report_to: list[str] | None = None,
):
    """The TRL SFTTrainer the rounds use: prompt-completion rows, loss on the completion only.

    `examples`: Examples, or a `datasets.Dataset` already tokenized (`input_ids`,
    `completion_mask`), as the benchmark gives. `batch`/`accum` override the config's (after
    an out-of-memory back-off); `save_steps` turns on checkpoints in `work/trainer`.
    """
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    t = cfg.training
    warnings.filterwarnings(
        "ignore", message=".*(gradient|activation)_checkpointing.*", category=FutureWarning
    )
    if t.packing:
        model.set_attn_implementation(register())
    sharded = uses_fsdp(cfg)
    device_type = "cuda" if sharded else model.device.type  # with FSDP the model waits in host memory
    # FSDP2, one shard group per decoder layer (the model's _no_split_modules); its own activation
    # checkpointing, since the trainer's would gather each layer's weights a second time
    fsdp = (
        dict(
            fsdp=True,
            fsdp_config={
                "version": 2,
                "reshard_after_forward": True,
                "activation_checkpointing": t.gradient_checkpointing,
                "state_dict_type": "FULL_STATE_DICT",
            },
        )
        if sharded
        else {}
    )
    args = SFTConfig(
        output_dir=str(work / "trainer"),
        max_steps=t.steps,
        per_device_train_batch_size=batch or t.batch_size,
        gradient_accumulation_steps=accum or t.grad_accum,
        learning_rate=t.lr,
        lr_scheduler_type=t.schedule,
        warmup_steps=int(round(t.warmup_ratio * t.steps)),
        weight_decay=t.weight_decay,
        max_length=t.max_length,
        packing=t.packing,
        packing_strategy="bfd",
        completion_only_loss=True,
        use_liger_kernel=use_liger(t.liger, device_type),
        bf16=bf16,
        use_cpu=device_type == "cpu",
        logging_steps=1,  # every step's loss is kept: the figures are the same after a resume
        ddp_find_unused_parameters=False,  # with several processes (distributed.py): every trained weight is used
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        report_to=report_to or "none",
        disable_tqdm=True,
        seed=seed,
        data_seed=seed,
        include_num_input_tokens_seen=True,
        dataloader_num_workers=0,
        gradient_checkpointing=t.gradient_checkpointing
        and not sharded,  # TRL's default is True; ours the config's
        **fsdp,
    )
    if not distributed.active() and args.n_gpu > 1:
        # one process on a machine of several GPUs: train on this one (the Trainer would wrap the model in
        # nn.DataParallel, which TRL refuses); several GPUs train together under torchrun (DDP / FSDP)
        args._n_gpu = 1
    peft_config = lora_config(cfg) if t.method == "lora" else None
    data = _dataset(examples, cfg) if isinstance(examples, list) else examples
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks or [],
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log dict; the progress bar is enough
    if t.max_epochs:  # a round with few examples trains fewer steps: at most max_epochs passes over its rows
        per_step = (
            args.per_device_train_batch_size * args.gradient_accumulation_steps * distributed.world_size()
        )
        cap = max(
            1, math.ceil(t.max_epochs * math.ceil(len(trainer.train_dataset) / per_step))
        )  # a pass: its steps
        if cap < args.max_steps:
            args.max_steps, args.warmup_steps = cap, int(round(t.warmup_ratio * cap))
    if bf16:
        # PEFT keeps LoRA weights in float32 and casts each layer's input to float32 before them;
        # under bf16 autocast the product runs in bf16 anyway, so those casts only copied
        # activations (a fifth of the GPU time of a step, measured on an H200). The weights and
        # their optimizer state stay float32.
        for module in trainer.model.modules():
            if hasattr(module, "cast_input_dtype_enabled"):
                module.cast_input_dtype_enabled = False
    return trainer


def train(
    start_model: str,
    examples: list[Example],
    cfg: Config,
    out_dir: Path,
    seed: int,
    log: Log = Log(),
    checkpoints: Path | None = None,
    where: str = "train",
    logs: Path | None = None,
) -> dict[str, Any]:
    """Fine-tune `start_model` on `examples`; write the merged model to `out_dir` (atomically).

    `checkpoints`: a folder kept across calls (resume from it); without one, a temporary
    folder that goes at the end. `where` names the crash points. `logs`: where TensorBoard
    writes (with `training.report_to`); none, no tracker. Returns the training figures:
    steps, tokens trained, loss at the start and end, out-of-memory back-offs.
    """
    if not examples:
        raise ValueError("no training examples")
    t = cfg.training
    device = resolve_device(cfg.backend.device)
    tokenizer = load_tokenizer(start_model)
    bf16 = resolve_dtype(cfg.model.dtype, device) == torch.bfloat16
    work = checkpoints or Path(tempfile.mkdtemp(prefix=".train-", dir=out_dir.parent))
    staging = work / "model"
    report_to = trackers(t.report_to, log) if logs else []
    if t.fsdp and distributed.active() and not uses_fsdp(cfg):
        log.info(f"{where}: training.fsdp needs GPUs (accelerate has no FSDP on CPUs); training under DDP")
    if "tensorboard" in report_to:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(logs)  # transformers' TensorBoard callback reads it
    try:
        with (
            contextlib.ExitStack() as stack,
            log.progress(
                f"{_round_of(where)}training ({t.method}, {len(examples)} examples)",
                total=t.steps,
                unit="steps",
            ) as bar,
        ):
            steps = _step_callback(bar, where)

            def attempt(batch: int, accum: int):
                # full fine-tuning keeps float32 master weights (bf16 updates at small lr would round away)
                # with FSDP each rank loads into host memory and keeps only its shard on the GPU
                model = load_model(
                    start_model,
                    "float32" if t.method == "full" else cfg.model.dtype,
                    torch.device("cpu") if uses_fsdp(cfg) else device,
                )
                model.train()
                stack.enter_context(contained_patches(model))
                trainer = build_trainer(
                    model,
                    tokenizer,
                    examples,
                    cfg,
                    work,
                    seed,
                    bf16,
                    [steps],
                    batch,
                    accum,
                    save_steps=cfg.checkpoint.train_steps if checkpoints else None,
                    report_to=report_to,
                )
                resume = last_checkpoint(work / "trainer", log, where)
                if resume:
                    log.info(f"{where}: resuming from {resume.name}")
                trainer.train(resume_from_checkpoint=str(resume) if resume else None)
                return trainer

            trainer, backoffs = fit_batch(attempt, per_rank_batch(t.batch_size), t.grad_accum, log, where)
        losses = [
            h["loss"] for h in trainer.state.log_history if "loss" in h
        ]  # one per step, resumed ones too
        window = max(1, len(losses) // 20)
        info = {
            "method": t.method,
            "steps": trainer.state.global_step,
            "examples": len(examples),
            "rows": len(trainer.train_dataset),
            "epochs": round(trainer.state.epoch or 0.0, 2),
            "tokens_trained": int(trainer.state.num_input_tokens_seen or 0),
            "loss_first": _mean(losses[:window]),
            "loss_last": _mean(losses[-window:]),
            "train_loss": _mean(losses),
            "start_model": start_model,
            "packing": t.packing,
            "between_rounds": t.between_rounds,
            "reported_to": report_to,
            **({"processes": distributed.world_size()} if distributed.active() else {}),
        }
        if backoffs:
            info["oom_backoffs"] = backoffs
        if uses_fsdp(cfg):  # the weights are sharded: gathered first, by every rank
            info["fsdp"] = sharded_params(trainer.model)  # how many parameters FSDP sharded (its DTensors)
            whole = _gathered(trainer, start_model, cfg)
        else:
            whole = trainer.model  # every rank holds the same weights
        if distributed.is_main():  # rank 0 writes them
            _save(whole, tokenizer, cfg, device, staging, out_dir, where, start_model)
        del trainer
    finally:
        os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
        if checkpoints is None:
            shutil.rmtree(work, ignore_errors=True)  # a failed run leaves no staging folder behind
    return info


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def write_model_card(
    out_dir: Path,
    round_: int,
    cfg: Config,
    train_info: dict[str, Any],
    data_info: dict[str, Any],
    evaluation: dict[str, Any] | None = None,
) -> None:
    """A README.md in the model folder: which round, on what data, with which config, and (once
    the round is evaluated) its evaluation figures with 95% CIs."""
    t = cfg.training
    lora = f", LoRA r{t.rank}/alpha {t.alpha} on {t.target_modules}" if t.method == "lora" else ""
    lines = [
        "---",
        "library_name: " + ("peft" if t.method == "lora" else "transformers"),
        "tags: [secondtry, sft]",
        "---",
        "",
        f"# {cfg.name} — round {round_}",
        "",
        f"Fine-tuned with secondtry from `{train_info['start_model']}` ({t.method}{lora}; "
        f"between rounds: {t.between_rounds} — "
        + (
            "this round started from the previous round's merged model"
            if t.between_rounds == "continue"
            else "every round starts from the base model"
        )
        + ").",
        "",
        "## Data",
        "",
        f"- {data_info.get('kept')} examples (problem -> correct retry) kept by filter `{cfg.filter.require}` "
        f"from task `{cfg.train_task.name}` {cfg.train_task.path or ''}".rstrip(),
        f"- retry condition `{cfg.conditions.retry}`, up to {cfg.conditions.retries} retries per failed problem",
        "",
        "## Training",
        "",
        f"- steps {train_info['steps']}, lr {t.lr}, batch {t.batch_size} x accumulation {t.grad_accum}"
        + (f" (packed rows of {t.max_length} tokens)" if t.packing else f", max length {t.max_length}")
        + f", schedule {t.schedule}, warmup {t.warmup_ratio}, seed {cfg.seed}",
        f"- tokens trained: {train_info['tokens_trained']}; loss {_fmt(train_info['loss_first'])} -> "
        f"{_fmt(train_info['loss_last'])}",
    ]
    if evaluation:
        lines += [
            "",
            f"## Evaluation (task `{cfg.eval_task.name}`, 95% bootstrap CIs over problems)",
            "",
            "| figure | value | 95% CI | n |",
            "|---|---|---|---|",
        ]
        for name, fig in evaluation.items():
            if isinstance(fig, dict) and "value" in fig and fig.get("value") is not None:
                lo, hi = fig.get("ci") or [None, None]
                ci = f"[{_fmt(lo)}, {_fmt(hi)}]" if lo is not None else ""
                lines.append(f"| {name} | {_fmt(fig['value'])} | {ci} | {fig.get('n', '')} |")
    lines += [
        "",
        "Per-problem records and every figure: `../round.json` and `../eval.jsonl` in the run directory.",
        "",
        _load_line(t, out_dir),
    ]
    write_text(out_dir / "README.md", "\n".join(lines).rstrip() + "\n")


def _load_line(t, out_dir: Path) -> str:
    """How to load the round's model folder."""
    if t.method != "lora":
        return ""
    if not t.merge:
        base = adapter_base(str(out_dir)) or "the base model"
        return (
            f"This folder is a LoRA adapter (rank {adapters.rank(out_dir)}) over `{base}`, every earlier "
            f"round's adapter stacked in: `PeftModel.from_pretrained(AutoModelForCausalLM."
            f"from_pretrained(base), this_folder)`, or load it into vLLM / SGLang as an adapter."
        )
    return (
        "Load: `AutoModelForCausalLM.from_pretrained(this_folder)`; the LoRA adapter alone is in "
        "`adapter/` (`PeftModel.from_pretrained(base, this_folder + '/adapter')`)."
    )


def _fmt(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)
