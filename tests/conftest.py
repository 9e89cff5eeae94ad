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
    """A tiny Llama pretrained for a few seconds on the synthetic task (cached per test session, or in
    SECONDTRY_TEST_CACHE when set: a folder kept between sessions)."""
    from secondtry.toy import toy_model

    cache = os.environ.get("SECONDTRY_TEST_CACHE") or tmp_path_factory.mktemp("toy-cache")
    return toy_model("tiny", cache_dir=cache)
