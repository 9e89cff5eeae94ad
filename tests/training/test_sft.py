import contextlib

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from secondtry.config import build_config
from secondtry.log import Bar, Log
from secondtry.training import train
from secondtry.types import Example, Message

pytestmark = pytest.mark.integration  # training


def cfg(model, **training):
    return build_config(
        {
            "name": "t",
            "model": {"path": str(model)},
            "train_task": {"name": "synthetic"},
            "eval_task": {"name": "synthetic", "split": "test"},
            "evaluation": {"select_on": "test"},
            "training": {"steps": 6, "batch_size": 4, "lr": 1e-3, "warmup_ratio": 0, **training},
        }
    )


EXAMPLES = [
    Example(f"p{i}", (Message("user", f"{i}+1"),), f"{i}+1={i + 1}|Answer: {i + 1}", "retry")
    for i in range(8)
]


def test_lora_sft_changes_weights_and_writes_hf_folders(tiny_model, tmp_path):
    out = tmp_path / "model"
    info = train(str(tiny_model), EXAMPLES, cfg(tiny_model), out, seed=0)
    assert info["steps"] == 6 and info["tokens_trained"] > 0 and info["loss_last"] < info["loss_first"]
    before = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    after = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k].to(after[k].dtype), after[k])]  # bf16 on a GPU
    assert any("q_proj" in k for k in changed) and not any("embed" in k for k in changed)  # LoRA on linears
    assert (out / "adapter" / "adapter_config.json").exists() and (out / "tokenizer_config.json").exists()
    assert load_file(out / "adapter" / "adapter_model.safetensors")
    assert not list(tmp_path.glob(".train-*"))  # the staging folder is gone


@pytest.mark.parametrize("packing", [False, True])
def test_max_epochs_caps_the_steps_of_a_round_with_few_examples(tiny_model, tmp_path, packing):
    sizes = []

    class Sizes(Log):  # the progress bar's total, then what training resizes it to
        @contextlib.contextmanager
        def progress(self, label, total, unit=""):
            sizes.append(total)
            yield Bar(resize=sizes.append)

    config = cfg(tiny_model, steps=50, max_epochs=2, packing=packing, max_length=64)
    info = train(str(tiny_model), EXAMPLES, config, tmp_path / "m", seed=0, log=Sizes())
    rows = info["rows"]  # 8 examples; packed into rows of up to 64 tokens, fewer
    assert (rows == 8) != packing and info["steps"] == 2 * -(
        -rows // 4
    ) < 50  # 2 passes of ceil(rows / 4) steps
    assert info["epochs"] == pytest.approx(2.0, abs=0.5) and sizes == [50, info["steps"]]
    uncapped = train(
        str(tiny_model),
        EXAMPLES,
        cfg(tiny_model, steps=3, max_epochs=2, packing=False),
        tmp_path / "n",
        seed=0,
    )
    assert uncapped["steps"] == 3  # 8 rows, 4 a step: the cap (4 steps) is above the steps


def test_loss_is_on_the_assistant_turn_only(tiny_model, tmp_path):
    from secondtry.models import load_tokenizer
    from secondtry.training.sft import build_trainer

    tok = load_tokenizer(str(tiny_model))
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    trainer = build_trainer(
        model, tok, EXAMPLES[:2], cfg(tiny_model, packing=False), tmp_path, seed=0, bf16=False
    )
    row = trainer.train_dataset[1]
    labelled = [t for t, label in zip(row["input_ids"], row["labels"]) if label != -100]
    assert tok.decode(labelled) == EXAMPLES[1].completion + tok.eos_token
    assert (
        tok.decode([t for t, label in zip(row["input_ids"], row["labels"]) if label == -100])
        == "<|user|>1+1<|end|><|assistant|>"
    )


