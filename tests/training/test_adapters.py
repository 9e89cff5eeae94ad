"""Rounds kept as adapters (training.merge: false): a stacked adapter is the two merged in turn."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel, get_peft_model

from secondtry.config import build_config
from secondtry.models import adapter_base, load_model
from secondtry.training import adapters
from secondtry.training.sft import lora_config

pytestmark = pytest.mark.integration  # training

CPU = torch.device("cpu")


def random_adapter(model, cfg, seed: int, out):
    """`model` with a LoRA of random weights (B too, so it changes the model), saved to `out`."""
    peft = get_peft_model(model, lora_config(cfg))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    peft.save_pretrained(out)
    return peft


def test_a_stacked_adapter_is_the_two_merged_in_turn(tiny_model, tmp_path):
    cfg = build_config(
        {
            "name": "t",
            "model": {"path": str(tiny_model)},
            "train_task": {"name": "synthetic"},
            "eval_task": {"name": "synthetic"},
            "evaluation": {"select_on": "test"},
            "training": {"rank": 4, "alpha": 8, "merge": False},
        }
    )
    base = str(tiny_model)
    first = random_adapter(load_model(base, "float32", CPU), cfg, 1, tmp_path / "one")
    merged_once = first.merge_and_unload()
    second = random_adapter(
        merged_once,
        cfg.model_copy(update={"training": cfg.training.model_copy(update={"rank": 2, "alpha": 7})}),
        2,
        tmp_path / "two",
    )
    merged_twice = second.merge_and_unload().state_dict()

    adapters.stack(tmp_path / "one", tmp_path / "two", tmp_path / "stacked", base)
    config = json.loads((tmp_path / "stacked" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["base_model_name_or_path"]) == (6, 6, base)
    assert adapter_base(str(tmp_path / "stacked")) == base and adapters.rank(tmp_path / "stacked") == 6
    stacked = PeftModel.from_pretrained(load_model(base, "float32", CPU), tmp_path / "stacked")
    got = stacked.merge_and_unload().state_dict()
    assert got.keys() == merged_twice.keys()
    original = load_model(base, "float32", CPU).state_dict()
    for k in got:
        torch.testing.assert_close(got[k], merged_twice[k], rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(got[k], original[k]) for k in got)  # the adapters did change the weights
    # the hf backend samples an adapter folder as its base model with the adapter merged in
    tokenizer_files = [p for p in tiny_model.iterdir() if p.name.startswith(("tokenizer", "special_tokens"))]
    for p in tokenizer_files:
        (tmp_path / "stacked" / p.name).write_bytes(p.read_bytes())
    loaded = load_model(str(tmp_path / "stacked"), "float32", CPU).state_dict()
    assert all(torch.equal(loaded[k], got[k]) for k in got)
