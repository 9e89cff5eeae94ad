import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from secondtry.backends import BACKENDS
from secondtry.backends.hf import ModelLoadError, load_tokenizer
from secondtry.config import build_config, SamplingConfig
from secondtry.types import Message

import pytest


def cfg(model, **extra):
    return build_config({"name": "t", "model": {"path": str(model)}, "train_task": {"name": "synthetic"},
                         "eval_task": {"name": "synthetic", "split": "test"}, "backend": {"batch_size": 3}, **extra})


CONVS = [[Message("user", e)] for e in ["4+5+2-9", "1+2", "9-3+7+1", "2+2+2"]]


def test_greedy_matches_transformers_generate(tiny_model):
    sampler = BACKENDS["hf"](str(tiny_model), cfg(tiny_model))
    outs = sampler.generate(CONVS, SamplingConfig(temperature=0, max_new_tokens=40))
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    for conv, (out,) in zip(CONVS, outs):
        ids = tok.apply_chat_template([{"role": "user", "content": conv[0].content}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)["input_ids"]
        ref = model.generate(ids, max_new_tokens=40, do_sample=False)[0, ids.shape[1]:].tolist()
        if tok.eos_token_id in ref:
            ref = ref[:ref.index(tok.eos_token_id)]
            assert out.finish_reason == "stop" and out.n_tokens == len(ref) + 1
        assert out.text == tok.decode(ref, skip_special_tokens=True)
        assert out.prompt_tokens == ids.shape[1]


def test_n_samples_seeded_and_lengths(tiny_model):
    sampler = BACKENDS["hf"](str(tiny_model), cfg(tiny_model))
    params = SamplingConfig(temperature=1.0, max_new_tokens=30)
    seen = []
    a = sampler.generate(CONVS, params, n=3, seed=1, progress=seen.append)
    b = sampler.generate(CONVS, params, n=3, seed=1)
    c = sampler.generate(CONVS, params, n=3, seed=2)
    assert [len(x) for x in a] == [3] * 4 and sum(seen) == 12
    assert [[y.text for y in x] for x in a] == [[y.text for y in x] for x in b]
    assert [[y.text for y in x] for x in a] != [[y.text for y in x] for x in c]
    assert any(len({y.text for y in x}) > 1 for x in a)  # the n samples of one prompt are not copies
    short = sampler.generate(CONVS[:1], SamplingConfig(temperature=0, max_new_tokens=2))[0][0]
    assert short.finish_reason == "length" and short.n_tokens == 2
    sampler.close()


def test_bad_model_paths_are_explained(tmp_path, tiny_model):
    with pytest.raises(ModelLoadError, match="model not found: .*missing"):
        load_tokenizer(str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="cannot load a tokenizer from gpt2"):  # a hub id, tried as one
        load_tokenizer("gpt2")
    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.chat_template = None
    tok.save_pretrained(tmp_path / "nochat")
    (tmp_path / "nochat" / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(ModelLoadError, match="has no chat template"):
        load_tokenizer(str(tmp_path / "nochat"))
