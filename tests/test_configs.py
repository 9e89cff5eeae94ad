"""Every YAML under configs/ (searched recursively) is a valid config whose names exist, and opens
with the command that runs it."""

from pathlib import Path

import pytest

from secondtry.config import load_config
from secondtry.loop import check_names

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


def test_there_are_configs():
    assert len(CONFIGS) >= 2


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_is_valid(path):
    cfg = load_config(path)
    check_names(cfg)
    first = path.read_text().splitlines()[0]
    assert first.startswith("# secondtry "), f"{path} must open with the command that runs it"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_preset_validates_on_every_config(path):
    from secondtry.presets import PRESETS

    for name, preset in PRESETS.items():
        cfg = load_config(path, list(preset["overrides"]))
        check_names(cfg)  # every name a preset sets exists; every key it sets is a config key
