"""secondtry run | demo | eval | report | compare | validate | ls"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Turn a model's correct second tries into weights, round after round.")

OVERRIDES = typer.Argument(None, help="dotted overrides, e.g. training.steps=100 model.path=/models/x")


def _fail(message: str, code: int = 2) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def _guard(fn: Callable[[], None]) -> None:
    """Known failures become one clear message and exit code 2; nothing half-written stays behind."""
    from .backends.hf import ModelLoadError
    from .config import ConfigError
    from .store import RunDirError
    from .tasks import TaskDataError

    try:
        fn()
    except (ConfigError, TaskDataError, ModelLoadError, RunDirError) as e:
        _fail(str(e).replace("[", "\\["))
    except KeyboardInterrupt:
        _fail("interrupted; run the same command again to resume", 130)


def _config(path: Path, overrides: Optional[List[str]]):
    from .config import load_config

    return load_config(path, overrides or [])


def _resolve_model(cfg, log):
    """`model.path: toy:NAME` names a model secondtry pretrains here (and caches)."""
    if not cfg.model.path.startswith("toy:"):
        return cfg
    from .config import ConfigError
    from .toy import RECIPES, toy_model

    name = cfg.model.path.removeprefix("toy:")
    if name not in RECIPES:
        raise ConfigError(f"model.path: unknown toy model {name!r}; choose toy:{' or toy:'.join(RECIPES)}")
    path = toy_model(name, log=log)
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"path": str(path)})})


def _run(cfg, allow_change: bool, eval_only: bool = False, tables: bool = True) -> Path:
    from .log import RichLog
    from .loop import run

    log = RichLog()
    _quiet_libraries()
    cfg = _resolve_model(cfg, log)
    log.info(f"run directory: {cfg.run_path}")
    run(cfg, log, allow_change=allow_change, eval_only=eval_only)
    _report(cfg.run_path, tables)
    log.info(f"records, models and report: {cfg.run_path}")
    return cfg.run_path


def _report(run_dir: Path, tables: bool = True) -> None:
    """report/summary.md, and the tables in the terminal."""
    from .report import markdown, print_tables
    from .store import write_text

    write_text(run_dir / "report" / "summary.md", markdown(run_dir))
    if tables:
        print_tables(run_dir)


def _quiet_libraries() -> None:
    """Our progress bars replace the libraries' own (weight loading, dataset mapping)."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def _seeded(cfg, seeds: int):
    """The config once per seed (seed, seed+1, ...), named <name>-seed<N> when there are several."""
    if seeds == 1:
        return [cfg]
    return [cfg.model_copy(update={"seed": cfg.seed + i, "name": f"{cfg.name}-seed{cfg.seed + i}"})
            for i in range(seeds)]


def _compare(runs: list[Path]) -> None:
    from .report import comparison_markdown, print_comparison
    from .store import write_text

    print_comparison(runs)
    out = runs[0].parent / "comparison.md"
    write_text(out, comparison_markdown(runs))
    print(f"comparison: {out}")


@app.command()
def run(config: Path = typer.Argument(..., help="experiment YAML"), overrides: Optional[List[str]] = OVERRIDES,
        seeds: int = typer.Option(1, "--seeds", min=1, help="run seeds seed, seed+1, ... and compare them"),
        allow_change: bool = typer.Option(False, "--allow-change",
                                          help="resume with a changed config; stages it touches run again")) -> None:
    """Run (or resume) the experiment a config describes."""
    def go() -> None:
        runs = [_run(cfg, allow_change, tables=seeds == 1) for cfg in _seeded(_config(config, overrides), seeds)]
        if len(runs) > 1:
            _compare(runs)

    _guard(go)


@app.command(name="eval")
def eval_(config: Path = typer.Argument(..., help="experiment YAML"), overrides: Optional[List[str]] = OVERRIDES,
          allow_change: bool = typer.Option(False, "--allow-change")) -> None:
    """Evaluate the config's model only (round 0): pass@1, pass@k, pass@N with retries, the gap."""
    _guard(lambda: _run(_config(config, overrides), allow_change, eval_only=True))


@app.command()
def demo(overrides: Optional[List[str]] = OVERRIDES,
         filter_: str = typer.Option("steps", "--filter", help="keep retries whose every step is right (steps), "
                                     "whose final answer is right (answer), or run both and compare"),
         seeds: int = typer.Option(1, "--seeds", min=1, help="run this many seeds and pool them (mean ± CI)"),
         allow_change: bool = typer.Option(False, "--allow-change")) -> None:
    """The retry effect on this CPU: a toy model pretrained here, then the real pipeline."""
    from importlib.resources import files

    if filter_ not in ("steps", "answer", "both"):
        _fail(f"--filter must be steps, answer or both, not {filter_!r}")
    path = Path(str(files("secondtry.toy") / "demo.yaml"))

    def go() -> None:
        runs = []
        for require in (("steps", "answer") if filter_ == "both" else (filter_,)):
            preset = [] if require == "steps" else ["filter.require=answer", "name=demo-answer"]
            for cfg in _seeded(_config(path, preset + (overrides or [])), seeds):
                runs.append(_run(cfg, allow_change, tables=filter_ != "both" and seeds == 1))
        if len(runs) > 1:
            _compare(runs)

    _guard(go)


@app.command()
def compare(runs: List[Path] = typer.Argument(..., help="run directories; <name>-seed<N> runs pool as seeds")) -> None:
    """One table across runs: each condition's gain from its base model per round, with 95% CIs."""
    _guard(lambda: _compare(runs))


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run directory, e.g. runs/demo")) -> None:
    """Print the round and gap tables of a run and write report/summary.md."""
    _guard(lambda: _report(run_dir))


@app.command()
def validate(config: Path = typer.Argument(..., help="experiment YAML"), overrides: Optional[List[str]] = OVERRIDES,
             data: bool = typer.Option(True, "--data/--no-data", help="also load the task data")) -> None:
    """Check a config (keys, types, names) and, with --data, that its task data loads."""
    def go() -> None:
        from .log import Log
        from .loop import check_names, load_problems

        cfg = _config(config, overrides)
        check_names(cfg)
        if data:
            train, test = load_problems(cfg, Log())
            print(f"data: {len(train)} training and {len(test)} test problems")
        print(f"{config}: ok")

    _guard(go)


@app.command(name="ls")
def ls() -> None:
    """List tasks, verifiers, conditions, backends and stopping policies."""
    from rich.console import Console
    from rich.table import Table

    from .backends import BACKENDS
    from .conditions import CONDITIONS
    from .stopping import STOPPING
    from .tasks import TASKS
    from .verifiers import VERIFIERS

    table = Table(title="secondtry extension points", show_lines=False)
    for col in ("kind", "name", "what it does"):
        table.add_column(col)
    for kind, registry in (("task", TASKS), ("verifier", VERIFIERS), ("condition", CONDITIONS),
                           ("backend", BACKENDS), ("stopping", STOPPING)):
        for name, obj in registry.items():
            doc = (obj.__doc__ or sys.modules[obj.__module__].__doc__ or "").strip().splitlines()[0]
            table.add_row(kind, name, doc)
    Console().print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
