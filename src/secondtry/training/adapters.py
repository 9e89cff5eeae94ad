"""Rounds kept as LoRA adapters (`training.merge: false`): a round's model is one adapter over the base model.

A round that starts from an earlier round's adapter trains a fresh LoRA on the base model with that
adapter merged in, exactly as it would on the earlier round's merged model. Its model is then the two
adapters stacked into one of rank r1 + r2, each one's scale folded into its B matrix, so that

    base + stacked = base + s1 * B1 A1 + s2 * B2 A2

are the weights the merged path writes (up to float rounding: one product instead of two merges).
A server that loads adapters (vLLM, SGLang) then serves every round as one adapter over one base model.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import torch

ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"


def keep(trained, base: str, earlier: str | None, staging: Path) -> None:
    """Write `trained`'s adapter into `staging` (a PEFT adapter folder over `base`), stacked onto the adapter
    `earlier` when the round started from one."""
    fresh = staging / ".fresh"
    trained.save_pretrained(fresh)
    if earlier is None:
        for f in fresh.iterdir():
            f.replace(staging / f.name)
        fresh.rmdir()
        path = staging / ADAPTER_CONFIG
        config = json.loads(path.read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = base
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return
    stack(Path(earlier), fresh, staging, base)
    shutil.rmtree(fresh)


def scale(config: dict) -> float:
    """LoRA's scale of a PEFT adapter config: alpha / r (alpha / sqrt(r) with rsLoRA)."""
    bad = [k for k in ("rank_pattern", "alpha_pattern", "use_dora") if config.get(k)]
    if bad:
        raise ValueError(f"cannot stack LoRA adapters with {', '.join(bad)}")
    r, alpha = config["r"], config["lora_alpha"]
    return alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r


def stack(earlier: Path, later: Path, out: Path, base: str) -> None:
    """One adapter of rank r1 + r2 equal to applying `earlier` then `later` (folders of PEFT adapters)."""
    from safetensors.torch import load_file, save_file

    configs = [json.loads((d / ADAPTER_CONFIG).read_text(encoding="utf-8")) for d in (earlier, later)]
    weights = [load_file(str(d / ADAPTER_WEIGHTS)) for d in (earlier, later)]
    ranks, scales = [c["r"] for c in configs], [scale(c) for c in configs]
    modules = sorted({k.rsplit(".lora_", 1)[0] for w in weights for k in w if ".lora_" in k})
    other = sorted(k for w in weights for k in w if ".lora_" not in k)
    if other:
        raise ValueError(f"cannot stack LoRA adapters that also train whole modules ({other[:3]})")
    stacked: dict[str, torch.Tensor] = {}
    for m in modules:
        a_key, b_key = f"{m}.lora_A.weight", f"{m}.lora_B.weight"
        shape = next((w[a_key].shape[1], w[b_key].shape[0]) for w in weights if a_key in w)
        parts_a, parts_b = [], []
        for w, r, s in zip(weights, ranks, scales):
            if a_key in w:
                parts_a.append(w[a_key].float())
                parts_b.append(w[b_key].float() * s)
            else:  # the module this adapter leaves alone: a zero block
                parts_a.append(torch.zeros(r, shape[0]))
                parts_b.append(torch.zeros(shape[1], r))
        stacked[a_key] = torch.cat(parts_a, dim=0).contiguous()
        stacked[b_key] = torch.cat(parts_b, dim=1).contiguous()
    config = dict(configs[1])
    total = sum(ranks)
    targets = [c.get("target_modules") for c in configs]
    if all(isinstance(t, list) for t in targets):  # PEFT writes the module names it found
        config["target_modules"] = sorted({m for t in targets for m in t})
    elif targets[0] != targets[1]:
        raise ValueError(f"cannot stack LoRA adapters with target_modules {targets[0]!r} and {targets[1]!r}")
    config.update(r=total, lora_alpha=total, use_rslora=False, base_model_name_or_path=base)  # scale 1: in B
    out.mkdir(parents=True, exist_ok=True)
    save_file(stacked, str(out / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    (out / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def rank(folder: str | Path) -> int:
    """The rank of the PEFT adapter in `folder`."""
    return int(json.loads((Path(folder) / ADAPTER_CONFIG).read_text(encoding="utf-8"))["r"])
