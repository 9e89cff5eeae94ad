"""Packed training rows: labels on assistant turns only, and no attention across examples."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from secondtry.config import build_config
from secondtry.models import load_tokenizer
from secondtry.training.attention import VARLEN, varlen_attention
from secondtry.training.sft import build_trainer
from secondtry.types import Example, Message

pytestmark = pytest.mark.integration  # training

# lengths differ, so the packs hold several examples of unequal sizes
EXAMPLES = [
    Example(
        f"p{i}",
        (Message("user", f"{i}*{i}+{i}=?" + " ok" * (i % 3)),),
        f"{i}*{i}={i * i}|" * (1 + i % 4) + f"Answer: {i * i + i}",
        "retry",
    )
    for i in range(10)
]


def cfg(model, **training):
    return build_config(
        {
            "name": "t",
            "model": {"path": str(model)},
            "train_task": {"name": "synthetic"},
            "eval_task": {"name": "synthetic", "split": "test"},
            "evaluation": {"select_on": "test"},
            "training": {
                "steps": 2,
                "batch_size": 2,
                "max_length": 160,
                "lr": 1e-3,
                "dropout": 0.0,
                "warmup_ratio": 0,
                **training,
            },
        }
    )


@pytest.fixture()
def packed(tiny_model, tmp_path):
    """A trainer on packed rows, its first batch, and LoRA weights made non-zero (so every one has a gradient)."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    tok = load_tokenizer(str(tiny_model))
    trainer = build_trainer(model, tok, EXAMPLES, cfg(tiny_model), tmp_path, seed=0, bf16=False)
    with torch.no_grad():
        for name, p in trainer.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    batch = next(iter(trainer.get_train_dataloader()))
    return trainer, tok, batch


def test_packs_hold_several_examples_and_label_only_their_assistant_turns(packed):
    trainer, tok, batch = packed
    ids, labels, cu = batch["input_ids"][0], batch["labels"][0], batch["cu_seq_lens_q"].tolist()
    assert batch["input_ids"].shape[0] == 1 and len(cu) - 1 > 2  # one row, several examples in it
    assert "attention_mask" not in batch
    completions = {e.completion + tok.eos_token for e in EXAMPLES}
    prompts = {f"<|user|>{e.messages[0].content}<|end|><|assistant|>" for e in EXAMPLES}
    for a, b in zip(cu[:-1], cu[1:]):
        seg_ids, seg_labels = ids[a:b].tolist(), labels[a:b].tolist()
        assert tok.decode([t for t, lab in zip(seg_ids, seg_labels) if lab != -100]) in completions
        assert tok.decode([t for t, lab in zip(seg_ids, seg_labels) if lab == -100]) in prompts
        assert batch["position_ids"][0, a:b].tolist() == list(range(b - a))


def _nll_one_by_one(model, batch):
    """Sum of -log p over labelled tokens, each example run alone with the stock sdpa attention."""
    ids, labels, cu = batch["input_ids"][0], batch["labels"][0], batch["cu_seq_lens_q"].tolist()
    total = 0.0
    for a, b in zip(cu[:-1], cu[1:]):
        logits = model(input_ids=ids[a:b][None]).logits[0, :-1].float()
        target = labels[a + 1 : b]
        keep = target != -100
        total = total - torch.log_softmax(logits[keep], -1).gather(1, target[keep][:, None]).sum()
    return total, int((labels[1:] != -100).sum())


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_packed_loss_and_gradients_equal_training_the_examples_one_by_one(packed):
    trainer, _, batch = packed
    model = trainer.model
    model.zero_grad()
    loss = trainer.compute_loss(model, dict(batch))
    loss.backward()
    packed_grads = _grads(model)

    base = model.get_base_model()
    base.set_attn_implementation("sdpa")
    model.zero_grad()
    total, count = _nll_one_by_one(model, batch)
    (total / count).backward()
    alone_grads = _grads(model)

    assert loss.item() == pytest.approx((total / count).item(), rel=1e-5)
    assert len(packed_grads) > 10 and all(g.abs().sum() > 0 for g in packed_grads.values())
    for name, g in packed_grads.items():
        torch.testing.assert_close(g, alone_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_without_boundaries_the_packed_row_would_see_earlier_examples(packed):
    """The control: the same row as one sequence (what a plain causal mask does) gives another loss."""
    trainer, _, batch = packed
    model = trainer.model
    with torch.no_grad():
        right = trainer.compute_loss(model, dict(batch)).item()
        leaky = {k: v for k, v in batch.items() if not k.startswith(("cu_seq_lens", "max_length"))}
        leaky["position_ids"] = torch.arange(batch["input_ids"].shape[1])[None]
        wrong = trainer.compute_loss(model, leaky).item()
    assert abs(right - wrong) > 1e-3


def test_varlen_attention_matches_per_example_sdpa_and_refuses_padding_masks():
    torch.manual_seed(1)
    q, k, v = (
        torch.randn(1, 4, 11, 8),
        torch.randn(1, 2, 11, 8),
        torch.randn(1, 2, 11, 8),
    )  # grouped-query heads
    cu = torch.tensor([0, 3, 9, 11], dtype=torch.int32)
    module = torch.nn.Module()
    out, _ = varlen_attention(module, q, k, v, None, cu_seq_lens_q=cu, max_length_q=6)
    for a, b in [(0, 3), (3, 9), (9, 11)]:
        want = torch.nn.functional.scaled_dot_product_attention(
            q[:, :, a:b],
            k[:, :, a:b].repeat_interleave(2, 1),
            v[:, :, a:b].repeat_interleave(2, 1),
            is_causal=True,
        )
        torch.testing.assert_close(out[:, a:b], want.transpose(1, 2))
    with pytest.raises(ValueError, match=VARLEN):
        varlen_attention(module, q, k, v, torch.ones(1, 1, 11, 11, dtype=torch.bool))
