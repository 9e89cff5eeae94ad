import json
import re
import string

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import secondtry.toy.model as toy_model_module
from secondtry.tasks.synthetic import generate
from secondtry.toy import RECIPES, build_model, build_tokenizer, pretrain, toy_model

pytestmark = pytest.mark.integration  # pretraining and whole demo runs

SOLUTION = re.compile(r"\d+[+-]\d+=\d+(\|\d+[+-]\d+=\d+)*\|Answer: \d+")
CHAT = [
    {"role": "system", "content": "Be exact."},
    {"role": "user", "content": "4+5"},
    {"role": "assistant", "content": "4+5=9|Answer: 9"},
    {"role": "user", "content": "Try again carefully."},
    {"role": "assistant", "content": "4+5=9|Answer: 9"},
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cache = tmp_path_factory.mktemp("toy-cache")
    return cache, toy_model("tiny", cache_dir=cache)


def test_tokenizer_round_trip():
    tok = build_tokenizer()
    for text in [string.printable, "4+5=9|9+2=11|Answer: 2", "Try again carefully.", "  two  spaces \n"]:
        ids = tok.encode(text, add_special_tokens=False)
        assert len(ids) == len(text) and tok.decode(ids) == text
    assert tok.decode(tok.encode("a€b", add_special_tokens=False)) == "a<|unk|>b"
    ids = tok.encode("<|user|>x<|end|>", add_special_tokens=False)
    assert tok.convert_ids_to_tokens(ids) == ["<|user|>", "x", "<|end|>"]


def test_chat_template():
    tok = build_tokenizer()
    text = tok.apply_chat_template(CHAT, tokenize=False)
    assert text == (
        "<|system|>Be exact.<|end|><|user|>4+5<|end|><|assistant|>4+5=9|Answer: 9<|end|>"
        "<|user|>Try again carefully.<|end|><|assistant|>4+5=9|Answer: 9<|end|>"
    )
    out = tok.apply_chat_template(CHAT, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert ids == tok.encode(text, add_special_tokens=False)
    trained = tok.decode([i for i, m in zip(ids, mask) if m])
    assert trained == "4+5=9|Answer: 9<|end|>" * 2  # assistant content and its end marker only
    prompt = tok.apply_chat_template(CHAT[1:2], add_generation_prompt=True, tokenize=False)
    assert prompt == "<|user|>4+5<|end|><|assistant|>"
    with pytest.raises(Exception, match="unknown role"):
        tok.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_build_model_sizes():
    assert 0.9e6 < build_model("demo").num_parameters() < 1.2e6
    assert build_model("tiny").num_parameters() < 0.2e6
    with pytest.raises(ValueError, match="tiny, demo"):
        build_model("huge")


def test_pretrain_is_deterministic_whatever_the_threads(tmp_path):
    threads = torch.get_num_threads()
    try:  # the caller's thread count does not change the weights: pretraining runs in one thread on a CPU
        torch.set_num_threads(1)
        a = pretrain("tiny", tmp_path / "a", steps=3, batch=4, lr=1e-3, seed=5)
        torch.set_num_threads(2)
        b = pretrain("tiny", tmp_path / "b", steps=3, batch=4, lr=1e-3, seed=5)
        assert torch.get_num_threads() == 2  # and the caller's count is restored
    finally:
        torch.set_num_threads(threads)
    wa, wb = (AutoModelForCausalLM.from_pretrained(p).state_dict() for p in (a, b))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temp folders left behind


def test_pretraining_with_loader_workers_is_deterministic_and_keyed_apart(tmp_path):
    from secondtry.toy.model import Recipe

    kwargs = dict(steps=3, batch=4, lr=1e-3, seed=5, loaders=2)
    a = json.loads((pretrain("tiny", tmp_path / "a", **kwargs) / "recipe.json").read_text())
    b = json.loads((pretrain("tiny", tmp_path / "b", **kwargs) / "recipe.json").read_text())
    one = json.loads(
        (pretrain("tiny", tmp_path / "c", **{**kwargs, "loaders": 0}) / "recipe.json").read_text()
    )
    assert a["losses"] == b["losses"] != one["losses"] and a["loaders"] == 2
    recipe = Recipe(size="tiny", steps=3, batch=4, lr=1e-3)
    assert recipe.key() != Recipe(size="tiny", steps=3, batch=4, lr=1e-3, loaders=2).key()


def test_tiny_pretraining_learns_and_is_cached(tiny, monkeypatch):
    cache, path = tiny
    assert path.parent == cache and path.name == f"tiny-{RECIPES['tiny'].key()}"
    record = json.loads((path / "recipe.json").read_text())
    losses = record["losses"]
    assert len(losses) == RECIPES["tiny"].steps
    assert sum(losses[-20:]) / 20 < 0.5 * sum(losses[:20]) / 20

    def fail(*args, **kwargs):
        raise AssertionError("retrained a cached model")

    monkeypatch.setattr(toy_model_module, "pretrain", fail)
    assert toy_model("tiny", cache_dir=cache) == path
    monkeypatch.setenv("SECONDTRY_CACHE", str(cache))
    assert toy_model("tiny") == path


def test_tiny_model_generates_solutions(tiny):
    _, path = tiny
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    assert model.generation_config.eos_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|end|>")
    problems = generate(8, [2, 3, 4], 0, "test")
    chats = [[{"role": "user", "content": p.prompt}] for p in problems]
    enc = tok.apply_chat_template(
        chats, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt", padding=True
    )
    assert tok.padding_side == "left"
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=60, do_sample=False)
    new = out[:, enc["input_ids"].shape[1] :]
    texts = tok.batch_decode(new, skip_special_tokens=True)
    assert sum(bool(SOLUTION.fullmatch(t)) for t in texts) >= 6, texts
    assert sum(tok.eos_token_id in row.tolist() for row in new) >= 6  # stops at <|end|>


def test_the_gpu_size_has_tens_of_millions_of_parameters_and_needs_a_gpu(tmp_path):
    import pytest
    import torch

    n = sum(p.numel() for p in build_model("gpu").parameters())
    assert 10e6 < n < 100e6
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="pretrained on a GPU"):
            pretrain("gpu", tmp_path / "m", steps=1, batch=2, lr=1e-3, seed=0)
        assert not (tmp_path / "m").exists()


