"""Wall time of `secondtry demo`, cold (empty model cache: the toy model is pretrained) and warm.

    python benchmarks/demo_wall.py            # writes benchmarks/results/demo-<machine>-<date>.json

Each run uses a fresh temporary directory and cache, so nothing from earlier runs is reused.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_demo(workdir: Path, cache: Path) -> float:
    env = {**os.environ, "SECONDTRY_CACHE": str(cache)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "secondtry.cli", "demo"], cwd=workdir, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "cold").mkdir()
        (tmp / "warm").mkdir()
        cold = timed_demo(tmp / "cold", tmp / "cache")
        warm = timed_demo(tmp / "warm", tmp / "cache")
        summary = json.loads((tmp / "warm" / "runs" / "demo" / "summary.json").read_text())
    machine = f"cpu-{os.cpu_count()}cores"
    record = {
        "name": "demo", "date": datetime.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU",
        "command": "python benchmarks/demo_wall.py",
        "workload": {"config": "configs/demo.yaml", "what": "cold: pretrain the toy model + the demo run; "
                                                            "warm: the demo run with the cached model"},
        "figures": {"wall_s_cold": round(cold, 1), "wall_s_warm": round(warm, 1),
                    "best_round": summary["best_round"], "best_value": summary["best_value"]},
    }
    out = ROOT / "benchmarks" / "results" / f"demo-{machine}-{record['date']}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["figures"]), "->", out)


if __name__ == "__main__":
    main()
