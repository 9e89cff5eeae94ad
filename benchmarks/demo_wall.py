"""Wall time of `secondtry demo`, cold (empty model cache: the toy model is pretrained) and warm.

    python benchmarks/demo_wall.py                  # writes benchmarks/results/demo-<machine>-<date>.json
    python benchmarks/demo_wall.py --cold-only --log demo.log   # once, as a new user runs it, its log kept

Each run uses a fresh temporary directory and cache, so nothing from earlier runs is reused. The demo runs as
a user would pipe it to a file (`COLUMNS=80 secondtry demo > demo.log 2>&1`); the record holds the load
average before and after (a shared machine is slower, and says so), the torch threads the demo chose, and
where the time went (pretraining, each stage of the run).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from secondtry.bench import write_record

ROOT = Path(__file__).resolve().parents[1]


def timed_demo(workdir: Path, cache: Path, log: Path) -> dict:
    env = {**os.environ, "SECONDTRY_CACHE": str(cache), "COLUMNS": "80"}
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with open(log, "w") as out:
        subprocess.run(
            [sys.executable, "-m", "secondtry.cli", "demo"],
            cwd=workdir,
            env=env,
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wall = time.perf_counter() - start
    text = log.read_text()
    threads = re.search(r"^cpu: (\d+) torch threads? \((.*)\)$", text, re.M)
    manifest = json.loads((workdir / "runs" / "demo" / "manifest.json").read_text())
    stages = {name: entry["info"]["wall_s"] for name, entry in manifest["stages"].items()}
    recipe = next(cache.glob("demo-*/recipe.json"), None)
    return {
        "wall_s": round(wall, 1),
        "load_average_1min_before": round(load_before, 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
        "torch_threads": int(threads[1]) if threads else None,
        "threads_why": threads[2] if threads else None,
        "pretrain_s": json.loads(recipe.read_text())["wall_s"] if recipe else None,
        "stages_s": stages,
        "summary": json.loads((workdir / "runs" / "demo" / "summary.json").read_text()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cold-only", action="store_true", help="only the first run (pretraining included)")
    parser.add_argument("--log", type=Path, help="keep the cold run's output here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "cold").mkdir()
        (tmp / "warm").mkdir()
        cold = timed_demo(tmp / "cold", tmp / "cache", tmp / "cold.log")
        if args.log:
            shutil.copy(tmp / "cold.log", args.log)
        warm = None if args.cold_only else timed_demo(tmp / "warm", tmp / "cache", tmp / "warm.log")
    busy = max(cold["load_average_1min_before"], cold["load_average_1min_after"]) > (os.cpu_count() or 1)
    best = cold["summary"]
    figures = {
        "wall_s_cold": cold["wall_s"],
        "pretrain_s": cold["pretrain_s"],
        "run_s_cold": round(cold["wall_s"] - (cold["pretrain_s"] or 0), 1),
        "stages_s_cold": cold["stages_s"],
        "torch_threads": cold["torch_threads"],
        "load_average_1min": [cold["load_average_1min_before"], cold["load_average_1min_after"]],
        "best_round": best["best_round"],
        "best_value": best["best_value"],
    }
    if warm:
        figures.update(wall_s_warm=warm["wall_s"], stages_s_warm=warm["stages_s"])
    out = write_record(
        "demo",
        "python benchmarks/demo_wall.py"
        + (" --cold-only" if args.cold_only else "")
        + (f" --log {args.log.name}" if args.log else ""),
        {
            "config": "configs/demo.yaml",
            "ran": "COLUMNS=80 secondtry demo > LOG 2>&1",
            "what": "cold: pretrain the toy model + the demo run"
            + ("" if args.cold_only else "; warm: the demo run with the cached model"),
            "threads": cold["threads_why"],
        },
        figures,
        out_dir=ROOT / "benchmarks" / "results",
        note="shared with other work (load average above the core count)" if busy else "",
        suffix="-loaded" if busy else "",
    )
    print(json.dumps(figures), "->", out)


if __name__ == "__main__":
    main()