def _error_rates(docs) -> tuple[float, float]:
    """Share of wrong final answers among single-turn attempts and among second attempts after a retry turn."""
    from secondtry.tasks.synthetic import solve

    def wrong(expr: str, text: str) -> bool:
        import re

        tokens = re.findall(r"\d+|[+-]", expr)
        return (
            text.rsplit("Answer: ", 1)[1]
            != solve([int(t) for t in tokens[::2]], tokens[1::2]).rsplit("Answer: ", 1)[1]
        )

    first = [wrong(d[0]["content"], d[1]["content"]) for d in docs if len(d) == 2]
    second = [wrong(d[0]["content"], d[3]["content"]) for d in docs if len(d) == 4]
    return sum(first) / len(first), sum(second) / len(second)


def test_the_toy_world_is_neutral_unless_a_retry_advantage_is_planted_by_name():
    """By default the teacher's second attempts err as often as its first ones: a world that does not plant
    the effect the demo then shows. retry_error_scale plants it, and makes another cached model."""
    import random

    from secondtry.toy.model import Recipe, documents

    first, second = _error_rates(documents(random.Random(0), 6000, 0.08, 0.5))
    assert abs(first - second) < 0.03, (first, second)
    planted_first, planted_second = _error_rates(
        documents(random.Random(0), 6000, 0.08, 0.5, retry_error_scale=0.5)
    )
    assert planted_second < 0.65 * planted_first
    assert Recipe("tiny", 1, 1, 1.0).key() != Recipe("tiny", 1, 1, 1.0, retry_error_scale=0.5).key()