def test_full_fine_tuning_changes_embeddings_too(tiny_model, tmp_path):
    info = train(str(tiny_model), EXAMPLES, cfg(tiny_model, method="full", steps=3), tmp_path / "m", seed=0)
    before = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "m").state_dict()
    assert info["steps"] == 3 and not (tmp_path / "m" / "adapter").exists()
    assert not torch.equal(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"])


def test_a_failed_training_leaves_no_staging_folder(tiny_model, tmp_path):
    import pytest

    with pytest.raises(ValueError, match="no_such_module"):  # PEFT finds no such module in the model
        train(
            str(tiny_model),
            EXAMPLES,
            cfg(tiny_model, target_modules=["no_such_module"]),
            tmp_path / "m",
            seed=0,
        )
    assert not list(tmp_path.glob(".train-*")) and not (tmp_path / "m").exists()


def ckpt_cfg(model, **training):
    return build_config(
        {
            "name": "t",
            "model": {"path": str(model)},
            "train_task": {"name": "synthetic"},
            "eval_task": {"name": "synthetic", "split": "test"},
            "checkpoint": {"train_steps": 3},
            "evaluation": {"select_on": "test"},
            "training": {"steps": 8, "batch_size": 4, "lr": 1e-3, "warmup_ratio": 0, **training},
        }
    )


class Killed(Exception):
    pass


class Warnings(Log):
    def __init__(self):
        self.seen = []

    def warn(self, message):
        self.seen.append(message)


def killing_at(point):
    def crash_point(name):
        if name == point:
            raise Killed(name)

    return crash_point


@pytest.fixture(scope="module")
def uninterrupted(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    return train(
        str(tiny_model), EXAMPLES, ckpt_cfg(tiny_model), out / "a", seed=0, checkpoints=out / "ca"
    ), out / "a"


@pytest.mark.parametrize("point", ["train:step5", "train:saving6", "train:merged"])
def test_a_killed_training_resumes_to_the_same_bits(tiny_model, tmp_path, monkeypatch, point, uninterrupted):
    from secondtry.store import hash_path
    from secondtry.training import sft

    c = ckpt_cfg(tiny_model)
    want, want_dir = uninterrupted
    monkeypatch.setattr(sft, "crash_point", killing_at(point))
    with pytest.raises(Killed):
        train(str(tiny_model), EXAMPLES, c, tmp_path / "b", seed=0, checkpoints=tmp_path / "cb")
    kept = sorted(p.name for p in (tmp_path / "cb" / "trainer").glob("checkpoint-*"))
    assert (
        kept
        == {
            "train:step5": ["checkpoint-3"],
            "train:saving6": ["checkpoint-3", "checkpoint-6"],
            "train:merged": ["checkpoint-8"],
        }[point]
    )  # at saving6, checkpoint-6 is not marked complete
    monkeypatch.undo()
    got = train(str(tiny_model), EXAMPLES, c, tmp_path / "b", seed=0, checkpoints=tmp_path / "cb")
    assert got == want and hash_path(tmp_path / "b") == hash_path(want_dir)  # model, adapter, tokenizer


def test_out_of_memory_in_training_halves_the_batch_and_doubles_accumulation(
    tiny_model, tmp_path, monkeypatch
):
    from secondtry.training import sft

    c = ckpt_cfg(tiny_model, dropout=0.0)  # LoRA dropout would draw other masks for half-size batches
    want = train(str(tiny_model), EXAMPLES, c, tmp_path / "a", seed=0, checkpoints=tmp_path / "ca")
    real = sft.build_trainer

    def tight(*args, **kwargs):  # a batch of 4 runs out of memory at step 5, after checkpoint-3
        trainer = real(*args, **kwargs)
        step = trainer.training_step

        def training_step(*a, **k):
            if trainer.args.per_device_train_batch_size > 2 and trainer.state.global_step >= 4:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
            return step(*a, **k)

        trainer.training_step = training_step
        return trainer

    monkeypatch.setattr(sft, "build_trainer", tight)
    log = Warnings()
    got = train(str(tiny_model), EXAMPLES, c, tmp_path / "b", seed=0, log=log, checkpoints=tmp_path / "cb")
    assert got.pop("oom_backoffs") == [{"batch_size": 2, "grad_accum": 2}]
    assert "out of GPU memory at batch 4; going on with batch 2 x accumulation 2" in log.seen[0]
    assert got["steps"] == want["steps"] == 8 and got["tokens_trained"] == want["tokens_trained"]
    before = AutoModelForCausalLM.from_pretrained(tmp_path / "a").state_dict()
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "b").state_dict()
    worst = max((before[k] - after[k]).abs().max().item() for k in before)
    print(f"\nlargest weight difference after the back-off: {worst:.1e}")
    assert worst < 1e-4, worst  # the same examples per step, split in two: equal up to float rounding


def test_the_merged_model_is_the_base_plus_the_saved_adapter(tiny_model, tmp_path):
    """What the next round starts from (between_rounds: continue) is W + (alpha/r) B A, layer by layer."""
    from safetensors.torch import load_file as load

    out = tmp_path / "model"
    train(str(tiny_model), EXAMPLES, cfg(tiny_model, dropout=0.0), out, seed=0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).state_dict()
    saved = AutoModelForCausalLM.from_pretrained(out)
    tol = (
        {"rtol": 1e-5, "atol": 1e-6} if saved.dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-3}
    )  # bf16 on GPU
    merged = {k: v.float() for k, v in saved.state_dict().items()}
    adapter = load(out / "adapter" / "adapter_model.safetensors")
    c = cfg(tiny_model).training
    layers = {k.split(".lora_A")[0] for k in adapter if ".lora_A" in k}
    assert layers and all("q_proj" in k or "proj" in k for k in layers)
    for layer in layers:
        a, b = adapter[layer + ".lora_A.weight"], adapter[layer + ".lora_B.weight"]
        name = layer.removeprefix("base_model.model.") + ".weight"
        torch.testing.assert_close(
            merged[name], base[name] + (c.alpha / c.rank) * b.float() @ a.float(), **tol
        )
    untouched = [
        k
        for k in base
        if not any(k == layer.removeprefix("base_model.model.") + ".weight" for layer in layers)
    ]
    assert all(torch.equal(base[k].to(saved.dtype).float(), merged[k]) for k in untouched)


