"""`secondtry bench agree` on a CPU: the engine against transformers `generate`, greedy, on the toy model's
real (pretrained) weights, with its chat template, through the task loader; bad input is named."""

from __future__ import annotations

import json
import subprocess
import sys

from secondtry.bench.agree import run


def _gsm8k(path, n):
    rows = [
        {
            "question": f"Tom has {i} apples and buys {i + 2} more. How many apples?",
            "answer": f"{i} + {i + 2} = {2 * i + 2}\n#### {2 * i + 2}",
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_agreement_figures_per_dtype(tiny_model, tmp_path):
    data = _gsm8k(tmp_path / "test.jsonl", 6)
    workload, figures = run(
        str(tiny_model), data, n=6, tokens=12, batch=6, other_batch=2, dtypes=("float32",), device="cpu"
    )
    assert workload["problems"] == 6 and workload["new_tokens"] == 12 and workload["device"] == "cpu"
    for what in ("generate_other", "engine"):
        assert 0.0 <= figures[f"fp32_{what}_share"] <= 1.0
        assert 0.0 <= figures[f"fp32_{what}_mean_prefix"] <= 12
    assert (
        figures["fp32_engine_share"] == 1.0
    )  # float32 on a CPU: the engine's torch path is generate's greedy
    assert figures["fp32_engine_kernels"] is False


def test_a_missing_data_file_is_named(tiny_model, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "secondtry.cli",
            "bench",
            "agree",
            "--model",
            str(tiny_model),
            "--data",
            str(tmp_path / "nope.jsonl"),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and "nope.jsonl: no such file" in done.stderr + done.stdout
