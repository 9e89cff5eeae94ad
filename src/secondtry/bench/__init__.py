"""Benchmark commands (`secondtry bench ...`): each prints its figures and writes one JSON record.

Records go to `benchmarks/results/<what>-<machine>-<date>.json` (docs/design.md names the figures).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any


def machine(gpus: int | None = None) -> tuple[str, str]:
    """(short name for file names, description): the GPUs the benchmark used (`gpus`; default all the host
    has) when there is one, else the CPU cores."""
    try:
        import torch

        if torch.cuda.is_available():
            host, name = torch.cuda.device_count(), torch.cuda.get_device_name(0).replace("NVIDIA ", "")
            n = min(gpus or host, host)
            where = "" if n == host else f" (of {host} on the host)"
            return f"{n}x{name.split()[0]}".lower(), f"{n}x {name}{where}, {os.cpu_count()} CPU cores"
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    cores = os.cpu_count()
    return f"cpu-{cores}cores", f"{platform.processor() or platform.machine()}, {cores} cores, no GPU"


def write_record(
    name: str,
    command: str,
    workload: dict[str, Any],
    figures: dict[str, Any],
    out_dir: Path = Path("benchmarks/results"),
    gpus: int | None = None,
    note: str = "",
    suffix: str = "",
) -> Path:
    """Write the benchmark record and return its path. `gpus`: how many the benchmark used (default: all);
    `note`: added to the machine's description (e.g. that the CPU was shared); `suffix`: to the file name."""
    short, description = machine(gpus)
    date = datetime.date.today().isoformat()
    record = {
        "name": name,
        "date": date,
        "machine": description + (f"; {note}" if note else ""),
        "command": command,
        "workload": workload,
        "figures": figures,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-{short}-{date}{suffix}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
