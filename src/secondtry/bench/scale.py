"""`secondtry bench generate|train --gpus K`: one workload on 1 GPU and on K GPUs, and the speedup.

Each measurement is its own torchrun job (`python -m torch.distributed.run --standalone
--nproc-per-node k -m secondtry.bench.scale WHAT PARAMS OUT`) on the machine's first k GPUs
(on a CPU: k gloo processes, a check of this code), run one after the other for k = 1, the
powers of two below K, and K. Every rank builds the same random-weight model on its own device.

  generate  the engine, as `secondtry run` uses it with several processes: request i on rank
            i mod k, each rank its own engine; sampling keyed by request, so the tokens do not
            depend on k. Timed from a barrier to the end of the all-gather of every rank's
            tokens, after a warm-up on every rank. Both workloads of `bench generate`: every
            request `new` tokens, and lengths drawn from `variant`. `same_tokens_as_1` is the
            share of requests whose tokens equal the 1-GPU run's (1.0 on a CPU in float32; bf16
            matrix products may round differently at another batch size).
  train     the project's trainer (TRL SFTTrainer under DDP, packing, varlen attention, Liger
            where installed), as a round trains. Strong scaling: the global batch of
            `tokens_per_step` is split over the ranks, as `training.batch_size` is in a run, so
            a round's wall time falls by the speedup. Weak scaling: every rank takes
            `tokens_per_step`, the throughput a larger global batch would get.

Speedup is tokens/s on k GPUs over tokens/s on 1 GPU, in the same invocation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def gpu_counts(gpus: int) -> list[int]:
    """1, the powers of two below `gpus`, and `gpus`."""
    counts, k = [1], 2
    while k < gpus:
        counts.append(k)
        k *= 2
    return sorted(set(counts + [gpus]))


def launch(what: str, params: dict[str, Any], processes: int, timeout: float = 900) -> dict[str, Any]:
    """One torchrun job of `processes` ranks; rank 0's figures (or the job's error and output tail)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.json"
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(processes),
            "-m",
            "secondtry.bench.scale",
            what,
            json.dumps(params),
            str(out),
        ]
        env = dict(os.environ)
        if processes > 1 and "OMP_NUM_THREADS" not in env:
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // processes))
        start = time.perf_counter()
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"error": f"{processes} processes: no result in {timeout:.0f} s"}
        if done.returncode != 0 or not out.is_file():
            return {
                "error": f"{processes} processes exited with code {done.returncode}",
                "output_tail": (done.stdout + done.stderr)[-3000:],
            }
        figures = json.loads(out.read_text())
        figures["job_s"] = round(time.perf_counter() - start, 1)  # start-up, model build and warm-up included
        return figures


def run(
    what: str, params: dict[str, Any], gpus: int, report: Callable[[str, dict], None] = lambda name, f: None
) -> tuple[dict, dict]:
    """(workload, figures): `what` ("generate" or "train") on 1..`gpus` GPUs, and the speedups."""
    import torch

    if torch.cuda.is_available() and gpus > torch.cuda.device_count():
        raise ValueError(f"--gpus {gpus}: this machine has {torch.cuda.device_count()} GPU(s)")
    workload = {
        **params,
        "gpus": gpus,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (gloo)",
    }
    figures: dict[str, Any] = {}
    modes = ("strong", "weak") if what == "train" else ("strong",)
    with tempfile.TemporaryDirectory() as tmp:
        for k in gpu_counts(gpus):
            for mode in modes:
                if k == 1 and mode == "weak":
                    continue  # on one GPU both are the same run
                name = f"gpus_{k}" + (f"_{mode}" if what == "train" and k > 1 else "")
                tokens = Path(tmp) / f"{name}.json"
                figures[name] = launch(what, {**params, "mode": mode, "tokens_to": str(tokens)}, k)
                if what == "generate" and k > 1:
                    figures[name].update(_same_tokens(Path(tmp) / "gpus_1.json", tokens))
                report(name, figures[name])
    keys = ("tok_s", "variant_tok_s") if what == "generate" else ("tokens_per_s",)
    one = figures.get("gpus_1", {})
    for name, f in list(figures.items()):
        if name == "gpus_1":
            continue
        for key in keys:
            if key in f and one.get(key):
                figures[f"speedup_{name}" + ("_variant" if key == "variant_tok_s" else "")] = round(
                    f[key] / one[key], 3
                )
    for k in gpu_counts(gpus)[
        1:
    ]:  # the names the project keeps stable (DESIGN.md): default workload, weak scaling
        stable = figures.get(f"speedup_gpus_{k}" if what == "generate" else f"speedup_gpus_{k}_weak")
        if stable is not None:
            figures[f"{'gen' if what == 'generate' else 'train'}_speedup_{k}gpu"] = stable
    return workload, figures


