import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from secondtry.config import build_config
from secondtry.training import train
from secondtry.types import Example, Message


def cfg(model, **training):
    return build_config({"name": "t", "model": {"path": str(model)}, "train_task": {"name": "synthetic"},
                         "eval_task": {"name": "synthetic", "split": "test"},
                         "training": {"steps": 6, "batch_size": 4, "lr": 1e-3, "warmup_ratio": 0, **training}})


EXAMPLES = [Example(f"p{i}", (Message("user", f"{i}+1"),), f"{i}+1={i + 1}|Answer: {i + 1}", "retry")
            for i in range(8)]


def test_lora_sft_changes_weights_and_writes_hf_folders(tiny_model, tmp_path):
    out = tmp_path / "model"
    info = train(str(tiny_model), EXAMPLES, cfg(tiny_model), out, seed=0)
    assert info["steps"] == 6 and info["tokens_trained"] > 0 and info["loss_last"] < info["loss_first"]
    before = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    after = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("q_proj" in k for k in changed) and not any("embed" in k for k in changed)  # LoRA on linears
    assert (out / "adapter" / "adapter_config.json").exists() and (out / "tokenizer_config.json").exists()
    assert load_file(out / "adapter" / "adapter_model.safetensors")
    assert not list(tmp_path.glob(".train-*"))  # the staging folder is gone


def test_loss_is_on_the_assistant_turn_only(tiny_model, tmp_path):
    from secondtry.backends.hf import load_tokenizer
    from secondtry.training.sft import build_trainer

    tok = load_tokenizer(str(tiny_model))
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    trainer = build_trainer(model, tok, EXAMPLES[:2], cfg(tiny_model), tmp_path, seed=0, bf16=False)
    row = trainer.train_dataset[1]
    labelled = [t for t, label in zip(row["input_ids"], row["labels"]) if label != -100]
    assert tok.decode(labelled) == EXAMPLES[1].completion + tok.eos_token
    assert tok.decode([t for t, label in zip(row["input_ids"], row["labels"]) if label == -100]) \
        == "<|user|>1+1<|end|><|assistant|>"


def test_full_fine_tuning_changes_embeddings_too(tiny_model, tmp_path):
    info = train(str(tiny_model), EXAMPLES, cfg(tiny_model, method="full", steps=3), tmp_path / "m", seed=0)
    before = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "m").state_dict()
    assert info["steps"] == 3 and not (tmp_path / "m" / "adapter").exists()
    assert not torch.equal(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"])


def test_a_failed_training_leaves_no_staging_folder(tiny_model, tmp_path):
    import pytest

    with pytest.raises(Exception):
        train(str(tiny_model), EXAMPLES, cfg(tiny_model, target_modules=["no_such_module"]), tmp_path / "m", seed=0)
    assert not list(tmp_path.glob(".train-*")) and not (tmp_path / "m").exists()
