"""Generation stages stream their work (backends/stream.py, loop.Flow): the records stay byte for byte those of
the turn-by-turn loop they replaced.

EXPECTED holds the SHA-256 of every record file of a two-round tiny run made by the turn-by-turn loop (the
release before streams: one `generate` call per turn of a chunk, then one verifier call) with

    OMP_NUM_THREADS=1 python -m secondtry.cli run configs/tiny-cpu.yaml model.path=<toy:tiny> run_dir=<dir> \\
        name=run stopping.policies=[max_rounds] <SMALL>

The run covers several chunks, two first-attempt samples, two samples a retry turn, three retry turns,
greedy + sampled evaluation and a retry turn for every evaluation problem. The `generate` waves any sampler
without a stream gets (transformers `generate` on a CPU) must give them; one engine session per stage (the
engine's torch path on a CPU), fed while it decodes, its verifier on a thread beside it, must give what the
same engine gives called turn by turn. (The engine keys its samples apart from transformers `generate`, so
their sampled texts differ from each other's; each path's own records are what must not change.)
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny-cpu.yaml"
SMALL = [
    "train_task.options.count=32",
    "eval_task.options.count=16",
    "training.steps=8",
    "checkpoint.chunk=8",
    "conditions.samples=2",
    "conditions.retry_samples=2",
    "evaluation.retry_all=true",
]
EXPECTED = {
    "round_0/eval.jsonl": "45c5fe9ea0901977fbb38fbe31ffc0bfdeff591ba89447145c012d36a9fb6a90",
    "round_0/eval_attempts.jsonl": "442d702c729b5b3999bad52b2b67bb7c7b8fef2c7a2b31d170c19b52cd21c08c",
    "round_1/attempts.jsonl": "648c68a502245065c6495a7209611bc911b69871f2466d86df8a55e099aaaa74",
    "round_1/eval.jsonl": "64adbccf7373249643aec2779491a509598623547fd5a4789ecc2d5f56551ccf",
    "round_1/eval_attempts.jsonl": "91b8a011c89f45c588510a56e6175911aa544de38071ec33aae202f149a201fa",
    "round_1/sft.jsonl": "148a0cece48b42ceb7a512a905050f223f265fe4705e28b1005f4a11ec32c4e5",
    "round_2/attempts.jsonl": "9cee984d34bff6c6fae2cc10ba3b6e39393db357fcfdc851a704a7a3b9f5e5d1",
    "round_2/eval.jsonl": "e16c01ff9f890b788a87e32c1c4763457416c83ce928c6a98db758e557cd572d",
    "round_2/eval_attempts.jsonl": "54e8e0cf725f9a2b353aa635e4bb021b57d0491e57b8bde5500710f79b91527c",
    "round_2/sft.jsonl": "0317e55d0bd7d150f7714445c54dd2fd7c402803dde3b6032fbbfcc28c03640d",
}


def hashes(run: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.glob("round_*/*.jsonl"))
    }


def test_waves_over_generate_give_the_turn_by_turn_records(tiny_model, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "secondtry.cli",
        "run",
        str(CONFIG),
        f"model.path={tiny_model}",
        f"run_dir={tmp_path}",
        "name=run",
        "stopping.policies=[max_rounds]",
        *SMALL,
    ]
    done = subprocess.run(
        cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert hashes(tmp_path / "run") == EXPECTED


def test_one_engine_session_a_stage_gives_what_its_turn_by_turn_calls_give(tiny_model, tmp_path, monkeypatch):
    """The engine (its torch path here) fed as work appears, verifying beside it, against the same engine
    called turn by turn (`generate` waves, as the loop called it before streams)."""
    import torch

    from secondtry.backends.hf import EngineStream, HFSampler
    from secondtry.config import load_config
    from secondtry.loop import run

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    streams: list[object] = []

    class Streamed(HFSampler):
        def stream(self, *args, **kwargs):
            made = super().stream(*args, **kwargs)
            streams.append(made)
            return made

    class TurnByTurn(HFSampler):
        stream = None  # backends/stream.open_stream falls back to Waves over `generate`

    made = {}
    try:
        for name, sampler in (("streamed", Streamed), ("waves", TurnByTurn)):
            cfg = load_config(
                CONFIG,
                [
                    f"model.path={tiny_model}",
                    f"run_dir={tmp_path / name}",
                    "name=run",
                    "stopping.policies=[max_rounds]",
                    *SMALL,
                    "backend.engine=on",
                    "backend.max_slots=16",  # fewer slots than a chunk's requests: they queue
                    "verifier.workers=1",
                ],
            )  # a worker process: verified beside the engine
            run(cfg, make_sampler=sampler)
            made[name] = hashes(tmp_path / name / "run")
    finally:
        torch.set_num_threads(threads)
    assert len(streams) == 3 + 2 and all(
        isinstance(s, EngineStream) for s in streams
    )  # 3 evaluations, 2 attempts
    assert made["streamed"] == made["waves"] and set(made["waves"]) == set(EXPECTED)


@pytest.mark.parametrize("background", [False, True])
def test_a_verifier_error_reaches_the_stage(background):
    from secondtry.loop import Checker

    def broken(items):
        raise ValueError("verifier broke")

    checker = Checker(broken, background=background)
    checker.put("tag", [("problem", "completion")])
    try:
        with pytest.raises(ValueError, match="verifier broke"):
            checker.ready(block=True)
    finally:
        checker.close()
