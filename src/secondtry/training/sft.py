"""SFT on (problem -> correct retry) with TRL `SFTTrainer`, LoRA through PEFT or full fine-tuning.

Examples are conversational prompt-completion pairs, so TRL puts the loss on the assistant
turn only (`completion_only_loss`), whatever the chat template. The output folder holds
the merged model in HF format (loadable with `AutoModelForCausalLM.from_pretrained`), the
LoRA adapter in `adapter/`, and a model card.
"""

from __future__ import annotations

import os
import warnings
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..backends.hf import load_model, load_tokenizer, resolve_device, resolve_dtype
from ..config import Config
from ..log import Log
from ..types import Example


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


def _progress_callback(bar):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            bar(1)

    return Progress()


def build_trainer(model, tokenizer, examples: list[Example], cfg: Config, work: Path, seed: int,
                  bf16: bool, callbacks: list | None = None):
    """The TRL SFTTrainer the rounds use: prompt-completion rows, loss on the completion only."""
    from peft import LoraConfig
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    t = cfg.training
    warnings.filterwarnings("ignore", message=".*(gradient|activation)_checkpointing.*", category=FutureWarning)
    args = SFTConfig(
        output_dir=str(work / "trainer"), max_steps=t.steps, per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum, learning_rate=t.lr, lr_scheduler_type=t.schedule,
        warmup_steps=int(round(t.warmup_ratio * t.steps)), weight_decay=t.weight_decay,
        max_length=t.max_length, packing=False, completion_only_loss=True,
        bf16=bf16, use_cpu=model.device.type == "cpu",
        logging_steps=max(1, t.steps // 20), save_strategy="no", report_to="none", disable_tqdm=True,
        seed=seed, data_seed=seed, include_num_input_tokens_seen=True, dataloader_num_workers=0,
        gradient_checkpointing=t.gradient_checkpointing,  # TRL's default is True; ours is the config's
    )
    peft_config = None
    if t.method == "lora":
        peft_config = LoraConfig(r=t.rank, lora_alpha=t.alpha, lora_dropout=t.dropout,
                                 target_modules=t.target_modules, task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=_dataset(examples, cfg), processing_class=tokenizer,
                         peft_config=peft_config, callbacks=callbacks or [])
    trainer.remove_callback(PrinterCallback)  # it prints every log dict; the progress bar is enough
    return trainer


def train(start_model: str, examples: list[Example], cfg: Config, out_dir: Path, seed: int,
          log: Log = Log()) -> dict[str, Any]:
    """Fine-tune `start_model` on `examples`; write the merged model to `out_dir` (atomically).

    Returns the training figures: steps, tokens trained, loss at the start and end.
    """
    if not examples:
        raise ValueError("no training examples")
    t = cfg.training
    device = resolve_device(cfg.backend.device)
    tokenizer = load_tokenizer(start_model)
    # full fine-tuning keeps float32 master weights (bf16 updates at small lr would round away)
    model = load_model(start_model, "float32" if t.method == "full" else cfg.model.dtype, device)
    model.train()
    bf16 = resolve_dtype(cfg.model.dtype, device) == torch.bfloat16
    work = Path(tempfile.mkdtemp(prefix=".train-", dir=out_dir.parent))
    try:
        with log.progress(f"training ({t.method}, {len(examples)} examples)", total=t.steps) as bar:
            trainer = build_trainer(model, tokenizer, examples, cfg, work, seed, bf16, [_progress_callback(bar)])
            result = trainer.train()
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        trained = trainer.model
        staging = work / "model"
        if t.method == "lora":
            trained.save_pretrained(staging / "adapter")
            trained = trained.merge_and_unload()
        trained.to(resolve_dtype(cfg.model.dtype, device)).save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        info = {
            "method": t.method, "steps": trainer.state.global_step, "examples": len(examples),
            "tokens_trained": int(trainer.state.num_input_tokens_seen or 0),
            "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
            "train_loss": float(result.training_loss), "start_model": start_model,
        }
        del trainer, trained, model
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # a failed run leaves no staging folder behind
    return info


def write_model_card(out_dir: Path, round_: int, cfg: Config, train_info: dict[str, Any],
                     data_info: dict[str, Any]) -> None:
    """A README.md in the model folder: which round, on what data, with which config."""
    from ..store import write_text

    t = cfg.training
    lora = f", LoRA r{t.rank}/alpha {t.alpha} on {t.target_modules}" if t.method == "lora" else ""
    lines = [
        f"# {cfg.name} — round {round_}", "",
        f"Fine-tuned with secondtry from `{train_info['start_model']}` ({t.method}{lora}; "
        f"between rounds: {t.between_rounds}).", "",
        f"- data: {data_info.get('kept')} examples (problem -> correct retry, filter `{cfg.filter.require}`) "
        f"from task `{cfg.train_task.name}` {cfg.train_task.path or ''}",
        f"- steps {train_info['steps']}, lr {t.lr}, batch {t.batch_size} x accumulation {t.grad_accum}, "
        f"schedule {t.schedule}, seed {cfg.seed}",
        f"- tokens trained: {train_info['tokens_trained']}; loss {train_info['loss_first']} -> "
        f"{train_info['loss_last']}",
        "", "Evaluation figures with 95% CIs: `../round.json` in the run directory.",
        "", "Load: `AutoModelForCausalLM.from_pretrained(this_folder)`; the LoRA adapter alone is in `adapter/`.",
    ]
    write_text(out_dir / "README.md", "\n".join(lines) + "\n")
