"""Shared fixtures: the repository's data folder and a tiny toy model built here (no hub)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub: a hub id fails at once
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


OPT_IN = ("slow", "gpu", "coq")  # markers whose tests run only when -m names them
INTEGRATION = ROOT / "tests" / "integration"  # every test here is marked integration


@pytest.hookimpl(tryfirst=True)  # before -m selects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests under tests/integration/ `integration`, and leave out slow, gpu and coq tests unless
    the -m expression names one of their markers, whatever else it says: `pytest` and
    `pytest -m "not integration"` leave them out, `pytest -m slow` runs the slow ones."""
    named = {m for m in OPT_IN if re.search(rf"\b{m}\b", config.getoption("markexpr") or "")}
    keep, drop = [], []
    for item in items:
        if INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)
        opted = {m.name for m in item.iter_markers()} & set(OPT_IN)
        (drop if opted and not opted & named else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"shared data folder not found at {DATA}")
    return DATA


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny Llama pretrained for a few seconds on the synthetic task (cached per test session, or in
    SECONDTRY_TEST_CACHE when set: a folder kept between sessions)."""
    from secondtry.toy import toy_model

    cache = os.environ.get("SECONDTRY_TEST_CACHE") or tmp_path_factory.mktemp("toy-cache")
    return toy_model("tiny", cache_dir=cache)


@pytest.fixture(scope="session")
def report_runs(tiny_model, tmp_path_factory) -> Path:
    """Runs made through the command line for the report tests, in three folders:

    demo/     the demo's config (validation split, transfer set, retry turn for every problem, 2 rounds), small
    compare/  tiny-cpu as two presets (star-try-again, resampling) x three seeds, compared (comparison.md)
    tiny/     tiny-cpu as shipped, one seed
    """
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("report-runs")
    configs = ROOT / "configs"
    small = [f"model.path={tiny_model}", "eval_task.options.count=32", "evaluation.bootstrap=300"]

    def cli(*args: str) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        done = subprocess.run(
            [sys.executable, "-m", "secondtry.cli", *args], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    cli(
        "run",
        str(configs / "demo.yaml"),
        *small,
        f"run_dir={root / 'demo'}",
        "train_task.options.count=80",
        "transfer_task.options.count=16",
        "evaluation.validation=16",
        "evaluation.retry_n=3",
        "conditions.retries=3",
        "filter.require=answer",
        "training.steps=12",
        "training.packing=true",
        "stopping.max_rounds=2",
        "backend.batch_size=64",
        "prediction.gain_pp=1",
        "prediction.rounds=2",
        "prediction.text=The retries teach the tiny model something within two rounds.",
    )
    cli(
        "run",
        str(configs / "tiny-cpu.yaml"),
        *small,
        f"run_dir={root / 'compare'}",
        "--seeds",
        "3",
        "--preset",
        "star-try-again",
        "--preset",
        "resampling",
    )
    cli("run", str(configs / "tiny-cpu.yaml"), f"model.path={tiny_model}", f"run_dir={root / 'tiny'}")
    return root


class Processes:
    """The process table, for tests that start servers: what runs, and what serves a given model."""

    @staticmethod
    def alive(pid: int) -> bool:
        """Whether `pid` runs (a zombie waiting to be reaped does not)."""
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")

    @classmethod
    def serving(cls, marker: str) -> list[str]:
        """Command lines of live processes that mention `marker` and serve (a leftover server)."""
        found = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
                pid = int(cmdline.parent.name)
            except (OSError, ValueError):
                continue
            if (
                marker in text
                and ("serve" in text or "scripted_vllm" in text)
                and cls.alive(pid)
                and pid != os.getpid()
            ):
                found.append(text)
        return found


@pytest.fixture
def processes() -> Processes:
    return Processes()
