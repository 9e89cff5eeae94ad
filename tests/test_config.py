from pathlib import Path

import pytest

from secondtry.config import ConfigError, build_config, dump_config, load_config, parse_overrides

BASE = {
    "name": "t",
    "model": {"path": "some/model"},
    "train_task": {"name": "synthetic", "split": "train"},
    "eval_task": {"name": "synthetic", "split": "test"},
    "evaluation": {"validation": 50},  # several rounds (the default 3) choose on a held-out split
}


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_follow_the_reference_experiment():
    cfg = build_config(BASE)
    assert cfg.conditions.retry_prompt == "Try again carefully."
    assert (cfg.training.rank, cfg.training.lr, cfg.training.steps, cfg.seed) == (16, 2e-5, 500, 42)
    assert cfg.stopping.min_retry_yield == 0.15
    assert cfg.eval_sampling == cfg.sampling


def test_overrides_are_typed_and_nested(tmp_path):
    import yaml

    p = write(tmp_path, yaml.safe_dump(BASE))
    cfg = load_config(p, ["training.lr=1e-4", "training.steps=7", "model.chat_template_kwargs.enable_thinking=false",
                          "stopping.policies=[max_rounds]"])
    assert cfg.training.lr == 1e-4 and cfg.training.steps == 7
    assert cfg.model.chat_template_kwargs == {"enable_thinking": False}
    assert cfg.stopping.policies == ["max_rounds"]
    replaced = load_config(p, ["train_task.options={count: 5}", "train_task.options={}", "name=x y"])
    assert replaced.train_task.options == {} and replaced.name == "x y"  # a mapping value replaces, not merges


def test_unknown_key_names_the_key_and_suggests(tmp_path):
    import yaml

    p = write(tmp_path, yaml.safe_dump({**BASE, "training": {"lrr": 1e-4}}))
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and "training.lrr: unknown key" in msg and "did you mean training.lr" in msg


def test_wrong_type_and_missing_key_are_named(tmp_path):
    import yaml

    data = {k: v for k, v in BASE.items() if k != "eval_task"}
    p = write(tmp_path, yaml.safe_dump({**data, "training": {"lr": "fast"}}))
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "training.lr:" in str(e.value) and "'fast'" in str(e.value)
    assert "eval_task: required" in str(e.value)


def test_cross_field_rule_explains_the_fix():
    with pytest.raises(ConfigError, match="raise evaluation.samples"):
        build_config({**BASE, "evaluation": {"validation": 50, "samples": 2, "pass_k": [1, 4]}})


def test_bad_yaml_names_the_line(tmp_path):
    p = write(tmp_path, "name: x\nmodel: [unclosed\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:\d"):
        load_config(p)


def test_missing_file_and_bad_override(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["training.lr"])


def test_dump_round_trips():
    cfg = build_config(BASE)
    import yaml

    assert build_config(yaml.safe_load(dump_config(cfg))) == cfg


def test_a_run_of_several_rounds_must_say_where_it_chooses():
    bare = {k: v for k, v in BASE.items() if k != "evaluation"}
    with pytest.raises(ConfigError, match="evaluation.select_on") as e:
        build_config(bare)  # three rounds by default, no validation split, nothing said
    assert "evaluation.validation=500" in str(e.value) and "select_on=test" in str(e.value)
    assert build_config({**bare, "evaluation": {"select_on": "test"}}).selection == "test"
    assert build_config({**bare, "stopping": {"max_rounds": 1}}).selection == "last"  # one round: no choice
    assert build_config(BASE).selection == "validation" and build_config(BASE).gains_on == "validation"
    last = {**bare, "evaluation": {"select_on": "last"}}
    with pytest.raises(ConfigError, match="negative_gain"):
        build_config(last)  # the default policies read gains, which `last` would take from the test set
    assert build_config({**last, "stopping": {"policies": ["max_rounds"]}}).gains_on == "test"
    with pytest.raises(ConfigError, match="needs a validation split"):
        build_config({**bare, "evaluation": {"select_on": "validation"}})
    with pytest.raises(ConfigError, match="not both"):
        build_config({**bare, "evaluation": {"validation": 5, "validation_task": {"name": "mbpp", "split": "validation"}}})


def test_the_toy_world_is_set_for_toy_models_only():
    toy = {**BASE, "model": {"path": "toy:tiny", "toy": {"retry_error_scale": 0.5}}}
    assert build_config(toy).model.toy.retry_error_scale == 0.5
    assert build_config({**BASE, "model": {"path": "toy:tiny"}}).model.toy is None  # neutral by default
    with pytest.raises(ConfigError, match="not a toy model"):
        build_config({**BASE, "model": {"path": "some/model", "toy": {"retry_error_scale": 0.5}}})
    with pytest.raises(ConfigError, match="retry_error_scale"):
        build_config({**BASE, "model": {"path": "toy:tiny", "toy": {"retry_error_scale": 0}}})
