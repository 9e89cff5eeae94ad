import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from secondtry.backends import BACKENDS
from secondtry.config import SamplingConfig, build_config
from secondtry.log import Log
from secondtry.models import ModelLoadError, load_tokenizer
from secondtry.types import Message

pytestmark = pytest.mark.integration  # generation with the tiny model


def cfg(model, **extra):
    return build_config(
        {
            "name": "t",
            "model": {"path": str(model)},
            "train_task": {"name": "synthetic"},
            "eval_task": {"name": "synthetic", "split": "test"},
            "backend": {"batch_size": 3},
            "evaluation": {"select_on": "test"},
            **extra,
        }
    )


CONVS = [[Message("user", e)] for e in ["4+5+2-9", "1+2", "9-3+7+1", "2+2+2"]]


def test_greedy_matches_transformers_generate(tiny_model):
    sampler = BACKENDS["hf"](str(tiny_model), cfg(tiny_model))
    outs = sampler.generate(CONVS, SamplingConfig(temperature=0, max_new_tokens=40))
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    for conv, (out,) in zip(CONVS, outs):
        ids = tok.apply_chat_template(
            [{"role": "user", "content": conv[0].content}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )["input_ids"]
        ref = model.generate(ids, max_new_tokens=40, do_sample=False)[0, ids.shape[1] :].tolist()
        if tok.eos_token_id in ref:
            ref = ref[: ref.index(tok.eos_token_id)]
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


def texts(outs):
    return [[c.text for c in row] for row in outs]


def test_a_sample_depends_on_its_key_not_on_its_batch_or_neighbours(tiny_model):
    params = SamplingConfig(temperature=1.0, top_k=8, max_new_tokens=30)
    keys = ["a", "b", "c", "d"]
    wide = BACKENDS["hf"](str(tiny_model), cfg(tiny_model, backend={"batch_size": 8}))
    everything = wide.generate(CONVS, params, n=2, seed=5, keys=keys)
    reversed_ = wide.generate(CONVS[::-1], params, n=2, seed=5, keys=keys[::-1])
    narrow = BACKENDS["hf"](str(tiny_model), cfg(tiny_model, backend={"batch_size": 1}))
    part = narrow.generate(CONVS[2:], params, n=2, seed=5, keys=keys[2:])
    assert texts(reversed_[::-1]) == texts(everything) and texts(part) == texts(everything[2:])
    other = wide.generate(CONVS, params, n=2, seed=5, keys=["e", "f", "g", "h"])
    assert texts(other) != texts(everything)


def test_seeded_sampling_draws_from_the_warped_distribution():
    from secondtry.backends.hf import SeededSampling

    scores = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    rule = SeededSampling(SamplingConfig(temperature=1.0), [11], prompt_width=0, device=torch.device("cpu"))
    counts = torch.zeros(4)
    for step in range(4000):
        counts[rule(torch.zeros((1, step), dtype=torch.long), scores.clone()).argmax()] += 1
    assert torch.allclose(counts / 4000, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.025)
    top2 = SeededSampling(
        SamplingConfig(temperature=1.0, top_k=2), [11], prompt_width=0, device=torch.device("cpu")
    )
    picks = {int(top2(torch.zeros((1, s), dtype=torch.long), scores.clone()).argmax()) for s in range(200)}
    assert picks == {0, 1}


class Warnings(Log):
    def __init__(self):
        self.seen = []

    def warn(self, message):
        self.seen.append(message)


def test_out_of_memory_halves_the_batch_and_changes_no_sample(tiny_model, monkeypatch):
    params = SamplingConfig(temperature=1.0, max_new_tokens=30)
    sampler = BACKENDS["hf"](str(tiny_model), cfg(tiny_model, backend={"batch_size": 8}))
    want = sampler.generate(CONVS, params, n=2, seed=5)
    real, sizes = sampler._generate_batch, []

    def tight(batch, params, seeds):
        sizes.append(len(batch))
        if len(batch) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(batch, params, seeds)

    monkeypatch.setattr(sampler, "_generate_batch", tight)
    sampler.log = Warnings()
    got = sampler.generate(CONVS, params, n=2, seed=5)
    assert texts(got) == texts(want)  # per-row seeds: a smaller batch draws the same tokens
    assert sizes == [8, 4, 2, 2, 2, 2] and sampler.batch_size == 2 and sampler.oom_backoffs == 2
    assert "out of GPU memory generating a batch of 8; going on with batch 4" in sampler.log.seen[0]
