"""`bench generate|train --gpus K` on a CPU: the torchrun jobs run on gloo, gather every rank's work, and the
figures name each GPU count and the speedups (the GPU figures themselves come from the H200 machines)."""

import json
import os
import subprocess
import sys

from secondtry.bench.scale import gpu_counts
from secondtry.bench.scale import run as run_scaling


def test_gpu_counts_double_up_to_k():
    assert gpu_counts(1) == [1] and gpu_counts(2) == [1, 2] and gpu_counts(6) == [1, 2, 4, 6]


def test_generate_scaling_gathers_every_request_with_the_tokens_one_process_makes(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "secondtry.cli",
        "bench",
        "generate",
        "--model",
        "tiny-qwen3",
        "--requests",
        "10",
        "--prompt",
        "6",
        "--new",
        "8",
        "--resident",
        "4",
        "--variant",
        "2-20",
        "--gpus",
        "2",
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads(next(tmp_path.glob("generate-scaling-*.json")).read_text())
    assert record["command"].startswith("secondtry bench generate --model tiny-qwen3")
    one, two = record["figures"]["gpus_1"], record["figures"]["gpus_2"]
    assert one["processes"] == 1 and two["processes"] == 2 and two["requests_per_rank"] == 5
    assert one["tokens"] == two["tokens"] == 80  # EOS ignored: 10 requests x 8
    assert one["variant_tokens"] == two["variant_tokens"]
    assert (
        two["same_tokens_as_1"] == two["same_tokens_as_1_variant"] == 1.0
    )  # float32 on a CPU: the same tokens
    assert len(two["rank_wall_s"]) == 2
    assert record["figures"]["speedup_gpus_2"] == round(two["tok_s"] / one["tok_s"], 3)
    assert record["figures"]["gen_speedup_2gpu"] == record["figures"]["speedup_gpus_2"]


def test_train_scaling_splits_the_global_batch_or_keeps_it_per_rank(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    params = dict(
        model="tiny-qwen3",
        examples=48,
        min_len=24,
        max_len=48,
        prompt_min=4,
        prompt_max=8,
        tokens_per_step=128,
        pack=64,
        padded_batch=8,
        rank=4,
        warmup=1,
        steps=2,
    )
    workload, figures = run_scaling("train", params, 2)
    assert workload["gpus"] == 2 and set(figures) >= {"gpus_1", "gpus_2_strong", "gpus_2_weak"}
    one, strong, weak = figures["gpus_1"], figures["gpus_2_strong"], figures["gpus_2_weak"]
    assert "error" not in one and "error" not in strong and "error" not in weak, figures
    assert strong["processes"] == weak["processes"] == 2
    assert strong["tokens_per_rank_step"] == 64 and weak["tokens_per_rank_step"] == 128
    # the trainer counts the tokens of every rank: the strong run's global step is the one-process step
    assert abs(strong["tokens_per_step"] - one["tokens_per_step"]) <= 0.25 * one["tokens_per_step"]
    assert weak["tokens_per_step"] > 1.5 * one["tokens_per_step"]
    assert figures["speedup_gpus_2_weak"] == round(weak["tokens_per_s"] / one["tokens_per_s"], 3)
    assert figures["train_speedup_2gpu"] == figures["speedup_gpus_2_weak"]


def test_a_failed_job_is_reported_not_raised(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    _, figures = run_scaling(
        "train",
        dict(
            model="tiny-qwen3",
            examples=8,
            min_len=8,
            max_len=16,
            prompt_min=2,
            prompt_max=4,
            tokens_per_step=32,
            pack=64,
            padded_batch=8,
            rank=4,
            warmup=1,
            steps=1,
        ),
        1,
    )
    assert "error" in figures["gpus_1"] and "less than one packed row" in figures["gpus_1"]["output_tail"]
