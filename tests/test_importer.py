"""`secondtry import-gguf`: a tiny Llama written as GGUF here (F32 tensors, one Q8_0) comes back as a transformers
folder with the same weights, tokenizer and chat template; bad sources are refused by name."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

from secondtry.importer import GGUFImportError, find_gguf, import_gguf  # noqa: E402

TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(["What is 2 + 3? The answer is 5.", "Try again carefully."] * 50, trainer)
    return json.loads(tok.to_str())


def _permute(w: np.ndarray, heads: int) -> np.ndarray:  # llama.cpp's q/k layout (transformers reverses it)
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(path of the .gguf, the HF model it was written from, the tokenizer state)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    state = _tokenizer()
    vocab = state["model"]["vocab"]
    cfg = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).eval()
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    (
        w.add_context_length(256),
        w.add_embedding_length(64),
        w.add_block_count(2),
        w.add_feed_forward_length(128),
    )
    (
        w.add_head_count(4),
        w.add_head_count_kv(2),
        w.add_layer_norm_rms_eps(1e-5),
        w.add_rope_dimension_count(16),
    )
    w.add_rope_freq_base(10000.0), w.add_vocab_size(len(vocab))
    tokens = sorted(vocab, key=vocab.get)
    w.add_tokenizer_model("gpt2"), w.add_tokenizer_pre("default"), w.add_token_list(tokens)
    w.add_token_types([3 if t.startswith("<|") else 1 for t in tokens])
    merges = state["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_bos_token_id(vocab["<|endoftext|>"]), w.add_eos_token_id(vocab["<|im_end|>"])
    w.add_pad_token_id(vocab["<|endoftext|>"]), w.add_chat_template(TEMPLATE)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2)
    for name, p in model.state_dict().items():
        base = name.removesuffix(".weight")
        data = p.numpy().astype(np.float32)
        if "q_proj" in name:
            data = _permute(data, 4)
        elif "k_proj" in name:
            data = _permute(data, 2)
        target = names.get_name(base) + ".weight"
        if name == "model.layers.1.mlp.down_proj.weight":  # one quantized tensor, as real files have
            w.add_tensor(
                target,
                gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0),
                raw_dtype=gguf.GGMLQuantizationType.Q8_0,
            )
        else:
            w.add_tensor(target, data)
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file()
    w.close()
    return path, model, state


def test_weights_tokenizer_and_template_come_back(tiny, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, model, _ = tiny
    record = import_gguf(path, tmp_path / "out", dtype="float32", log=lambda m: None)
    assert record["model_type"] == "llama" and record["tensor_types"] == {"F32": 20, "Q8_0": 1}
    assert record["chat_template"] and (tmp_path / "out" / "IMPORTED.json").is_file()
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "out", dtype=torch.float32)
    ref, got = model.state_dict(), back.state_dict()
    assert ref.keys() == got.keys()
    for k in ref:
        tol = 0.02 if k == "model.layers.1.mlp.down_proj.weight" else 0.0  # Q8_0 rounds; F32 is exact
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=tol, msg=k)
    tok = AutoTokenizer.from_pretrained(tmp_path / "out")
    text = "What is 2 + 3? Try again carefully."
    assert tok.decode(tok(text)["input_ids"]) == text
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tok.eos_token == "<|im_end|>"


@pytest.mark.integration
def test_a_wheel_holding_the_file_is_read_and_the_cli_writes_the_folder(tiny, tmp_path):
    path, _, _ = tiny
    wheel = tmp_path / "pkg-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.write(path, "pkg/tiny.gguf")
        z.writestr("pkg/__init__.py", "")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "secondtry.cli",
            "import-gguf",
            str(wheel),
            str(tmp_path / "m"),
            "--dtype",
            "float32",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "llama" in done.stdout and (tmp_path / "m" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "m" / "IMPORTED.json").read_text())["gguf_file"] == "tiny.gguf"


def test_bad_sources_are_named(tiny, tmp_path):
    path, _, _ = tiny
    with pytest.raises(GGUFImportError, match="no such file"):
        find_gguf(tmp_path / "missing.gguf", None, tmp_path)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("readme.txt", "nothing")
    with pytest.raises(GGUFImportError, match="holds no .gguf"):
        find_gguf(empty, None, tmp_path)
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as z:
        z.write(path, "a.gguf"), z.write(path, "b.gguf")
    with pytest.raises(GGUFImportError, match="name one with --file"):
        find_gguf(two, None, tmp_path)
    assert find_gguf(two, "b.gguf", tmp_path).name == "b.gguf"
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a gguf")
    with pytest.raises(GGUFImportError, match="no GGUF magic"):
        import_gguf(fake, tmp_path / "x", log=lambda m: None)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(GGUFImportError, match="not empty"):
        import_gguf(path, tmp_path / "full", log=lambda m: None)
    with pytest.raises(GGUFImportError, match="--dtype"):
        import_gguf(path, tmp_path / "y", dtype="int8", log=lambda m: None)