def _same_tokens(one: Path, other: Path) -> dict[str, float]:
    """Share of requests whose tokens on k GPUs equal those on one, per workload."""
    if not (one.is_file() and other.is_file()):
        return {}
    a, b = json.loads(one.read_text()), json.loads(other.read_text())
    return {
        f"same_tokens_as_1{'' if name == 'default' else '_' + name.rstrip('_')}": round(
            sum(x == y for x, y in zip(a[name], b[name])) / len(a[name]), 4
        )
        for name in a
    }


# ---- inside one torchrun job ---------------------------------------------------------------------------------------


def _generate(p: dict[str, Any]) -> dict[str, Any]:
    import torch

    from .. import distributed
    from ..backends.engine import Engine
    from .generate import MODELS, TEMPERATURE, _device, _sync, random_model, random_workload, tune_attention

    world, me = distributed.world_size(), distributed.rank()
    config = MODELS[p["model"]]
    prompts, lengths = random_workload(
        config["vocab_size"], p["requests"], p["prompt"], p["variant"], p["seed"]
    )
    mine = list(range(me, p["requests"], world))
    engine = Engine(random_model(config, _device()), max_slots=p["resident"])
    out: dict[str, Any] = {"processes": world, "requests_per_rank": len(mine)}
    if engine.model.kernels is not None:
        out["attn_best"] = tune_attention(
            engine.model.kernels,
            engine.model.kv_heads,
            engine.model.heads,
            engine.model.head_dim,
            p["resident"],
            p["prompt"] + p["new"] // 2,
        )["attn_best"]
    engine.warm_up(
        p["prompt"] + max(p["new"], p["variant"][1]),
        max(p["new"], p["variant"][1]),
        temperature=TEMPERATURE,
        ignore_eos=True,
    )
    tokens: dict[str, list[list[int]]] = {}
    for name, new in (("", [p["new"]] * p["requests"]), ("variant_", lengths)):
        _sync()
        distributed.barrier()
        start = time.perf_counter()
        outs = engine.generate(
            [prompts[i] for i in mine],
            max_new_tokens=[new[i] for i in mine],
            temperature=TEMPERATURE,
            seeds=[p["seed"] * 1_000_003 + i for i in mine],
            ignore_eos=True,
        )
        _sync()
        own = time.perf_counter() - start
        gathered = distributed.gather((mine, [row[0].tokens for row in outs], own))
        wall = time.perf_counter() - start
        by_request = {i: t for ids, toks, _ in gathered for i, t in zip(ids, toks)}
        if sorted(by_request) != list(range(p["requests"])):
            raise RuntimeError(
                f"the ranks returned {len(by_request)} distinct requests, not the {p['requests']} asked for"
            )
        generated = sum(len(t) for t in by_request.values())
        out.update(
            {
                f"{name}tok_s": round(generated / wall),
                f"{name}wall_s": round(wall, 2),
                f"{name}tokens": generated,
                f"{name}rank_wall_s": [round(w, 2) for _, _, w in gathered],
            }
        )
        tokens[name or "default"] = [by_request[i] for i in range(p["requests"])]
    out["slots"] = engine.slots
    if p.get("tokens_to") and distributed.is_main():
        Path(p["tokens_to"]).write_text(json.dumps(tokens))
    del engine
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def _train(p: dict[str, Any]) -> dict[str, Any]:
    from .. import distributed
    from .train import _path

    world = distributed.world_size()
    per_rank = p["tokens_per_step"] // world if p["mode"] == "strong" else p["tokens_per_step"]
    if per_rank < p["pack"]:
        raise ValueError(
            f"tokens_per_step {p['tokens_per_step']} gives each of {world} ranks less than one packed "
            f"row of {p['pack']} tokens"
        )
    figures = _path("secondtry", {**p, "tokens_per_step": per_rank})
    if "error" in figures:
        raise RuntimeError(figures["error"])
    return {"processes": world, "mode": p["mode"], "tokens_per_rank_step": per_rank, **figures}


def main(argv: list[str]) -> None:
    """python -m secondtry.bench.scale generate|train PARAMS_JSON OUT_JSON (under torchrun)."""
    from .. import distributed

    what, params, out = argv[0], json.loads(argv[1]), Path(argv[2])
    distributed.init()
    figures = {"generate": _generate, "train": _train}[what](params)
    if distributed.is_main():
        out.write_text(json.dumps(figures))
    distributed.barrier()
    if distributed.active():
        import torch.distributed as dist

        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
