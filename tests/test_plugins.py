"""Plugins: registration refuses taken names, a plugin that cannot be imported is named with its config key or
entry point, and the example plugin (examples/secondtry-plugin-example) works end to end: its verifier judges
in verifier pool workers and `secondtry ls` lists it, loaded through the `plugins` key and through its entry
point."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from secondtry import plugins
from secondtry.backends import BACKENDS, register_backend
from secondtry.conditions import CONDITIONS, PRIVILEGED, register_condition
from secondtry.config import GAIN_POLICIES
from secondtry.plugins import PluginError
from secondtry.presets import PRESETS, register_preset
from secondtry.stopping import STOPPING, register_policy
from secondtry.tasks import TASKS, register_task
from secondtry.types import Verdict
from secondtry.verifiers import CHECKS_STEPS, VERIFIERS, register_verifier

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "secondtry-plugin-example"
SRC = ROOT / "src"


def _fn(*args, **kwargs):
    """A registered test function."""
    return Verdict(True)


@pytest.mark.parametrize(
    "register, table, taken, kind, owner",
    [
        (register_task, TASKS, "math", "task", "secondtry.tasks.math.load"),
        (register_verifier, VERIFIERS, "numeric", "verifier", "secondtry.verifiers.numeric.verify"),
        (register_condition, CONDITIONS, "retry", "condition", "secondtry.conditions.retry"),
        (register_backend, BACKENDS, "hf", "backend", "secondtry.backends.hf.HFSampler"),
        (register_policy, STOPPING, "max_rounds", "stopping policy", "secondtry.stopping.max_rounds"),
    ],
)
def test_each_extension_point_registers_and_refuses_a_taken_name(register, table, taken, kind, owner):
    before = dict(table)
    with pytest.raises(
        PluginError,
        match=f"{kind} '{taken}' is already registered \\(by {owner}\\); \\S*_fn must use another name",
    ):
        register(taken, _fn)
    assert table == before  # the shipped entry stays
    try:
        assert register("plugin_test_name")(_fn) is _fn  # the decorator form returns the function
        assert table["plugin_test_name"] is _fn
        with pytest.raises(PluginError, match="already registered"):
            register("plugin_test_name", _fn)
    finally:
        table.pop("plugin_test_name", None)
    with pytest.raises(PluginError, match="must be a non-empty string without spaces"):
        register("two words", _fn)


def test_a_plugin_backend_has_its_section_and_its_options_are_checked_before_a_run(monkeypatch):
    from pydantic import BaseModel, ConfigDict

    from secondtry.backends import OPTIONS, backend_options
    from secondtry.config import ConfigError, PluginBackendConfig, build_config
    from secondtry.loop import check_names

    class EchoOptions(BaseModel):
        model_config = ConfigDict(extra="forbid")
        prefix: str = ""

    monkeypatch.setitem(BACKENDS, "echo_test", _fn)
    monkeypatch.setitem(OPTIONS, "echo_test", EchoOptions)
    base = {
        "name": "t",
        "model": {"path": "m"},
        "train_task": {"name": "synthetic"},
        "verifier": {"name": "synthetic"},
        "eval_task": {"name": "synthetic", "split": "test"},
        "evaluation": {"select_on": "test"},
    }
    cfg = build_config(
        {**base, "backend": {"name": "echo_test", "batch_size": 4, "options": {"prefix": "> "}}}
    )
    assert isinstance(cfg.backend, PluginBackendConfig) and backend_options(cfg) == EchoOptions(prefix="> ")
    check_names(cfg)
    bad = build_config({**base, "backend": {"name": "echo_test", "options": {"prefx": 1}}})
    with pytest.raises(ConfigError, match=r"backend.options.prefx: Extra inputs are not permitted"):
        check_names(bad)
    with pytest.raises(
        ConfigError,
        match=r"backend.endpoints: a key of the openai backend's section; backend.name "
        r"names a plugin's backend, whose own settings go under backend.options",
    ):
        build_config({**base, "backend": {"name": "echo_test", "endpoints": ["http://127.0.0.1:1/v1"]}})


def test_registration_options_reach_the_sets_the_checks_read():
    try:
        register_verifier("plugin_steps", _fn, checks_steps=True)
        register_condition("plugin_hint", _fn, privileged="gold answer")
        register_policy("plugin_gain", _fn, reads_gain=True)
        assert "plugin_steps" in CHECKS_STEPS and PRIVILEGED["plugin_hint"] == "gold answer"
        assert "plugin_gain" in GAIN_POLICIES
    finally:
        VERIFIERS.pop("plugin_steps", None), CHECKS_STEPS.discard("plugin_steps")
        CONDITIONS.pop("plugin_hint", None), PRIVILEGED.pop("plugin_hint", None)
        STOPPING.pop("plugin_gain", None), GAIN_POLICIES.discard("plugin_gain")


def test_a_preset_is_overrides_and_a_line():
    try:
        register_preset("plugin-preset", ["stopping.max_rounds=1"], "one round")
        assert PRESETS["plugin-preset"] == {"about": "one round", "overrides": ["stopping.max_rounds=1"]}
        with pytest.raises(PluginError, match="preset 'plugin-preset' is already registered"):
            register_preset("plugin-preset", ["seed=1"], "again")
    finally:
        PRESETS.pop("plugin-preset", None)
    with pytest.raises(PluginError, match="key=value strings"):
        register_preset("bad-preset", ["stopping.max_rounds"], "no value")


def _module(tmp_path, monkeypatch, name, code):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(code))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_a_plugin_that_cannot_be_imported_is_named_with_its_key(tmp_path, monkeypatch):
    with pytest.raises(
        PluginError,
        match=r"plugins\[0\]: plugin module 'no_such_plugin_here' not found; "
        r"install it or put its folder on PYTHONPATH",
    ):
        plugins.load(["no_such_plugin_here"])
    broken = _module(
        tmp_path,
        monkeypatch,
        "plugin_broken_here",
        """
        import secondtry
        x = 1
        raise RuntimeError("the plugin's own failure")
    """,
    )
    with pytest.raises(
        PluginError,
        match=r"plugins\[1\]: plugin 'plugin_broken_here' failed to import: "
        r"RuntimeError: the plugin's own failure "
        r"\(.*plugin_broken_here.py:4\)",
    ):
        plugins.load(["json", broken])
    missing_dep = _module(tmp_path, monkeypatch, "plugin_missing_dep", "import no_such_dependency_here\n")
    with pytest.raises(
        PluginError,
        match=r"plugin 'plugin_missing_dep' failed to import: "
        r"ModuleNotFoundError: No module named 'no_such_dependency_here'",
    ):
        plugins.load([missing_dep])
    taken = _module(
        tmp_path,
        monkeypatch,
        "plugin_takes_math",
        """
        from secondtry.verifiers import register_verifier

        @register_verifier("math")
        def verify(problem, completion):
            pass
    """,
    )
    with pytest.raises(
        PluginError,
        match=r"plugins\[0\]: plugin 'plugin_takes_math': verifier 'math' is "
        r"already registered \(by secondtry.verifiers.math.verify\); "
        r"plugin_takes_math.verify must use another name",
    ):
        plugins.load([taken], key="plugins")
    with pytest.raises(PluginError, match=r"--plugin\[0\]: 'a-b' is not a module name"):
        plugins.load(["a-b"], key="--plugin")


def test_a_broken_entry_point_names_the_entry_point_and_its_distribution(tmp_path, monkeypatch):
    dist = tmp_path / "broken_dist-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-dist\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[secondtry.plugins]\nbroken = plugin_broken_ep\n")
    _module(tmp_path, monkeypatch, "plugin_broken_ep", "raise ValueError('bad plugin')\n")
    monkeypatch.setattr(plugins, "_entry_points_loaded", None)
    with pytest.raises(
        PluginError,
        match=r"entry point broken = plugin_broken_ep \(group secondtry.plugins, "
        r"distribution broken-dist\) failed to import: "
        r"ValueError: bad plugin"
        r".*fix or uninstall broken-dist",
    ):
        plugins.load()
    (dist / "entry_points.txt").write_text("[secondtry.plugins]\nfine = plugin_fine_ep:setup\n")
    _module(
        tmp_path,
        monkeypatch,
        "plugin_fine_ep",
        """
        CALLS = []
        def setup():
            CALLS.append(1)
    """,
    )
    assert "fine = plugin_fine_ep:setup" in plugins.load()  # an entry point naming a callable is called once
    assert "fine = plugin_fine_ep:setup" in plugins.load()
    assert sys.modules["plugin_fine_ep"].CALLS == [1]


# ---------------------------------------------------------------------------- the example plugin, end to end


def _python(
    code: str, pythonpath: list[Path], cwd: Path | None = None, *args: str
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(map(str, [*pythonpath, SRC])),
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "220",
    }
    return subprocess.run(
        [sys.executable, *(["-c", code] if code else []), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


POOL = """
import os, sys
from secondtry.types import Problem
from secondtry.verifiers.pool import VerifierPool