def test_tensorboard_is_reported_to_only_where_installed(tiny_model, tmp_path):
    import importlib.util

    info = train(
        str(tiny_model), EXAMPLES, cfg(tiny_model, steps=2), tmp_path / "m", seed=0, logs=tmp_path / "logs"
    )
    have = importlib.util.find_spec("tensorboard") is not None
    assert info["reported_to"] == (["tensorboard"] if have else [])
    assert any((tmp_path / "logs").rglob("events.out.tfevents*")) == have


@pytest.mark.parametrize("damage", ["cut optimizer state", "flipped weight byte"])
def test_a_damaged_checkpoint_is_not_resumed_from(tiny_model, tmp_path, monkeypatch, damage, uninterrupted):
    """A checkpoint is trusted only if its files match the record in its `complete` marker."""
    from secondtry.store import hash_path
    from secondtry.training import sft

    c = ckpt_cfg(tiny_model)
    want, want_dir = uninterrupted
    monkeypatch.setattr(sft, "crash_point", killing_at("train:step5"))
    with pytest.raises(Killed):
        train(str(tiny_model), EXAMPLES, c, tmp_path / "b", seed=0, checkpoints=tmp_path / "cb")
    monkeypatch.undo()
    checkpoint = tmp_path / "cb" / "trainer" / "checkpoint-3"
    if damage == "cut optimizer state":
        target = checkpoint / "optimizer.pt"
        target.write_bytes(target.read_bytes()[:100])
    else:
        target = next(checkpoint.glob("adapter_model.safetensors"))
        data = bytearray(target.read_bytes())
        data[-5] ^= 0x40  # a weight's byte: the file still loads, with another value
        target.write_bytes(bytes(data))
    log = Warnings()
    got = train(str(tiny_model), EXAMPLES, c, tmp_path / "b", seed=0, log=log, checkpoints=tmp_path / "cb")
    assert any("checkpoint-3 is not trusted" in w for w in log.seen), log.seen
    assert got == want and hash_path(tmp_path / "b") == hash_path(want_dir)  # trained again from the start


@pytest.mark.parametrize("packing", [False, True])
def test_a_retry_turn_example_puts_no_loss_on_the_failed_attempt(tiny_model, tmp_path, packing):
    """filter.retry_example: turn trains problem -> failed attempt -> retry prompt -> retry: every token
    before the retry, the failed attempt's included, is context only."""
    from secondtry.models import load_tokenizer
    from secondtry.training.sft import build_trainer

    failed, retry = "2+2=5|Answer: 5", "2+2=4|Answer: 4"
    seen = (Message("user", "2+2"), Message("assistant", failed), Message("user", "Try again carefully."))
    turn = Example("p", seen, retry, "retry_turn", 1)
    tok = load_tokenizer(str(tiny_model))
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    trainer = build_trainer(
        model,
        tok,
        [turn, EXAMPLES[0]],
        cfg(tiny_model, packing=packing, max_length=256),
        tmp_path,
        seed=0,
        bf16=False,
    )
    ids, labels = [], []
    for row in trainer.train_dataset:
        ids += row["input_ids"]
        labels += (
            row["labels"]
            if "labels" in row
            else [-100 if m == 0 else t for t, m in zip(row["input_ids"], row["completion_mask"])]
        )
    text = tok.decode(ids)
    start = text.index(failed)
    assert text.count(failed) == 1 and text.count(retry) == 1
    # the failed attempt's tokens (one token a character in the toy tokenizer) carry no label
    offsets = [len(tok.decode(ids[:i])) for i in range(len(ids) + 1)]
    in_failed = [i for i in range(len(ids)) if start <= offsets[i] < start + len(failed)]
    assert len(in_failed) == len(failed) and all(labels[i] == -100 for i in in_failed)
    labelled = tok.decode([t for t, label in zip(ids, labels) if label != -100])
    assert (
        labelled == retry + tok.eos_token + EXAMPLES[0].completion + tok.eos_token
        or labelled == EXAMPLES[0].completion + tok.eos_token + retry + tok.eos_token
    )
