"""The generation engine against transformers: greedy token for token, sampling distributions, seeds, back-off.

Models are tiny random Llama / Qwen2 / Qwen3 built here (float32, CPU), with weights drawn wide
enough that greedy choices are not near-ties. The Triton kernels run under TRITON_INTERPRET=1
when Triton is installed and there is no GPU (else those tests are skipped).
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys

import pytest
import torch

if (
    not torch.cuda.is_available()
):  # Triton kernels run interpreted on the CPU; set before transformers imports triton
    os.environ.setdefault("TRITON_INTERPRET", "1")

from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from secondtry.backends.engine import Engine, completion, generate_completions, sampling, unsupported
from secondtry.backends.engine.attention import decode_attention_torch

SMALL = dict(
    vocab_size=96,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    initializer_range=0.2,
    max_position_embeddings=256,
    pad_token_id=0,
)
FAMILIES = {
    "llama": (LlamaConfig, LlamaForCausalLM, {}),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, {}),
    "qwen3": (Qwen3Config, Qwen3ForCausalLM, {"head_dim": 16}),
}
DEV = "cuda" if torch.cuda.is_available() else "cpu"  # where the kernel tests run
PROMPTS = [[3, 4, 5, 6], list(range(7, 19)), [20, 21], [30, 31, 32, 33, 34, 35, 36]]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only add overhead
    yield
    torch.set_num_threads(threads)


def tiny(family: str, seed: int = 0):
    config_cls, model_cls, extra = FAMILIES[family]
    torch.manual_seed(seed)
    model = model_cls(config_cls(**SMALL, **extra)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):  # Qwen2's q/k/v biases start at zero: make them count
                p.normal_(0, 0.2)
            elif "norm" in name:
                p.copy_(1 + 0.2 * torch.randn_like(p))
    return model


def hf_greedy(model, ids, max_new, eos=None):
    x = torch.tensor([ids], device=model.device)
    out = model.generate(
        x,
        attention_mask=torch.ones_like(x),
        max_new_tokens=max_new,
        do_sample=False,
        eos_token_id=eos,
        pad_token_id=0,
    )
    new = out[0, len(ids) :].tolist()
    return new[: new.index(eos) + 1] if eos is not None and eos in new else new


@pytest.mark.parametrize("family", list(FAMILIES))
def test_greedy_matches_generate(family):
    model = tiny(family)
    eos = hf_greedy(model, PROMPTS[0], 8)[
        4
    ]  # a token greedy decoding does produce, so some sequences stop on it
    maxn = [12, 3, 9, 1]
    refs = [hf_greedy(model, p, m, eos) for p, m in zip(PROMPTS, maxn)]
    engine = Engine(model, eos_ids=[eos], max_slots=3, sync_every=4)  # 8 sequences through 3 slots
    outs = engine.generate(PROMPTS, n=2, max_new_tokens=maxn)
    for ref, m, pair in zip(refs, maxn, outs):
        for out in pair:
            assert out.tokens == ref
            assert out.finish_reason == ("stop" if ref[-1] == eos else "length")
            assert len(out.tokens) == m or out.finish_reason == "stop"
    assert {o.finish_reason for pair in outs for o in pair} == {"stop", "length"}


def test_eos_stops_sequences_in_every_call_of_one_engine():
    """A later call with the same settings replays the decode graphs the first call captured, which read the
    tensor of EOS ids: it must be the same tensor, so later calls stop where a fresh engine stops. (Seen on the
    GPU: calls after the first ran to max_new_tokens once the first call's EOS tensor had been freed and its
    memory reused.)"""
    model = tiny("llama").to(DEV)
    eos = hf_greedy(model, PROMPTS[0], 8)[4]
    refs = [hf_greedy(model, p, 12, eos) for p in PROMPTS]
    assert any(r[-1] == eos and len(r) < 12 for r in refs)
    engine = Engine(model, eos_ids=[eos], max_slots=4, sync_every=4)  # on a GPU: kernels and CUDA graphs
    engine.generate([list(range(40, 70)), [50, 51, 52]], max_new_tokens=12)  # longer: one cache for all calls
    stops_at = engine.eos
    for _ in range(2):
        assert [o[0].tokens for o in engine.generate(PROMPTS, max_new_tokens=12)] == refs
    assert engine.eos is stops_at


def test_stop_strings_cut_at_the_first_match():
    model = tiny("qwen3")
    ref = hf_greedy(model, PROMPTS[0], 16)
    decode = lambda ids: "".join(chr(65 + t % 26) for t in ids)  # noqa: E731 - one character a token
    stop = decode(ref[5:7])
    first = next(t for t in range(len(ref)) if stop in decode(ref[: t + 1]))
    out = Engine(model, sync_every=5).generate(
        [PROMPTS[0]], max_new_tokens=16, stop=[stop, "#"], decode=decode
    )[0][0]
    assert (out.tokens, out.finish_reason, out.stop) == (ref[: first + 1], "stop", stop)

    class Tok:
        def decode(self, ids, skip_special_tokens=True):
            return decode(ids)

    c = completion(Tok(), out, prompt_tokens=4)
    assert (
        c.text == decode(ref[: first + 1])[: decode(ref[: first + 1]).index(stop)] and c.n_tokens == first + 1
    )


def test_seeds_are_independent_of_batch_composition():
    model = tiny("qwen3")
    a, b, c = PROMPTS[0], PROMPTS[1], PROMPTS[3]
    one = Engine(model, max_slots=4, sync_every=4).generate(
        [a, b, c], n=3, temperature=1.0, seeds=[10, 11, 12], max_new_tokens=10
    )
    two = Engine(model, max_slots=2, sync_every=3).generate(
        [c, a], n=3, temperature=1.0, seeds=[12, 10], max_new_tokens=10
    )
    tokens = lambda row: [o.tokens for o in row]  # noqa: E731
    assert tokens(one[0]) == tokens(two[1]) and tokens(one[2]) == tokens(two[0])
    assert len({tuple(t) for t in tokens(one[0])}) > 1  # the samples of one prompt differ
    engine = Engine(model, max_slots=5)
    x, y, z = (engine.generate([a, b], n=2, temperature=0.8, seed=s, max_new_tokens=10) for s in (1, 1, 2))
    assert [tokens(r) for r in x] == [tokens(r) for r in y] != [tokens(r) for r in z]


def test_a_session_fed_while_it_decodes_gives_what_separate_calls_give():
    """Requests submitted between steps (a retry as its first attempt is judged), greedy ones among sampled
    ones, and one longer than the cache: each comes out as it does alone."""
    model = tiny("qwen3")
    a, b, c = PROMPTS[0], PROMPTS[1], PROMPTS[3]
    alone = Engine(model, max_slots=4)
    want_a = [o.tokens for o in alone.generate([a], n=2, temperature=1.0, seeds=[5], max_new_tokens=9)[0]]
    want_b = alone.generate([b], temperature=0.0, max_new_tokens=9)[0][0].tokens
    want_c = [o.tokens for o in alone.generate([c], n=3, temperature=1.0, seeds=[6], max_new_tokens=9)[0]]
    long_prompt = list(range(1, 40))
    want_long = alone.generate([long_prompt], temperature=0.0, max_new_tokens=30)[0][0].tokens
    warned: list[str] = []
    engine = Engine(model, max_slots=3, sync_every=2, warn=warned.append)
    engine.open(24, 9, temperature=1.0)
    got: dict[int, dict[int, list[int]]] = {}
    ra = engine.submit(a, n=2, seed=5)
    rb = engine.submit(b, greedy=True)
    late = {}
    while engine.busy():
        for r, j, out in engine.step():
            got.setdefault(r, {})[j] = out.tokens
        if "c" not in late and got.get(ra):  # a finished sample brings new work into the running batch
            late["c"] = engine.submit(c, n=3, seed=6)
            late["long"] = engine.submit(long_prompt, max_new_tokens=30, greedy=True)
    assert [got[ra][j] for j in range(2)] == want_a and got[rb][0] == want_b
    assert [got[late["c"]][j] for j in range(3)] == want_c and got[late["long"]][0] == want_long
    assert engine.rebuilds == 1 and "longer than the engine's cache" in warned[0]
    assert len({tuple(t) for t in want_c}) > 1  # sampled, not greedy


def _allowed_probs(model, prompt, temperature, top_k, top_p):
    """The distribution transformers samples the first token from."""
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    with torch.no_grad():
        scores = model(torch.tensor([prompt])).logits[:, -1].float()
    scores = TemperatureLogitsWarper(temperature)(None, scores)
    if top_k:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p < 1:
        scores = TopPLogitsWarper(top_p)(None, scores)
    return scores.softmax(-1)[0]


def _chi2_ok(counts: torch.Tensor, probs: torch.Tensor) -> bool:
    """Goodness of fit at p = 1e-4 (Wilson-Hilferty), bins with fewer than 5 expected merged."""
    n = counts.sum().item()
    expected = probs * n
    big = expected >= 5
    obs = torch.cat([counts[big].float(), counts[~big].sum().float()[None]])
    exp = torch.cat([expected[big], expected[~big].sum()[None]])
    keep = exp > 0
    stat = ((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum().item()
    df = int(keep.sum()) - 1
    critical = df * (1 - 2 / (9 * df) + 3.719 * math.sqrt(2 / (9 * df))) ** 3
    return stat < critical


@pytest.mark.parametrize(
    "temperature,top_k,top_p", [(1.0, 0, 1.0), (0.7, 5, 1.0), (1.0, 0, 0.8), (1.5, 10, 0.9)]
)
def test_sampling_distribution_matches_generate(temperature, top_k, top_p):
    model = tiny("llama", seed=1)
    prompt, draws = PROMPTS[0], 3000
    probs = _allowed_probs(model, prompt, temperature, top_k, top_p)
    outs = Engine(model, max_slots=512).generate(
        [prompt], n=draws, temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=1, seed=3
    )[0]
    engine_counts = torch.bincount(torch.tensor([o.tokens[0] for o in outs]), minlength=probs.numel())
    torch.manual_seed(0)
    hf = model.generate(
        torch.tensor([prompt] * draws),
        max_new_tokens=1,
        do_sample=True,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        pad_token_id=0,
    )[:, -1]
    hf_counts = torch.bincount(hf, minlength=probs.numel())
    assert (engine_counts[probs == 0] == 0).all()  # nothing outside what top-k / top-p allow
    assert (probs > 0).sum() > 3  # a real distribution, not one token
    assert _chi2_ok(hf_counts, probs) and _chi2_ok(engine_counts, probs)
    tv = 0.5 * (engine_counts / draws - hf_counts / draws).abs().sum().item()
    assert tv < 0.08


def test_out_of_memory_halves_the_slots_and_changes_nothing(monkeypatch):
    model = tiny("qwen2")
    kwargs = dict(n=3, temperature=1.0, max_new_tokens=9, seed=5)
    expected = Engine(model, max_slots=8, sync_every=3).generate(PROMPTS, **kwargs)
    warnings = []
    engine = Engine(model, max_slots=8, sync_every=3, warn=warnings.append)
    advance, calls = engine._advance, []

    def flaky():
        calls.append(1)
        if len(calls) == 2:  # after some tokens exist: they are thrown away and made again
            raise torch.cuda.OutOfMemoryError("injected")
        return advance()

    monkeypatch.setattr(engine, "_advance", flaky)
    got = engine.generate(PROMPTS, **kwargs)
    assert [[o.tokens for o in r] for r in got] == [[o.tokens for o in r] for r in expected]
    assert engine.slots == 4 and len(warnings) == 1 and "going on with 4" in warnings[0]


def test_completions_match_the_hf_backend():
    from secondtry.config import SamplingConfig
    from secondtry.toy import build_model, build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(0)
    model = build_model("tiny", tok).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(8)  # wide logits: greedy choices far from ties
    convs = ["4+5+2-9", "1+2", "9-3+7+1"]
    ids = [
        tok.apply_chat_template(
            [{"role": "user", "content": c}], add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        for c in convs
    ]
    seen = []
    engine = Engine(model, eos_ids=[tok.eos_token_id], max_slots=2)
    got = generate_completions(
        engine, tok, ids, SamplingConfig(temperature=0, max_new_tokens=40), progress=seen.append
    )
    assert sum(seen) == 3
    for prompt, (c,) in zip(ids, got):
        ref = hf_greedy(model, prompt, 40, tok.eos_token_id)
        stopped = ref[-1] == tok.eos_token_id
        assert c.text == tok.decode(ref[:-1] if stopped else ref, skip_special_tokens=True)
        assert (c.n_tokens, c.prompt_tokens) == (len(ref), len(prompt))
        assert c.finish_reason == ("stop" if stopped else "length")


def test_unsupported_models_are_named():
    from transformers import GPT2Config, GPT2LMHeadModel

    assert "gpt2" in unsupported(GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50)))
    assert unsupported(tiny("llama")) is None


def test_hash_matches_its_integer_reference():
    x = torch.tensor([0, 1, 7, 2**31, 2**32 - 1, 123456789])
    assert sampling.mix32(x).tolist() == [sampling._mix32_int(int(v)) for v in x]


# ---- Triton kernels against their torch twins (interpreted on the CPU) ----------------------------


@pytest.fixture(scope="module")
def kernels():
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    if not torch.cuda.is_available():
        if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
            pytest.skip(
                "triton was imported before TRITON_INTERPRET=1 could be set; run with TRITON_INTERPRET=1"
            )
        os.environ["TRITON_INTERPRET"] = "1"  # read when triton and the kernels are imported
    from secondtry.backends.engine import kernels as k

    return k


def test_kernel_add_rmsnorm(kernels):
    model = tiny("qwen3").to(DEV)
    norm = model.model.layers[0].input_layernorm
    x, d = torch.randn(5, 64, device=DEV), torch.randn(5, 64, device=DEV)
    res, out = kernels.add_rmsnorm(x, d, norm.weight, norm.variance_epsilon)
    torch.testing.assert_close(res, x + d)
    torch.testing.assert_close(out, norm(x + d), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        kernels.add_rmsnorm(x, None, norm.weight, norm.variance_epsilon)[1], norm(x), rtol=1e-5, atol=1e-5
    )


def test_kernel_qkv_post(kernels):
    model = tiny("qwen3").to(DEV)
    a = model.model.layers[0].self_attn
    from secondtry.backends.engine.model import EngineModel, _rotate_half

    cos, sin = EngineModel(model).rope_table(32)
    t, h, kvh, d = 6, 4, 2, 16
    qkv = torch.randn(t, (h + 2 * kvh) * d, device=DEV)
    pos, slot = torch.tensor([0, 3, 31, 5, 6, 7], device=DEV), torch.tensor([1, 0, 2, 1, 1, 0], device=DEV)
    kc, vc = torch.zeros(3, kvh, 32, d, device=DEV), torch.zeros(3, kvh, 32, d, device=DEV)
    q = kernels.qkv_post(qkv, pos, slot, kc, vc, cos, sin, a.q_norm.weight, a.k_norm.weight, 1e-6, h, kvh, d)
    qr, kr, vr = qkv.split([h * d, kvh * d, kvh * d], dim=1)
    c, s = cos[pos][:, None], sin[pos][:, None]
    qr, kr = a.q_norm(qr.view(t, h, d)), a.k_norm(kr.view(t, kvh, d))
    torch.testing.assert_close(q, qr * c + _rotate_half(qr) * s, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kc[slot, :, pos], kr * c + _rotate_half(kr) * s, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(vc[slot, :, pos], vr.view(t, kvh, d))
    q = kernels.qkv_post(qkv, pos, slot, kc, vc, cos, sin, None, None, 1e-6, h, kvh, d)  # no q/k norm (Llama)
    qr, kr = qkv[:, : h * d].view(t, h, d), qkv[:, h * d : (h + kvh) * d].view(t, kvh, d)
    torch.testing.assert_close(q, qr * c + _rotate_half(qr) * s, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kc[slot, :, pos], kr * c + _rotate_half(kr) * s, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("splits", [1, 3])
def test_kernel_decode_attention(kernels, splits):
    torch.manual_seed(0)
    kc, vc = torch.randn(5, 2, 80, 16, device=DEV), torch.randn(5, 2, 80, 16, device=DEV)
    q = torch.randn(4, 4, 16, device=DEV)
    rows, lens = torch.tensor([3, 0, 4, 1], device=DEV), torch.tensor([80, 1, 37, 0], device=DEV)
    got = kernels.decode_attention(q, kc, vc, rows, lens, 0.25, splits)
    ref = decode_attention_torch(q, kc, vc, rows, lens, 0.25)
    torch.testing.assert_close(got[:3], ref[:3], rtol=1e-4, atol=1e-4)
    assert (got[3] == 0).all()  # a row with nothing live


def test_kernel_silu_mul_and_sampling(kernels):
    gu = torch.randn(3, 2 * 40, device=DEV)
    torch.testing.assert_close(kernels.silu_mul(gu), torch.nn.functional.silu(gu[:, :40]) * gu[:, 40:])
    scores = torch.randn(6, 3000, device=DEV) * 3
    keys = torch.tensor([1, 2, 3, 2**31 + 5, 9, 9], device=DEV)
    steps = torch.tensor([0, 0, 7, 100000, 1, 2], device=DEV)
    for temperature in (1.0, 0.6):
        ref = sampling.sample(scores, keys, steps, temperature)
        assert kernels.gumbel_argmax(scores, keys, steps, 1 / temperature).tolist() == ref.tolist()


def test_kernel_path_matches_generate(kernels):
    model = tiny("qwen3").to(DEV)
    eos = hf_greedy(model, PROMPTS[0], 5)[2]
    refs = [hf_greedy(model, p, 5, eos) for p in PROMPTS[:2]]
    engine = Engine(model, [eos], kernels=True, fuse=True, graphs=DEV == "cuda", max_slots=2)
    assert [o[0].tokens for o in engine.generate(PROMPTS[:2], max_new_tokens=5)] == refs
    assert len(refs[0]) == 3
    kwargs = dict(n=2, temperature=1.0, max_new_tokens=4, seed=4)
    torch_path = Engine(model, kernels=False, max_slots=2).generate(PROMPTS[:2], **kwargs)
    kernel_path = engine.generate(PROMPTS[:2], **kwargs)
    assert [[o.tokens for o in r] for r in kernel_path] == [[o.tokens for o in r] for r in torch_path]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the varlen flash kernel runs on a GPU")
def test_prefill_flash_path_matches_padded_sdpa(monkeypatch):
    from secondtry.backends.engine import attention as att

    torch.manual_seed(0)
    lengths, slots = [5, 17, 1, 9], [2, 0, 3, 1]
    layout = att.PromptLayout(lengths, slots, torch.device("cuda"))
    kc, vc = (torch.randn(5, 2, 32, 64, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    q = torch.randn(sum(lengths), 8, 64, device="cuda", dtype=torch.bfloat16)
    assert att._flash_ok(q)
    got = att.prefill_attention(q, kc, vc, layout, 0.125).float()
    monkeypatch.setattr(att, "_flash_ok", lambda q: False)
    ref = att.prefill_attention(q.float(), kc.float(), vc.float(), layout, 0.125)  # padded SDPA, float32
    torch.testing.assert_close(got, ref, rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize("top_k,top_p", [(20, 1.0), (20, 0.8), (5, 0.5), (50, 0.95)])
def test_top_k_sampling_on_the_best_entries_picks_what_the_full_vocabulary_path_picks(top_k, top_p):
    torch.manual_seed(0)
    logits = torch.randn(64, 5000) * 3
    if top_p == 1.0:  # ties at the k-th entry are kept, as transformers keeps them (bf16 logits do tie)
        logits = logits.bfloat16()
        logits[:8, :30] = 40.0  # rows whose 30 best entries all tie
    # (with top-p, which of two tied entries at its cut goes is the sort's choice, in transformers too)
    keys, steps = torch.arange(64) * 7919 + 3, torch.arange(64) % 11
    for temperature in (1.0, 0.7):
        got = sampling.sample(logits, keys, steps, temperature, top_k, top_p)
        scores = sampling.top_k_filter(logits.float() / temperature, top_k)
        if top_p < 1.0:
            scores = sampling.top_p_filter(scores, top_p)
        want = torch.argmax(scores + sampling.gumbel_noise(keys, steps, scores.shape[-1]), dim=-1)
        assert got.tolist() == want.tolist()


def test_top_k_close_to_the_vocabulary_size_still_filters():
    torch.manual_seed(1)
    logits = torch.randn(32, 40) * 3
    keys, steps = torch.arange(32) * 31 + 1, torch.zeros(32, dtype=torch.long)
    got = sampling.sample(logits, keys, steps, 50.0, top_k=30)  # 30 + TIES > 40: the whole-vocabulary path
    scores = sampling.top_k_filter(
        logits.float() / 50.0, 30
    )  # nearly flat: without the filter, 1 in 4 falls outside
    want = torch.argmax(scores + sampling.gumbel_noise(keys, steps, 40), dim=-1)
    assert got.tolist() == want.tolist()
