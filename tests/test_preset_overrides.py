"""Each preset's overrides make a valid config and change exactly what they say (no run needed; the
end-to-end runs are in test_presets.py)."""

import re
from pathlib import Path

import pytest

from secondtry.conditions import PRIVILEGED
from secondtry.config import load_config, parse_overrides
from secondtry.loop import check_names
from secondtry.presets import PRESETS

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny-cpu.yaml"
# what defines a condition (presets.py): never the task, model, sampling or training budget
CONDITION_KEYS = re.compile(
    r"^(conditions|filter|stopping)\.\w+$|^training\.(between_rounds|steps_growth|improve_steps)$"
)
WORDS = {"one": 1, "two": 2, "three": 3, "four": 4}


def flat(data, prefix=""):
    out = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def overridden(preset):
    """The preset's overrides as {dotted key: value read as YAML}."""

    def walk(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from walk(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value.value

    return dict(walk(parse_overrides(preset["overrides"])))


@pytest.fixture(scope="module")
def base():
    return flat(load_config(CONFIG).model_dump(mode="json"))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_presets_overrides_change_exactly_the_keys_they_name(name, base):
    preset = PRESETS[name]
    cfg = load_config(CONFIG, list(preset["overrides"]))
    check_names(cfg)
    after = flat(cfg.model_dump(mode="json"))
    wanted = overridden(preset)
    assert wanted, f"{name} sets nothing"
    for key, value in wanted.items():
        assert key in after, f"{name}: {key} is not a config key"
        assert after[key] == value, f"{name}: {key} is {after[key]!r}, the preset says {value!r}"
    changed = {k for k in after if after[k] != base.get(k)}
    assert changed <= set(wanted), f"{name} also changed {sorted(changed - set(wanted))}"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_preset_sets_only_what_defines_its_condition(name):
    outside = [key for key in overridden(PRESETS[name]) if not CONDITION_KEYS.match(key)]
    assert not outside, f"{name} sets {outside}: task, model, sampling and training budget stay the config's"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_presets_description_agrees_with_its_overrides(name):
    preset = PRESETS[name]
    about, cfg = str(preset["about"]), load_config(CONFIG, list(preset["overrides"]))
    said = re.search(r"\b(\d+|one|two|three|four) rounds?\b", about) or re.search(r"(\d+) rounds", name)
    rounds = int(WORDS.get(said.group(1), said.group(1))) if said else 1  # no count said: one round
    assert cfg.stopping.max_rounds == rounds and cfg.stopping.policies == ["max_rounds"], about
    assert ("gold answer" in about) == (cfg.conditions.retry in PRIVILEGED), about
    if cfg.conditions.retry in PRIVILEGED:  # a retry that saw the gold is never trained on the hint
        assert cfg.filter.hint_leaks == "drop" and cfg.filter.retry_example == "problem"
    samples = re.search(r"(\d+) (?:fresh )?samples", about)
    if samples and cfg.conditions.retries == 0:  # ReST: K first attempts
        assert cfg.conditions.samples == int(samples.group(1))
    elif samples:  # resampling: K samples at the retry turn
        assert cfg.conditions.retry_samples == int(samples.group(1))
    cap = re.search(r"at most (\d+)", about)
    if cap:
        assert cfg.filter.max_per_problem == int(cap.group(1))


def test_presets_differ_from_each_other():
    seen = {}
    for name, preset in PRESETS.items():
        key = tuple(sorted(preset["overrides"]))
        assert key not in seen, f"{name} and {seen.get(key)} are the same condition"
        seen[key] = name
