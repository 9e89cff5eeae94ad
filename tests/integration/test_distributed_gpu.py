"""Two GPUs (run with -m gpu on a machine with at least two): FSDP trains what DDP trains, and the run
directory has the same form. A CPU has no FSDP in accelerate; there the processes train under DDP."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_distributed import _files, secondtry_run

from secondtry.store import read_json

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices"),
]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_fsdp_on_two_gpus_trains_what_ddp_trains(tiny_model, tmp_path):
    args = [
        f"model.path={tiny_model}",
        "stopping.policies=[max_rounds]",
        "stopping.max_rounds=1",
        "backend.device=cuda",
        "model.dtype=float32",
        "training.liger=false",
    ]
    runs = {}
    for name, extra in (("ddp", []), ("fsdp", ["training.fsdp=true"])):
        done = secondtry_run([*args, *extra, f"run_dir={tmp_path / name}"], 2)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        runs[name] = tmp_path / name / "tiny-cpu"
    ddp, fsdp = runs["ddp"], runs["fsdp"]
    info = read_json(fsdp / "round_1" / "round.json")["figures"]["training"]
    assert info["processes"] == 2 and info["fsdp"] > 0  # parameters were held as shards
    assert "fsdp" not in read_json(ddp / "round_1" / "round.json")["figures"]["training"]
    assert _files(ddp) == _files(fsdp)
    for name in ("adapter/adapter_model.safetensors", "model.safetensors"):
        a, b = (_weights(r / "round_1" / "model" / name) for r in (ddp, fsdp))
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k].float(), b[k].float(), rtol=1e-3, atol=1e-4, msg=f"{name}: {k}")
    lora = _weights(fsdp / "round_1" / "model" / "adapter" / "adapter_model.safetensors")
    assert any(float(v.abs().max()) > 0 for k, v in lora.items() if "lora_B" in k)  # it trained
