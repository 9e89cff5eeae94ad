"""Torch threads on a busy CPU: seconds per step of the toy model's pretraining with 1 thread and with one per
usable CPU, taken in turn, with the load average before each.

    python benchmarks/threads_probe.py [--steps 20] [--reps 3]

writes benchmarks/results/threads-<machine>-<date>.json.

Why: torch's threads wait for each other at the end of every parallel region; when other work keeps the
cores busy, one descheduled thread stalls the rest, and more threads can be slower than one. machine.py
picks one thread when the load average is already at the CPU count; this measures what that choice buys here.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from secondtry.bench import write_record
from secondtry.machine import load_average, usable_cpus
from secondtry.toy.model import MAX_POSITIONS, RECIPES, _batches, build_model
from secondtry.toy.tokenizer import build_tokenizer

ROOT = Path(__file__).resolve().parents[1]


def seconds_per_step(threads: int, steps: int, size: str = "demo") -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    recipe = RECIPES[size]
    tok = build_tokenizer(MAX_POSITIONS)
    model = build_model(recipe.size, tok)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr)
    batches = _batches(tok, random.Random(0), recipe.batch, recipe.error_rate, recipe.retry_share)
    data = [next(batches) for _ in range(steps + 2)]
    for b in data[:2]:  # warm-up: first calls allocate
        model(**b).loss.backward()
        opt.step()
        opt.zero_grad()
    start = time.perf_counter()
    for b in data[2:]:
        model(**b).loss.backward()
        opt.step()
        opt.zero_grad()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    cpus = usable_cpus()
    counts = sorted({1, cpus})
    samples: dict[int, list[float]] = {n: [] for n in counts}
    loads = []
    for _ in range(args.reps):
        for n in counts:
            loads.append(round(load_average() or 0.0, 2))
            samples[n].append(round(seconds_per_step(n, args.steps), 4))
            print(f"{n} thread(s): {samples[n][-1]:.3f} s/step (load average {loads[-1]})", flush=True)
    figures = {f"s_per_step_{n}_threads": samples[n] for n in counts}
    figures.update(
        {f"median_s_per_step_{n}_threads": sorted(samples[n])[len(samples[n]) // 2] for n in counts}
    )
    out = write_record(
        "threads",
        f"python benchmarks/threads_probe.py --steps {args.steps} --reps {args.reps}",
        {
            "what": "toy model (demo size) pretraining steps, batch 16, CPU; thread counts taken in turn",
            "usable_cpus": cpus,
            "steps_timed": args.steps,
            "reps": args.reps,
            "load_average_1min_before_each": loads,
        },
        figures,
        out_dir=ROOT / "benchmarks" / "results",
        note="shared with other work",
    )
    print(json.dumps(figures), "->", out)


if __name__ == "__main__":
    main()
