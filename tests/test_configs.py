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

    for preset in PRESETS.values():
        cfg = load_config(path, list(preset["overrides"]))
        check_names(cfg)  # every name a preset sets exists; every key it sets is a config key


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_a_config_of_several_rounds_chooses_on_a_validation_split_or_says_test(path):
    """The reported round and the stopping gains never come from the test set unless the file says so."""
    import yaml

    raw = yaml.safe_load(path.read_text()) or {}
    evaluation = raw.get("evaluation") or {}
    cfg = load_config(path)
    if cfg.stopping.max_rounds > 1:
        held = evaluation.get("validation") or evaluation.get("validation_task")
        assert held or evaluation.get("select_on") == "test", (
            f"{path.name}: {cfg.stopping.max_rounds} rounds, no validation split and no explicit select_on: test"
        )
        assert cfg.selection == ("validation" if held else "test")
    from secondtry.presets import PRESETS

    for name in ("iterative-retry-2", "iterative-retry-3"):  # the multi-round presets keep the same rule
        assert load_config(path, list(PRESETS[name]["overrides"])).selection in ("validation", "test")
