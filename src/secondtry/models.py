"""Loading a model and its tokenizer: the device and dtype a config names, a LoRA adapter folder as its
base with the adapter merged in, and errors that say what is wrong and what to do (`ModelLoadError`).

Generation (`backends/`) and training (`training/`) both load models through this module, so neither
depends on the other.
"""

from __future__ import annotations

from pathlib import Path

import torch


class ModelLoadError(ValueError):
    """A model or tokenizer that cannot be used; the message says why and what to do."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"backend.device={name} but no CUDA device is visible; use backend.device=cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    _check_model_path(path)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as e:
        raise ModelLoadError(
            f"cannot load a tokenizer from {path}: {type(e).__name__}: {str(e)[:300]}"
        ) from None
    if not getattr(tok, "chat_template", None):
        raise ModelLoadError(
            f"the tokenizer at {path} has no chat template; use an instruct/chat model or add "
            f"`chat_template` to its tokenizer_config.json"
        )
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str, dtype: str, device: torch.device):
    """A causal LM; a LoRA adapter folder (training.merge: false) is its base model, the adapter merged in."""
    from transformers import AutoModelForCausalLM

    _check_model_path(path)
    base = adapter_base(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(base or path, dtype=resolve_dtype(dtype, device))
        if base is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, path).merge_and_unload()
    except Exception as e:
        raise ModelLoadError(
            f"cannot load a causal LM from {path}: {type(e).__name__}: {str(e)[:300]}"
        ) from None
    return model.to(device).eval()


def eos_ids(model, tokenizer) -> list[int]:
    """The token ids that end a turn: the model's generation config's EOS ids and the tokenizer's."""
    eos = model.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    return sorted(set(eos) | {tokenizer.eos_token_id} - {None})


def adapter_base(path: str) -> str | None:
    """The base model of a LoRA adapter folder (adapter_config.json, no config.json of its own), else None."""
    folder = Path(path).expanduser()
    config = folder / "adapter_config.json"
    if not config.is_file() or (folder / "config.json").is_file():
        return None
    import json

    try:
        base = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{config}: not a readable adapter config ({e})") from None
    if not base:
        raise ModelLoadError(f"{config} names no base_model_name_or_path: the adapter's base is unknown")
    return str(base)


def _check_model_path(path: str) -> None:
    p = Path(path).expanduser()
    if (path.startswith((".", "/", "~")) or p.exists()) and not p.is_dir():
        raise ModelLoadError(
            f"model not found: {path} (a local model folder, or a hub id like Qwen/Qwen3-1.7B)"
        )
