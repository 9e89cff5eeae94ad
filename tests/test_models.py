"""Model loading (models.py): devices, dtypes, adapter folders and the errors that explain a bad path."""

import json
import re

import pytest
import torch

from secondtry.models import ModelLoadError, adapter_base, load_model, resolve_device, resolve_dtype


def test_devices_resolve_and_a_missing_cuda_device_is_explained(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(
        ModelLoadError, match="backend.device=cuda:1 but no CUDA device is visible; use backend.device=cpu"
    ):
        resolve_device("cuda:1")


def test_dtypes_resolve_auto_by_device():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bfloat16", cpu) == torch.bfloat16 and resolve_dtype("float16", cpu) == torch.float16


def test_an_adapter_folder_names_its_base(tmp_path):
    assert adapter_base(str(tmp_path)) is None  # a plain folder
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/models/base"}))
    assert adapter_base(str(tmp_path)) == "/models/base"
    (tmp_path / "config.json").write_text("{}")  # a merged model with its adapter config left beside it
    assert adapter_base(str(tmp_path)) is None


@pytest.mark.parametrize(
    "text,why",
    [("{not json", "not a readable adapter config"), ('{"r": 8}', "names no base_model_name_or_path")],
)
def test_a_broken_adapter_config_is_named(tmp_path, text, why):
    (tmp_path / "adapter_config.json").write_text(text)
    with pytest.raises(ModelLoadError, match=f"adapter_config.json.*{why}"):
        adapter_base(str(tmp_path))


def test_a_missing_or_unreadable_model_is_explained(tmp_path):
    with pytest.raises(
        ModelLoadError, match=r"model not found: .*nowhere \(a local model folder, or a hub id"
    ):
        load_model(str(tmp_path / "nowhere"), "float32", torch.device("cpu"))
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(
        ModelLoadError, match="model not found: .*weights.bin"
    ):  # a file is not a model folder
        load_model(str(tmp_path / "weights.bin"), "float32", torch.device("cpu"))
    with pytest.raises(
        ModelLoadError, match=f"cannot load a causal LM from {re.escape(str(tmp_path))}: "
    ):  # an empty folder
        load_model(str(tmp_path), "float32", torch.device("cpu"))