if __name__ == "__main__":
    plugins = sys.argv[1:]
    items = [(Problem(id="a", prompt="apple", answer="elppa"), "e l p p a\\nAnswer: elppa"),
             (Problem(id="b", prompt="apple", answer="elppa"), "Answer: apple"),
             (Problem(id="c", prompt="apple", answer="elppa"), "no idea")]
    with VerifierPool("answer_line", workers=1, timeout_s=30, plugins=plugins,
                      options={"case_sensitive": True}) as pool:
        verdicts = pool.map(items)
        print([(v.correct, v.reason) for v in verdicts], pool.restarts, pool.crashes)
"""
JUDGED = "[(True, 'answer matches'), (False, 'wrong answer'), (False, 'no Answer: line')] 0 0"


@pytest.mark.integration
def test_the_example_plugins_verifier_judges_in_pool_workers_through_the_plugins_key(tmp_path):
    out = _python(POOL, [EXAMPLE], tmp_path, "secondtry_plugin_example")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == JUDGED
    # without the plugin the name is unknown, in the parent before any worker starts
    out = _python(POOL, [], tmp_path)
    assert out.returncode != 0 and "unknown verifier 'answer_line'" in out.stderr


@pytest.mark.integration
def test_a_plugin_failing_in_a_worker_stops_the_pool_with_the_workers_error(tmp_path):
    (tmp_path / "plugin_parent_only.py").write_text(
        textwrap.dedent("""
        import multiprocessing
        if multiprocessing.current_process().name == "secondtry-verifier":
            raise ImportError("only the parent has what this plugin needs")
        import secondtry_plugin_example
    """)
    )
    out = _python(POOL, [EXAMPLE, tmp_path], tmp_path, "plugin_parent_only")
    assert out.returncode != 0
    assert (
        "verifier worker failed to start: PluginError: plugins[0]: plugin 'plugin_parent_only' failed to "
        "import: ImportError: only the parent has what this plugin needs"
    ) in out.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The example plugin installed (pip, no build isolation) into a site folder of its own."""
    tmp = tmp_path_factory.mktemp("plugin-site")
    source = shutil.copytree(EXAMPLE, tmp / "source")  # the build writes into its source folder
    site = tmp / "site"
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--target",
        str(site),
    ]
    out = subprocess.run([*pip, str(source)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]  # setuptools is in the test extra
    assert list(site.glob("secondtry_plugin_example-*.dist-info/entry_points.txt"))
    return site


@pytest.mark.integration
def test_installed_the_example_plugin_loads_by_its_entry_point_in_parent_and_workers(installed, tmp_path):
    out = _python(POOL, [installed], tmp_path)  # no plugins key: the entry point alone
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == JUDGED
    out = _python("", [installed], tmp_path, "-m", "secondtry.cli", "ls")
    assert out.returncode == 0, out.stderr
    for line in ("reverse_word", "answer_line"):
        rows = out.stdout.splitlines()
        assert any(line in row and "(plugin secondtry_plugin_example)" in row for row in rows)


@pytest.mark.integration
def test_ls_lists_the_example_plugin_given_with_plugin(tmp_path):
    out = _python("", [EXAMPLE], tmp_path, "-m", "secondtry.cli", "ls", "-p", "secondtry_plugin_example")
    assert out.returncode == 0, out.stderr
    rows = out.stdout.splitlines()
    assert any("task" in r and "reverse_word" in r and "Reverse a word" in r for r in rows)
    assert any("verifier" in r and "answer_line" in r for r in rows)
    assert any("answer_line" in r and "case_sensitive" in r and "False" in r for r in rows)  # its options
    out = _python("", [], tmp_path, "-m", "secondtry.cli", "ls")
    assert out.returncode == 0 and "reverse_word" not in out.stdout


def _config(tmp_path: Path, model: Path, plugin: str) -> Path:
    data = yaml.safe_load((ROOT / "configs" / "tiny-cpu.yaml").read_text())
    data.update(name="plugged", run_dir=str(tmp_path / "runs"), plugins=[plugin])
    data["model"]["path"] = str(model)
    data["train_task"] = {"name": "reverse_word", "split": "train", "options": {"count": 8}}
    data["eval_task"] = {"name": "reverse_word", "split": "test", "options": {"count": 4}}
    data["sampling"]["max_new_tokens"] = 24
    data["evaluation"].update(samples=1, retry_n=1, pass_k=[1], bootstrap=100)
    data["verifier"] = {
        "name": "answer_line",
        "workers": 1,
        "options": {"case_sensitive": True},
        "judge_cut_text": True,
    }  # every generation goes to the plugin's verifier
    path = tmp_path / "plugged.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.integration
def test_a_run_uses_the_example_plugins_task_and_verifier(tmp_path, tiny_model):
    """`secondtry eval` with `plugins:` in the config: the plugin's task gives the problems, and its verifier
    judges every generation in a pool worker."""
    config = _config(tmp_path, tiny_model, "secondtry_plugin_example")
    out = _python("", [EXAMPLE], tmp_path, "-m", "secondtry.cli", "validate", str(config))
    assert out.returncode == 0, out.stderr
    assert "data: 8 training problems; 4 test" in out.stdout
    out = _python("", [EXAMPLE], tmp_path, "-m", "secondtry.cli", "eval", str(config))
    assert out.returncode == 0, out.stdout + out.stderr
    root = tmp_path / "runs" / "plugged"
    assert "plugins:\n- secondtry_plugin_example" in (root / "config.yaml").read_text()
    rows = [json.loads(line) for line in (root / "round_0" / "eval_attempts.jsonl").read_text().splitlines()]
    assert {r["problem_id"].split("-")[-1] for r in rows} <= {
        "apple",
        "forest",
        "kettle",
        "pencil",
        "velvet",
        "button",
    }  # the plugin's test split
    reasons = {r["verdict"]["reason"] for r in rows}
    assert reasons and reasons <= {"no Answer: line", "wrong answer", "answer matches"}


@pytest.mark.integration
def test_a_config_naming_a_missing_plugin_is_refused_with_the_key(tmp_path, tiny_model):
    config = _config(tmp_path, tiny_model, "no_such_plugin_here")
    out = _python("", [], tmp_path, "-m", "secondtry.cli", "validate", str(config), "--no-data")
    assert out.returncode == 2
    assert "plugins[0]: plugin module 'no_such_plugin_here' not found" in out.stderr


def test_a_config_without_plugins_dumps_as_before_and_one_with_them_records_them():
    from secondtry.config import dump_config, load_config

    plain = load_config(ROOT / "configs" / "tiny-cpu.yaml")
    assert "plugins" not in dump_config(plain)  # a run made before the key resumes: same config.yaml
    plugged = load_config(ROOT / "configs" / "tiny-cpu.yaml", ["plugins=[json]"])
    assert dump_config(plugged).endswith("plugins:\n- json\n")


def test_a_plugin_policy_that_reads_the_gain_is_checked_after_the_plugin_loaded():
    from secondtry.config import ConfigError, load_config
    from secondtry.loop import check_names

    cfg = load_config(
        ROOT / "configs" / "tiny-cpu.yaml",
        ["evaluation.select_on=last", "stopping.policies=[plugin_gain, max_rounds]"],
    )
    try:
        register_policy("plugin_gain", _fn, reads_gain=True)  # as a config's plugin does, after loading
        with pytest.raises(ConfigError, match="stopping.policies: plugin_gain decide on a round's gain"):
            check_names(cfg)
    finally:
        STOPPING.pop("plugin_gain", None), GAIN_POLICIES.discard("plugin_gain")


def test_the_shipped_samplers_are_samplers():
    from secondtry.backends import Sampler

    for name, factory in BACKENDS.items():
        assert issubclass(factory, Sampler), name  # generate, render, close: what the loop calls
