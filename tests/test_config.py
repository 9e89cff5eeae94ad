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
    cfg = load_config(
        p,
        [
            "training.lr=1e-4",
            "training.steps=7",
            "model.chat_template_kwargs.enable_thinking=false",
            "stopping.policies=[max_rounds]",
        ],
    )
    assert cfg.training.lr == 1e-4 and cfg.training.steps == 7
    assert cfg.model.chat_template_kwargs == {"enable_thinking": False}
    assert cfg.stopping.policies == ["max_rounds"]
    replaced = load_config(p, ["train_task.options={count: 5}", "train_task.options={}", "name=x y"])
    assert (
        replaced.train_task.options == {} and replaced.name == "x y"
    )  # a mapping value replaces, not merges


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
        build_config(
            {
                **bare,
                "evaluation": {"validation": 5, "validation_task": {"name": "mbpp", "split": "validation"}},
            }
        )


def test_the_toy_world_is_set_for_toy_models_only():
    toy = {**BASE, "model": {"path": "toy:tiny", "toy": {"retry_error_scale": 0.5}}}
    assert build_config(toy).model.toy.retry_error_scale == 0.5
    assert build_config({**BASE, "model": {"path": "toy:tiny"}}).model.toy is None  # neutral by default
    with pytest.raises(ConfigError, match="not a toy model"):
        build_config({**BASE, "model": {"path": "some/model", "toy": {"retry_error_scale": 0.5}}})
    with pytest.raises(ConfigError, match="retry_error_scale"):
        build_config({**BASE, "model": {"path": "toy:tiny", "toy": {"retry_error_scale": 0}}})


# -- configs that cannot exhaust the machine ---------------------------------------------------------------


def test_a_negative_seed_is_refused_with_the_bound():
    with pytest.raises(ConfigError) as e:
        build_config({**BASE, "seed": -1})
    assert "seed: Input should be greater than or equal to 0 (got -1)" in str(e.value)


@pytest.mark.parametrize(
    "key",
    [
        "training.steps",
        "sampling.max_new_tokens",
        "backend.batch_size",
        "training.batch_size",
        "verifier.workers",
        "evaluation.samples",
        "conditions.retries",
        "training.grad_accum",
        "stopping.max_rounds",
        "seed",
    ],
)
def test_sizes_beyond_any_practical_run_are_refused_with_the_limit_in_the_error(key, tmp_path):
    import yaml

    p = write(tmp_path, yaml.safe_dump(BASE))
    with pytest.raises(ConfigError) as e:
        load_config(p, [f"{key}={10**12}"])
    msg = " ".join(str(e.value).split())
    assert f"{key}: Input should be less than or equal to " in msg and "(got 1000000000000)" in msg, msg
    limit = int(msg.split("less than or equal to ")[1].split()[0])
    load_config(p, [f"{key}={limit}"]) if key != "training.steps" else None  # the limit itself is allowed


def test_infinite_and_nan_numbers_are_refused(tmp_path):
    import yaml

    p = write(tmp_path, yaml.safe_dump(BASE))
    for value in (".inf", ".nan"):
        with pytest.raises(ConfigError, match="training.lr"):
            load_config(p, [f"training.lr={value}"])


def test_growing_steps_are_bounded_in_the_last_round():
    with pytest.raises(ConfigError, match="stopping.max_rounds"):
        build_config(
            {**BASE, "training": {"steps": 1000, "steps_growth": 10.0}, "stopping": {"max_rounds": 400}}
        )
    build_config({**BASE, "training": {"steps": 500, "steps_growth": 1.2}, "stopping": {"max_rounds": 3}})


def bomb(levels: int, width: int) -> str:
    """A "billion laughs" as one flow sequence: each level is `width` aliases of the one before."""
    return (
        "["
        + ", ".join(
            f"&a{i} [" + ", ".join([f"*a{i - 1}" if i else "lol"] * width) + "]" for i in range(levels)
        )
        + "]"
    )


@pytest.mark.parametrize("field", ["description", "train_task.options"])
def test_an_alias_bomb_is_refused_before_anything_expands_it(tmp_path, field):
    """10^6 strings from 60 written ones: refused, in a short message naming the file and line."""
    import yaml

    key, _, sub = field.partition(".")
    value = bomb(6, 10) if not sub else f"{{name: synthetic, {sub}: {{x: {bomb(6, 10)}}}}}"
    p = write(tmp_path, yaml.safe_dump({k: v for k, v in BASE.items() if k != key}) + f"{key}: {value}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert len(msg) < 600 and "alias" in msg and f"{p}:" in msg, msg[:2000]


def test_an_alias_bomb_in_an_override_is_refused():
    with pytest.raises(ConfigError, match="alias"):
        parse_overrides([f"description={bomb(6, 10)}"])


def test_a_full_size_alias_bomb_is_refused_in_little_memory_and_time(tmp_path):
    """The classic nine-level bomb (387 million strings): refused at once under a 1 GiB address space."""
    import subprocess
    import sys
    import textwrap

    p = write(
        tmp_path,
        "name: x\nmodel: {path: m}\ntrain_task: {name: synthetic}\n"
        f"eval_task: {{name: synthetic, split: test}}\ndescription: {bomb(9, 9)}\n",
    )
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from secondtry.config import ConfigError, load_config
        try:
            load_config({str(p)!r})
        except ConfigError as e:
            print("refused:", str(e)[:300])
            sys.exit(0)
        sys.exit(3)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "alias" in done.stdout, (
        done.returncode,
        done.stdout,
        done.stderr[-2000:],
    )


@pytest.mark.integration
def test_long_values_are_cut_in_error_messages(tmp_path):
    import yaml

    p = write(
        tmp_path,
        yaml.safe_dump(
            {**BASE, "training": {"steps": "x" * 100_000}, "sampling": {"top_k": list(range(50_000))}}
        ),
    )
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert len(msg) < 1000 and "training.steps" in msg and "sampling.top_k" in msg, msg
    assert "100,000 characters" in msg, msg


@pytest.mark.integration
def test_too_deep_nesting_and_giant_numbers_are_config_errors(tmp_path):
    p = write(tmp_path, "name: x\ndescription: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(ConfigError, match="nested"):
        load_config(p)
    p = write(tmp_path, "name: x\ntraining: {steps: " + "9" * 5000 + "}\n")
    with pytest.raises(ConfigError, match="c.yaml"):
        load_config(p)
