"""Shared fixtures: the repository's data folder and a tiny toy model built here (no hub)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub: a hub id fails at once
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"shared data folder not found at {DATA}")
    return DATA


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny Llama pretrained for a few seconds on the synthetic task (cached per test session)."""
    from secondtry.toy import toy_model

    return toy_model("tiny", cache_dir=tmp_path_factory.mktemp("toy-cache"))


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
            if marker in text and ("serve" in text or "scripted_vllm" in text) and cls.alive(pid) \
                    and pid != os.getpid():
                found.append(text)
        return found


@pytest.fixture
def processes() -> Processes:
    return Processes()
