"""secondtry run | demo | eval | report | compare | validate | verify | import-gguf | bench | ls"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import typer

from .bench.train import DEFAULT_PATHS, PATHS
from .presets import PRESETS

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: no panels, no <bool> beside each flag
    help="Turn a model's correct second tries into weights, round after round.",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"secondtry {version('secondtry')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            print("secondtry (not installed)")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Turn a model's correct second tries into weights, round after round."""


PRESET_HELP = "a condition of the reference report (repeat to run several): " + ", ".join(PRESETS)
OVERRIDES = typer.Argument(None, help="dotted overrides, e.g. training.steps=100 model.path=/models/x")


def _fail(message: str, code: int = 2) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def _guard(fn: Callable[[], None]) -> None:
    """Known failures become one clear message and exit code 2; nothing half-written stays behind."""
    from .backends.openai import EndpointError
    from .backends.servers import ServerError
    from .config import ConfigError
    from .models import ModelLoadError
    from .store import RunDirError, StorageError
    from .tasks import TaskDataError

    try:
        fn()
    except (ConfigError, TaskDataError, ModelLoadError, RunDirError, EndpointError, ServerError) as e:
        _fail(str(e).replace("[", "\\["))
    except OSError as e:  # a write refused outside a run directory (a report, a comparison): one line too
        if not StorageError.covers(e):
            raise
        where = Path(e.filename or Path.cwd())
        _fail(str(StorageError(where, e.errno, where.parent)).replace("[", "\\["))
    except KeyboardInterrupt:
        _fail("interrupted; run the same command again to resume", 130)


def _plugins(modules: list[str] | None = None, key: str = "--plugin") -> None:
    """Import the installed plugins (entry points) and `modules`."""
    from .plugins import load

    load(modules or [], key=key)


PLUGIN = typer.Option(
    None,
    "--plugin",
    "-p",
    help="a plugin module to import first (repeatable; installed ones load by themselves): docs/plugins.md",
)


def _config(path: Path, overrides: list[str] | None):
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
    try:
        path = toy_model(
            name, log=log, retry_error_scale=cfg.model.toy.retry_error_scale if cfg.model.toy else 1.0
        )
    except ValueError as e:  # e.g. a GPU-sized toy model asked for on a CPU
        raise ConfigError(f"model.path: {e}") from None
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"path": str(path)})})


def _run(cfg, allow_change: bool, eval_only: bool = False, tables: bool = True) -> Path:
    """Run (or resume) one config. Under torchrun every rank runs this; rank 0 talks and reports."""
    from . import distributed
    from .log import Log, RichLog
    from .loop import run

    _refuse_if_unrunnable(cfg)
    distributed.init()
    log = RichLog() if distributed.is_main() else Log()
    _machine(log)
    _quiet_libraries()
    cfg = distributed.from_main(lambda: _resolve_model(cfg, log))  # a toy model is pretrained once, by rank 0
    log.info(
        f"run directory: {cfg.run_path}"
        + (f" ({distributed.world_size()} processes)" if distributed.active() else "")
    )
    # the report (still locked); the log said each round's decision as it was made
    report = (lambda: _report(cfg.run_path, tables, decisions=False)) if distributed.is_main() else None
    run(cfg, log, allow_change=allow_change, eval_only=eval_only, then=report)  # the report: still locked
    if distributed.is_main():
        log.info(f"records, models and report: {cfg.run_path}")
    distributed.barrier()
    return cfg.run_path


def _run_jobs(configs, argv: list[list[str]], jobs: int) -> dict[str, str]:
    """`secondtry run --jobs K`: each config in its own process (parallel.py); why each failed one failed."""
    from . import distributed
    from .log import RichLog
    from .parallel import Job, run_jobs, visible_gpus

    if distributed.world_size() > 1:
        _fail("--jobs starts its own processes; under torchrun run without it")
    _refuse_if_unrunnable(configs[0])
    log = RichLog()
    _machine(log)
    _quiet_libraries()
    _resolve_model(configs[0], log)  # a toy model is pretrained once, here, before the runs share it
    return run_jobs(
        [Job(c.name, a, Path(c.run_dir) / f"{c.name}.log") for c, a in zip(configs, argv)],
        jobs,
        log,
        visible_gpus(),
    )


def _report(
    run_dir: Path,
    tables: bool = True,
    sample: int | None = None,
    index: Path | None = None,
    page_md: bool = False,
    decisions: bool = True,
) -> None:
    """report/summary.md, the dashboard (report/index.html, report/plots/), with `page_md` the same page as
    Markdown (report/page.md), and the tables in the terminal (with `decisions`, why each round went on or
    stopped)."""
    from .report import build_dashboard, markdown, print_tables
    from .report.dashboard import SAMPLE, page_markdown
    from .report.runs import load_run
    from .store import write_text

    write_text(run_dir / "report" / "summary.md", markdown(run_dir))
    page = build_dashboard(run_dir, SAMPLE if sample is None else sample, index)
    if page_md:
        write_text(run_dir / "report" / "page.md", page_markdown(load_run(run_dir)))
        print(f"page (Markdown): {run_dir / 'report' / 'page.md'}")
    if tables:
        print_tables(run_dir, decisions=decisions)
    print(f"dashboard: {page}")


_MACHINE_TOLD: list[str] = []


def _machine(log) -> None:
    """Torch's threads from this process's share of the CPUs it may use (machine.py); the choice, and a
    warning when other work keeps those CPUs busy, said once a process."""
    from .machine import set_torch_threads

    threads, busy = set_torch_threads()
    said = f"cpu: {threads.count} torch thread{'s' * (threads.count != 1)} ({threads.why})"
    if said not in _MACHINE_TOLD:
        _MACHINE_TOLD.append(said)
        if busy:
            log.warn(busy)
        log.info(said)


def _quiet_libraries() -> None:
    """Our progress bars replace the libraries' own (weight loading, dataset mapping)."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def _seed_list(seeds: str, base: int) -> list[int]:
    """--seeds: a count (3: the config's seed and the next two) or a list (42,43,44)."""
    try:
        values = [int(x) for x in seeds.split(",") if x.strip()]
    except ValueError:
        _fail(f"--seeds {seeds!r}: give a count (3) or seeds separated by commas (42,43,44)")
    from .config import MAX_SEED

    if len(values) == 1 and "," not in seeds:
        if values[0] < 1:
            _fail(f"--seeds {seeds}: the count must be at least 1")
        if base + values[0] - 1 > MAX_SEED:
            _fail(f"--seeds {seeds}: seeds lie in 0..{MAX_SEED}; {values[0]} seeds from {base} go beyond")
        values = [base + i for i in range(values[0])]
    elif not values or len(set(values)) != len(values):
        _fail(f"--seeds {seeds!r}: a list of distinct seeds, e.g. 42,43,44")
    if not 0 <= min(values) <= max(values) <= MAX_SEED:
        _fail(f"--seeds {seeds}: seeds lie in 0..{MAX_SEED} (got {min(values)}..{max(values)})")
    return values


def _seeded(cfg, seeds: int | str):
    """The config once per seed, named <name>-seed<N> when there are several or a list names them (`--seeds 43,`
    runs one seed of a set, e.g. in its own process, under the name the set pools by)."""
    values = _seed_list(str(seeds), cfg.seed)
    if values == [cfg.seed] and "," not in str(seeds):
        return [cfg]
    return [cfg.model_copy(update={"seed": s, "name": f"{cfg.name}-seed{s}"}) for s in values]


def _compare(runs: list[Path], point=None) -> None:
    from .report import comparison_markdown, print_comparison
    from .report.compare import Point
    from .store import write_text

    point = point or Point()
    print_comparison(runs, point=point)
    out = runs[0].parent / ("comparison.md" if point.kind == "reported" else f"comparison-{point.kind}.md")
    write_text(out, comparison_markdown(runs, point))
    print(f"comparison: {out}")


def _point(at_budget: str | None, at_round: int | None):
    """compare's --at-budget / --round as the point each run is read at."""
    from .report.compare import Point

    if at_budget is not None and at_round is not None:
        _fail("--at-budget and --round each choose the round compared: give one")
    if at_round is not None:
        return Point("round", at_round)
    if at_budget is None:
        return Point()
    if at_budget == "min":
        return Point("budget")
    scale = {"k": 1_000, "m": 1_000_000}.get(at_budget[-1:].lower(), 1)
    try:
        tokens = float(at_budget[:-1] if scale > 1 else at_budget) * scale
    except ValueError:
        tokens = -1
    if tokens < 0:
        _fail(f"--at-budget {at_budget!r}: give generated training tokens (200000, 200k, 1.5M) or min")
    return Point("budget", int(tokens))


@app.command()
def run(
    config: Path = typer.Argument(..., help="experiment YAML"),
    overrides: list[str] | None = OVERRIDES,
    seeds: str = typer.Option(
        "1",
        "--seeds",
        help="a count (3: seed, seed+1, seed+2) or a list (42,43,44); several seeds are compared, pooled",
    ),
    preset: list[str] | None = typer.Option(None, "--preset", help=PRESET_HELP),
    allow_change: bool = typer.Option(
        False, "--allow-change", help="resume with a changed config; stages it touches run again"
    ),
    jobs: int = typer.Option(
        1,
        "--jobs",
        "-j",
        min=1,
        help="runs (presets x seeds) at once, each its own process logging to "
        "<run_dir>/<name>.log: small models leave a GPU mostly idle",
    ),
) -> None:
    """Run (or resume) the experiment a config describes."""

    def go() -> None:
        _plugins()  # presets of installed plugins
        unknown = [p for p in preset or [] if p not in PRESETS]
        if unknown:
            _fail(f"--preset: unknown {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
        configs, argv = [], []  # argv: this command narrowed to one config, for --jobs
        for name in preset or [None]:
            extra = list(PRESETS[name]["overrides"]) if name else []
            cfg = _config(config, extra + list(overrides or []))
            named = cfg.model_copy(update={"name": f"{cfg.name}-{name}"}) if name else cfg
            for c in _seeded(named, seeds):
                configs.append(c)
                argv.append(
                    [
                        "run",
                        str(config),
                        *(["--preset", name] if name else []),
                        *(["--seeds", f"{c.seed},"] if c.name != named.name else []),
                        *(overrides or []),
                        *(["--allow-change"] if allow_change else []),
                    ]
                )
        failed: dict[str, str] = {}
        if jobs > 1 and len(configs) > 1:
            failed = _run_jobs(configs, argv, jobs)
            runs = [c.run_path for c in configs if c.name not in failed]
        else:
            runs = [_run(cfg, allow_change, tables=len(configs) == 1) for cfg in configs]
        if len(runs) > 1:
            _compare(runs)
        if failed:
            _fail(
                f"{len(failed)} of {len(configs)} runs failed (the same command resumes them):\n  "
                + "\n  ".join(f"{name}: {why}" for name, why in failed.items()),
                1,
            )

    _guard(go)


@app.command(name="eval")
def eval_(
    config: Path = typer.Argument(..., help="experiment YAML"),
    overrides: list[str] | None = OVERRIDES,
    allow_change: bool = typer.Option(False, "--allow-change"),
) -> None:
    """Evaluate the config's model only (round 0): pass@1, pass@k, pass@N with retries, the gap."""
    _guard(lambda: _run(_config(config, overrides), allow_change, eval_only=True))


@app.command()
def demo(
    overrides: list[str] | None = OVERRIDES,
    filter_: str = typer.Option(
        "steps",
        "--filter",
        help="keep retries whose every step is right (steps), "
        "whose final answer is right (answer), or run both and compare",
    ),
    seeds: str = typer.Option("1", "--seeds", help="a count or a list (42,43,44); pooled as mean ± CI"),
    preset: list[str] | None = typer.Option(
        None,
        "--preset",
        help="also run these conditions (repeat), e.g. --preset resampling --preset resampling-16",
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="runs at once, each its own process"),
    allow_change: bool = typer.Option(False, "--allow-change"),
) -> None:
    """The retry effect on this CPU: a toy model pretrained here, then the real pipeline (iterative retry, 3
    rounds), in a neutral world where a retry is no better than a first attempt unless training makes it so."""
    from importlib.resources import files

    if filter_ not in ("steps", "answer", "both"):
        _fail(f"--filter must be steps, answer or both, not {filter_!r}")
    _guard(_plugins)
    unknown = [p for p in preset or [] if p not in PRESETS]
    if unknown:
        _fail(f"--preset: unknown {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
    path = Path(str(files("secondtry.toy") / "demo.yaml"))

    def go() -> None:
        configs, argv = [], []
        for require in ("steps", "answer") if filter_ == "both" else (filter_,):
            by_filter = [] if require == "steps" else ["filter.require=answer", "name=demo-answer"]
            for name in [None, *(preset or [])]:
                extra = list(PRESETS[name]["overrides"]) if name else []
                cfg = _config(path, by_filter + extra + list(overrides or []))
                named = cfg.model_copy(update={"name": f"{cfg.name}-{name}"}) if name else cfg
                for c in _seeded(named, seeds):
                    configs.append(c)
                    argv.append(
                        [
                            "run",
                            str(path),
                            *[f"{o}" for o in by_filter + extra + list(overrides or [])],
                            f"name={c.name}",
                            f"seed={c.seed}",
                            *(["--allow-change"] if allow_change else []),
                        ]
                    )
        if jobs > 1 and len(configs) > 1:
            failed = _run_jobs(configs, argv, jobs)
            runs = [c.run_path for c in configs if c.name not in failed]
            if failed:
                _fail(
                    f"{len(failed)} of {len(configs)} runs failed (the same command resumes them):\n  "
                    + "\n  ".join(f"{n}: {why}" for n, why in failed.items()),
                    1,
                )
        else:
            runs = [_run(cfg, allow_change, tables=len(configs) == 1) for cfg in configs]
        if len(runs) > 1:
            _compare(runs)

    _guard(go)


@app.command()
def compare(
    runs: list[Path] = typer.Argument(..., help="run directories; <name>-seed<N> runs pool as seeds"),
    at_budget: str | None = typer.Option(
        None,
        "--at-budget",
        help="compare each run at its last round within this many generated training "
        "tokens (200k, 1.5M), or `min`: the smallest total among the runs",
    ),
    at_round: int | None = typer.Option(
        None, "--round", min=0, help="compare each run at this round (or its last, if it stopped before)"
    ),
) -> None:
    """Conditions side by side: gains from the base (sampled and greedy), what each spent, and each condition
    against the first, tested across seeds. By default each run is read at its reported round."""
    _guard(lambda: _compare(runs, _point(at_budget, at_round)))


@app.command()
def report(
    paths: list[Path] = typer.Argument(..., help="run directories (runs/NAME), or a folder of them (runs/)"),
    serve: bool = typer.Option(False, "--serve", help="then serve the pages on 127.0.0.1 until Ctrl-C"),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="--serve's port (0: any free one)"),
    sample: int | None = typer.Option(
        None, "--sample", min=0, help="transcripts shown per round and set (default 100)"
    ),
    markdown_page: bool = typer.Option(
        False,
        "--markdown",
        help="also write each run's page as Markdown "
        "(RUN/report/page.md): the same sections and figures, for a paper "
        "or a pull request",
    ),
) -> None:
    """Write each run's dashboard and report/summary.md; print the tables of a single run.

    Each run gets RUN/report/index.html (a self-contained page: open it from disk), plots/*.png and
    summary.md. A folder of runs, or several runs, also gets an index of them with the conditions
    compared: FOLDER/index.html (the runs' common parent folder). --serve serves that folder, or the
    one run's directory, on http://127.0.0.1:PORT.
    """

    def go() -> None:
        from .report.dashboard import build_index, find_runs, has_results
        from .report.dashboard import serve as serve_pages

        runs, folder = find_runs(paths)
        index = folder / "index.html" if folder else None
        for run_dir in runs:
            if run_dir in paths or has_results(
                run_dir
            ):  # a folder's runs that have not started are only listed
                _report(run_dir, tables=len(runs) == 1, sample=sample, index=index, page_md=markdown_page)
        if folder:
            print(f"index: {build_index(folder, runs)}")
        if serve:
            root = folder or runs[0]
            try:
                serve_pages(root, index or runs[0] / "report" / "index.html", port)
            except OSError as e:
                _fail(f"--port {port}: cannot serve on 127.0.0.1 ({e.strerror or e})")

    _guard(go)


@app.command()
def validate(
    config: Path = typer.Argument(..., help="experiment YAML"),
    overrides: list[str] | None = OVERRIDES,
    data: bool = typer.Option(True, "--data/--no-data", help="also load the task data in local files"),
) -> None:
    """Check a config: keys, types, names; its local task data (with --data); the form of hub ids (read only
    at run time: no network here); and whether this machine can run it."""

    def go() -> None:
        from .log import Log
        from .loop import check_names, load_problems
        from .tasks import TASKS, TaskDataError
        from .tasks.io import is_hub_id

        cfg = _config(config, overrides)
        check_names(cfg)
        tasks = cfg.tasks()
        hub = set()
        for key, task in tasks:
            try:
                if is_hub_id(task):
                    hub.add(key)
            except TaskDataError as e:  # a missing local file: the error names its public source
                raise TaskDataError(f"{key}: {e}") from None
        for key, task in tasks:
            if key in hub:
                print(
                    f"{key}: hub id {task.path}"
                    + (f", subset {task.subset}" if task.subset else "")
                    + f", split {task.split} (read at run time)"
                )
        if data and not hub:
            train, sets = load_problems(cfg, Log())
            print(
                f"data: {len(train)} training problems; "
                + ", ".join(f"{len(v)} {k}" for k, v in sets.items())
            )
        elif data:
            for key, task in tasks:
                if key not in hub:
                    print(f"{key}: {len(TASKS[task.name](task, cfg.seed))} problems ({task.name})")
        print(f"{config}: ok")
        for problem in _machine_problems(cfg):
            print(f"warning: not on this machine: {problem}")

    _guard(go)


def _refuse_if_unrunnable(cfg) -> None:
    """Stop before anything starts when this machine cannot run the config (`_machine_problems`)."""
    from .config import ConfigError

    problems = _machine_problems(cfg)
    if problems:
        raise ConfigError("this machine cannot run it: " + "; ".join(problems))


def _machine_problems(cfg) -> list[str]:
    """What keeps this machine from running a config: a GPU-sized toy model or a CUDA device, without CUDA."""
    import torch

    if torch.cuda.is_available():
        return []
    problems = []
    if cfg.model.path.startswith("toy:"):
        from .toy.model import GPU_SIZES, RECIPES

        recipe = RECIPES.get(cfg.model.path.removeprefix("toy:"))
        if recipe and recipe.size in GPU_SIZES:
            problems.append(
                f"model.path {cfg.model.path} is pretrained on a CUDA GPU and this machine has "
                f"none (on a CPU use toy:demo or toy:tiny)"
            )
    if cfg.backend.device.startswith("cuda"):
        problems.append(
            f"backend.device {cfg.backend.device} needs a CUDA GPU and this machine has none "
            f"(backend.device=auto uses the CPU)"
        )
    return problems


@app.command(name="data")
def data_(
    source: str = typer.Argument(
        ...,
        metavar="SOURCE",
        help="a hub id (openai/gsm8k), a local data file or dataset folder, "
        "or a config YAML (every hub id it reads)",
    ),
    to: Path = typer.Option(..., "--to", metavar="DIR", help="folder to write <split>.jsonl files into"),
    subset: str | None = typer.Option(
        None, "--subset", metavar="NAME", help="the hub dataset's subset (config name), e.g. main"
    ),
    split: list[str] | None = typer.Option(
        None, "--split", metavar="NAME", help="only this split (repeat for several; default: all)"
    ),
) -> None:
    """Write a task's data once as local JSONL files, for machines without the network: each split of a hub
    dataset as DIR/<split>.jsonl. Given a config, each hub id it reads goes to DIR/<dataset name>/, and the
    overrides that point the config at those files are printed."""

    def go() -> None:
        from .tasks.io import is_hub_id, materialise

        path = Path(source)
        if path.suffix in (".yaml", ".yml") and path.is_file():
            cfg = _config(path, [])
            hub = [(key, task) for key, task in cfg.tasks() if task.path and is_hub_id(task)]
            if not hub:
                print(f"{source}: reads no hub id; nothing to write")
                return
            overrides, done = [], {}
            for key, task in hub:
                where = to / task.path.split("/")[-1]
                if (task.path, task.subset) not in done:
                    done[(task.path, task.subset)] = materialise(task.path, where, task.subset)
                    _say_written(task.path, done[(task.path, task.subset)])
                if task.split not in done[(task.path, task.subset)]:
                    _fail(
                        f"{key}: {task.path} has no split {task.split!r} "
                        f"(it has {', '.join(done[(task.path, task.subset)])})"
                    )
                overrides.append(f"{key}.path={where / f'{task.split}.jsonl'}")
            print(f"offline: secondtry run {source} " + " ".join(overrides))
            return
        _say_written(source, materialise(source, to, subset, list(split or []) or None))

    _guard(go)


def _say_written(source: str, written: dict[str, tuple[Path, int]]) -> None:
    for split, (file, rows) in written.items():
        print(f"{source} [{split}]: {rows:,} rows -> {file}")


@app.command()
def verify(
    file: Path = typer.Argument(..., help="JSONL of rows with a completion and a gold answer (or problem)"),
    verifier: str = typer.Option("math", "--verifier", "-v", help="a verifier from `secondtry ls`"),
    option: list[str] | None = typer.Option(
        None, "--option", "-o", help="verifier option key=value (YAML value), repeatable"
    ),
    extractor: list[str] | None = typer.Option(
        None, "--extractor", "-e", help="answer extractor, repeatable, tried in order"
    ),
    each: bool = typer.Option(False, "--each", help="also score every --extractor on its own"),
    compare: str | None = typer.Option(None, "--compare", help="second grader (math): hendrycks, minerva"),
    task: str | None = typer.Option(None, "--task", help="look problems up by id in this task's data"),
    data: str | None = typer.Option(None, "--data", help="--task data: a file or hub id"),
    split: str = typer.Option("test", "--split", help="--task split"),
    workers: int = typer.Option(2, "--workers", min=0),
    timeout: float = typer.Option(10.0, "--timeout", min=0.1, help="hard limit per verdict, seconds"),
    out: Path | None = typer.Option(None, "--out", help="write one verdict per row (JSONL)"),
    show: int = typer.Option(5, "--show", min=0, help="print this many examples per outcome of interest"),
    label: str | None = typer.Option(
        None, "--label", help="row field with the source's own verdict (true/false): report agreement"
    ),
    plugin: list[str] | None = PLUGIN,
) -> None:
    """Check a JSONL of (problem, completion) rows with a verifier and print a summary."""
    _guard(
        lambda: _verify(
            file,
            verifier,
            option or [],
            extractor or [],
            each,
            compare,
            task,
            data,
            split,
            workers,
            timeout,
            out,
            show,
            label,
            plugin or [],
        )
    )


def _verify(
    file: Path,
    name: str,
    option: list[str],
    extractors: list[str],
    each: bool,
    compare: str | None,
    task: str | None,
    data: str | None,
    split: str,
    workers: int,
    timeout: float,
    out: Path | None,
    show: int,
    label: str | None = None,
    plugins: list[str] | None = None,
) -> None:
    import time

    from rich.console import Console

    from .config import ConfigError, TaskConfig, parse_overrides
    from .report.tables import rich_table
    from .store import write_jsonl
    from .tasks import TASKS
    from .types import to_dict
    from .verifiers import VERIFIERS, check_options
    from .verifiers.files import VerifyInputError, agreement, read_items, read_labels, summarize
    from .verifiers.pool import VerifierPool

    _plugins(plugins)
    if name not in VERIFIERS:
        raise ConfigError(f"--verifier: unknown name {name!r}; choose one of {', '.join(VERIFIERS)}")
    options = {k: getattr(v, "value", v) for k, v in parse_overrides(option).items()}
    if extractors:
        options["extractors"] = extractors
    if compare:
        options["compare"] = compare
    try:
        options = check_options(name, options)
    except ValueError as e:
        raise ConfigError(str(e).replace("verifier.options", "--option")) from None
    problems = None
    if task:
        if task not in TASKS:
            raise ConfigError(f"--task: unknown task {task!r}; choose one of {', '.join(TASKS)}")
        problems = {p.id: p for p in TASKS[task](TaskConfig(name=task, path=data, split=split), 0)}
    try:
        items = read_items(file, problems)
        labels = read_labels(file, label) if label else None
    except VerifyInputError as e:
        raise ConfigError(str(e)) from None
    console = Console()
    runs = [("all", options)] + ([(x, {**options, "extractors": [x]}) for x in extractors] if each else [])
    results = {}
    for which, opts in runs:
        with VerifierPool(name, workers, timeout, options=opts, plugins=plugins or []) as pool:
            t = time.perf_counter()
            with console.status(f"verifying {len(items)} rows ({which})"):
                verdicts = pool.map(items)
            wall = time.perf_counter() - t
            results[which] = (verdicts, summarize(verdicts), wall, pool)
    verdicts, summary, wall, pool = results["all"]
    n = summary["n"]
    rows = [[k, str(summary[k]), f"{summary[k] / n:.1%}"] for k in ("correct", "incorrect", "cannot_judge")]
    if summary["lucky"]:
        rows.append(
            ["lucky (right answer, a wrong step)", str(summary["lucky"]), f"{summary['lucky'] / n:.1%}"]
        )
    console.print(
        rich_table(
            f"{file.name}: {n} rows, verifier {name}", ["outcome", "rows", "share"], rows, console.width
        )
    )
    console.print(
        rich_table(
            "reasons", ["reason", "rows"], [[r, str(c)] for r, c in summary["reasons"][:12]], console.width
        )
    )
    console.print(
        f"{n / wall:,.0f} verdicts/s with {workers} workers; hard timeouts {pool.timeouts}, "
        f"worker crashes {pool.crashes}, max overrun {pool.max_overrun_s:.2f}s",
        highlight=False,
    )
    if summary["compared"]:
        disagree = [(p, v) for (p, _), v in zip(items, verdicts) if v.details and v.details.get("disagree")]
        console.print(
            f"second grader {options.get('compare')}: {summary['disagreements']} disagreements "
            f"in {summary['compared']} compared rows",
            highlight=False,
        )
        for p, v in disagree[:show]:
            console.print(
                f"  {p.id}: gold {p.answer!r}, extracted {v.extracted!r}: verifier {v.correct}, "
                f"{options.get('compare')} {v.details['grader_correct']}",
                highlight=False,
                markup=False,
            )
    if labels is not None:
        agreed = agreement(verdicts, labels)
        arows = [["all", f"{agreed['agree']} / {n}", f"{agreed['rate']:.1%}"]]
        arows += [
            [f"labelled {'right' if lab else 'wrong'}", f"{a} / {k}", f"{a / k:.1%}" if k else "-"]
            for lab, (a, k) in agreed["by_label"].items()
        ]
        console.print(
            rich_table(f"agreement with --label {label}", ["rows", "agree", "share"], arows, console.width)
        )
        for i in agreed["disagree"][:show]:
            p, v = items[i][0], verdicts[i]
            console.print(
                f"  {p.id}: gold {p.answer!r}, extracted {v.extracted!r}: verifier {v.correct}, "
                f"label {labels[i]} ({v.reason})",
                highlight=False,
                markup=False,
            )
    if each:
        erows = [
            [name_, f"{s['rate']:.1%}", str(s["correct"]), str(s["cannot_judge"])]
            for name_, (_, s, _, _) in results.items()
        ]
        console.print(
            rich_table(
                "each extractor on its own",
                ["extractors", "correct", "correct rows", "cannot judge"],
                erows,
                console.width,
            )
        )
    if out:
        write_jsonl(
            out,
            (
                {"id": p.id, "verdict": to_dict(v), **({"label": labels[i]} if labels else {})}
                for i, ((p, _), v) in enumerate(zip(items, verdicts))
            ),
        )
        console.print(f"verdicts: {out}", highlight=False)


@app.command(name="import-gguf")
def import_gguf(
    source: Path = typer.Argument(..., help="a .gguf file, or a wheel/zip or folder holding one"),
    out: Path = typer.Argument(..., help="the model folder to write (new or empty)"),
    file: str = typer.Option(None, "--file", help="which .gguf, when the source holds several"),
    dtype: str = typer.Option("bfloat16", "--dtype", help="bfloat16 | float16 | float32"),
) -> None:
    """Convert a GGUF model (llama.cpp's format) into a transformers model folder to use as model.path."""
    from rich.console import Console

    from .importer import GGUFImportError
    from .importer import import_gguf as convert

    _quiet_libraries()
    console = Console()
    try:
        convert(source, out, file, dtype, log=lambda msg: console.print(msg, highlight=False))
    except GGUFImportError as e:
        _fail(str(e))


bench_app = typer.Typer(
    no_args_is_help=True, help="Benchmarks: print figures, write benchmarks/results/*.json."
)
app.add_typer(bench_app, name="bench")


def _bench_record(
    name: str, workload: dict, figures: dict, out: Path, command_name: str | None = None, gpus: int | None = 1
) -> None:
    """Print a benchmark's figures and write its record, with the command line that made it."""
    import json
    import shlex

    from .bench import write_record

    command_name = command_name or name
    args = sys.argv[3:] if sys.argv[1:3] == ["bench", command_name] else []
    command = f"secondtry bench {command_name} {shlex.join(args)}".strip()
    print(json.dumps(figures, indent=1))
    print(f"record: {write_record(name, command, workload, figures, out, gpus)}")


def _bench_scaling(what: str, params: dict, gpus: int, out: Path) -> None:
    """`bench generate|train --gpus K`: the workload on 1..K GPUs, each a torchrun job; record `<what>-scaling`."""
    import json

    from .bench.scale import run as run_scaling

    try:
        workload, figures = run_scaling(
            what, params, gpus, report=lambda name, f: print(f"[{name}] {json.dumps(f)}", flush=True)
        )
    except ValueError as e:
        _fail(str(e))
    _bench_record(f"{what}-scaling", workload, figures, out, command_name=what, gpus=gpus)


@bench_app.command(name="round")
def bench_round(
    train_data: Path = typer.Option(..., "--train-data", help="MATH-format JSONL of the training split"),
    test_data: Path = typer.Option(..., "--test-data", help="MATH-format JSONL of the test split"),
    config: Path = typer.Option(
        Path("configs/math500-qwen3-1.7b.yaml"),
        "--config",
        help="the round to cost (its model is replaced by random weights)",
    ),
    model: str = typer.Option("qwen3-1.7b", "--model", help="architecture by name (random weights)"),
    train: int = typer.Option(2048, "--train", min=1, help="training problems run (projected to 12,000)"),
    evaluate: int = typer.Option(500, "--eval", min=1, help="test problems run (projected to 500)"),
    steps: int = typer.Option(0, "--steps", min=0, help="SFT steps (0: the config's)"),
    median_new: float = typer.Option(380, "--median-new", min=1, help="median new tokens per request"),
    sigma: float = typer.Option(0.6, "--sigma", min=0, help="log-normal spread of new tokens"),
    pass_rate: float = typer.Option(
        0.38, "--pass-rate", min=0, max=1, help="forced share of correct verdicts (the reference base: 0.38)"
    ),
    work: Path = typer.Option(Path("bench-round"), "--work", help="folder for the model and the run"),
    sets: list[str] = typer.Option([], "--set", help="config override KEY=VALUE (repeatable)"),
    waves: bool = typer.Option(
        False, "--waves", help="generate turn by turn (a call per turn, the path before streams), to compare"
    ),
    out: Path = typer.Option(Path("benchmarks/results"), "--out", help="folder for the JSON record"),
) -> None:
    """The cost of one reference round on this machine, stage by stage, projected to the full round."""
    from .bench.generate import MODELS
    from .bench.round import run as run_bench
    from .log import RichLog

    for name, path in (("--train-data", train_data), ("--test-data", test_data), ("--config", config)):
        if not path.is_file():
            _fail(f"{name} {path}: no such file")
    if model not in MODELS:
        _fail(f"--model: unknown architecture {model!r}; choose one of {', '.join(MODELS)}")
    from .config import ConfigError
    from .tasks.io import TaskDataError

    _quiet_libraries()
    try:
        workload, figures = run_bench(
            config,
            train_data,
            test_data,
            work,
            model,
            train,
            evaluate,
            steps or None,
            median_new,
            sigma,
            pass_rate,
            sets,
            log=RichLog(),
            waves=waves,
        )
    except (ConfigError, TaskDataError) as e:
        _fail(str(e))
    _bench_record("round-waves" if waves else "round", workload, figures, out, command_name="round")


@bench_app.command(name="agree")
def bench_agree(
    model: str = typer.Option(..., "--model", help="a model folder (e.g. import-gguf's output)"),
    data: Path = typer.Option(..., "--data", help="the task's JSONL (e.g. GSM8K's test.jsonl)"),
    task: str = typer.Option("gsm8k", "--task", help="the task that reads --data"),
    n: int = typer.Option(256, "--n", min=1, help="prompts compared"),
    tokens: int = typer.Option(64, "--tokens", min=1, help="new tokens compared per prompt"),
    batch: int = typer.Option(64, "--batch", min=1, help="generate's batch (the reference)"),
    other_batch: int = typer.Option(16, "--other-batch", min=1, help="generate's other batch"),
    dtypes: list[str] = typer.Option(["float32", "bfloat16"], "--dtype", help="repeatable"),
    device: str = typer.Option("auto", "--device"),
    out: Path = typer.Option(Path("benchmarks/results"), "--out", help="folder for the JSON record"),
) -> None:
    """Greedy agreement of the generation engine with transformers `generate` on real weights, per dtype, beside
    generate's agreement with itself at another batch size."""
    import json

    from .bench.agree import run as run_agree
    from .tasks import TASKS

    if not data.is_file():
        _fail(f"--data {data}: no such file")
    if task not in TASKS:
        _fail(f"--task: unknown task {task!r}; choose one of {', '.join(TASKS)}")
    _quiet_libraries()
    workload, figures = run_agree(
        model,
        data,
        task,
        n,
        tokens,
        batch,
        other_batch,
        tuple(dtypes),
        device,
        report=lambda stage, f: print(f"[{stage}] {json.dumps(f)}", flush=True),
    )
    _bench_record("agree", workload, figures, out)


@bench_app.command(name="verify")
def bench_verify(
    data: Path = typer.Option(
        ...,
        "--data",
        help="MATH-format JSONL, e.g. MATH-500's test.jsonl; HumanEval.jsonl[.gz] or mbpp.jsonl with --task",
    ),
    task: str = typer.Option("math", "--task", help="math, or humaneval / mbpp (code)"),
    workers: int = typer.Option(2, "--workers", min=1),
    timeout: float = typer.Option(10.0, "--timeout", help="hard limit per verdict, seconds"),
    fuzz: int = typer.Option(1000, "--fuzz", min=0, help="pathological inputs to run"),
    fuzz_timeout: float = typer.Option(2.0, "--fuzz-timeout", help="hard limit per fuzz verdict"),
    rounds: int = typer.Option(3, "--rounds", min=1, help="code: timed passes"),
    hacks: bool = typer.Option(False, "--hacks", help="code: every reward hack, every problem"),
    old_every: int = typer.Option(
        8, "--old-every", min=0, help="--hacks: the one-process baseline on every Nth problem"
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="code: first N problems"),
    workload: str = typer.Option(
        "short",
        "--workload",
        help="math: short: the solutions as written; long: 1,000-3,000 characters of working first",
    ),
    out: Path = typer.Option(Path("benchmarks/results"), "--out", help="folder for the JSON record"),
) -> None:
    """Math verdicts/s and a fuzz of pathological inputs; with --task humaneval|mbpp, code verdicts/s of the
    two-process verifier against the one-process baseline (or, with --hacks, every reward hack's passes)."""
    from .bench.verify import CODE_TASKS, run_code, run_hacks
    from .bench.verify import run as run_bench

    if not data.is_file():
        what = f"the {task} data file" if task != "math" else "a MATH-format JSONL: problem, solution, answer"
        _fail(f"--data {data}: no such file ({what})")
    if task == "math":
        if workload not in ("short", "long"):
            _fail(f"--workload {workload!r}: choose short or long")
        record, figures = run_bench(data, workers, timeout, fuzz, fuzz_timeout, workload_name=workload)
        _bench_record(
            "verify" if workload == "short" else "verify-long", record, figures, out, command_name="verify"
        )
    elif task not in CODE_TASKS:
        _fail(f"--task {task}: unknown; valid: math, {', '.join(CODE_TASKS)}")
    elif hacks:
        record, figures = run_hacks(task, data, workers, max(timeout, 20.0), old_every, limit)
        _bench_record(f"verify-hacks-{task}", record, figures, out, command_name="verify")
    else:
        record, figures = run_code(task, data, workers, max(timeout, 20.0), rounds, limit)
        _bench_record(f"verify-{task}", record, figures, out, command_name="verify")


@bench_app.command(name="generate")
def bench_generate(
    model: str = typer.Option("qwen3-1.7b", "--model", help="architecture by name (random weights)"),
    requests: int = typer.Option(1024, "--requests", min=1),
    prompt: int = typer.Option(200, "--prompt", min=1, help="prompt tokens per request"),
    new: int = typer.Option(768, "--new", min=1, help="new tokens per request (EOS ignored)"),
    resident: int = typer.Option(512, "--resident", min=1, help="sequences decoded together"),
    variant: str = typer.Option(
        "64-1536", "--variant", help="the second workload's new tokens, drawn uniformly from LO-HI"
    ),
    hf: bool = typer.Option(True, "--hf/--no-hf", help="also time transformers generate paths"),
    gpus: int = typer.Option(
        0, "--gpus", min=0, help="scaling instead: the engine on 1 and on up to K GPUs (torchrun)"
    ),
    out: Path = typer.Option(Path("benchmarks/results"), "--out", help="folder for the JSON record"),
) -> None:
    """Engine vs transformers generate on one GPU: tokens/s, the ratio, and the share of the decode roofline.
    With --gpus K: data-parallel scaling of the engine over 1..K GPUs."""
    import torch

    from .bench.generate import MODELS
    from .bench.generate import run as run_bench

    if model not in MODELS:
        _fail(f"--model: unknown architecture {model!r}; choose one of {', '.join(MODELS)}")
    if not torch.cuda.is_available() and model != "tiny-qwen3":
        _fail(
            "bench generate measures the GPU engine and needs a CUDA device (--model tiny-qwen3 checks it on a CPU)"
        )
    try:
        lo, hi = (int(x) for x in variant.split("-"))
    except ValueError:  # not two integers
        lo = hi = 0
    if not 1 <= lo <= hi:
        _fail(f"--variant {variant!r}: give LO-HI, two token counts with 1 <= LO <= HI, e.g. 64-1536")
    if gpus:
        params = dict(
            model=model,
            requests=requests,
            prompt=prompt,
            new=new,
            resident=resident,
            variant=[lo, hi],
            seed=0,
        )
        _bench_scaling("generate", params, gpus, out)
        return
    workload, figures = run_bench(
        model=model,
        requests=requests,
        prompt=prompt,
        new=new,
        resident=resident,
        hf=hf,
        variant=(lo, hi),
        report=lambda stage, f: print(f"[{stage}] done", flush=True),
    )
    _bench_record("generate", workload, figures, out)


@bench_app.command(name="train")
def bench_train(
    model: str = typer.Option("qwen3-1.7b", "--model", help="architecture by name (random weights)"),
    examples: int = typer.Option(2000, "--examples", min=8),
    min_len: int = typer.Option(300, "--min-len", min=8, help="shortest example, tokens"),
    max_len: int = typer.Option(1200, "--max-len", min=8, help="longest example, tokens"),
    tokens_per_step: int = typer.Option(16384, "--tokens-per-step", min=16),
    pack: int = typer.Option(4096, "--pack", min=16, help="packed row length"),
    steps: int = typer.Option(10, "--steps", min=1, help="timed steps per path"),
    warmup: int = typer.Option(3, "--warmup", min=1, help="untimed steps first"),
    paths: str = typer.Option(
        ",".join(DEFAULT_PATHS), "--paths", help="comma-separated, of: " + ", ".join(PATHS)
    ),
    profile: bool = typer.Option(False, "--profile", help="also print the project trainer's top kernels"),
    gpus: int = typer.Option(
        0, "--gpus", min=0, help="scaling instead: the project's trainer under DDP on 1 and up to K GPUs"
    ),
    out: Path = typer.Option(Path("benchmarks/results"), "--out", help="folder for the JSON record"),
) -> None:
    """LoRA SFT real tokens/s, step time and peak memory: the project's trainer vs TRL packing vs a padded loop."""
    import json

    import torch

    from .bench.generate import MODELS
    from .bench.train import profile as profile_kernels
    from .bench.train import run as run_bench

    known = set(PATHS)
    chosen = tuple(p.strip() for p in paths.split(",") if p.strip())
    if model not in MODELS:
        _fail(f"--model: unknown architecture {model!r}; choose one of {', '.join(MODELS)}")
    if not set(chosen) <= known or not chosen:
        _fail(f"--paths: unknown {sorted(set(chosen) - known)}; choose from {', '.join(sorted(known))}")
    if min_len > max_len:
        _fail(f"--min-len {min_len} is above --max-len {max_len}")
    if max_len > pack:
        _fail(f"--max-len {max_len} does not fit a packed row of --pack {pack} tokens")
    if not torch.cuda.is_available() and model != "tiny-qwen3":
        _fail("bench train measures the GPU and needs a CUDA device (--model tiny-qwen3 checks it on a CPU)")
    if gpus:
        params = dict(
            model=model,
            examples=examples,
            min_len=min_len,
            max_len=max_len,
            prompt_min=min(50, min_len // 4),
            prompt_max=min(250, min_len // 2),
            tokens_per_step=tokens_per_step,
            pack=pack,
            padded_batch=8,
            rank=16,
            warmup=warmup,
            steps=steps,
        )
        _bench_scaling("train", params, gpus, out)
        return
    workload, figures = run_bench(
        model=model,
        examples=examples,
        min_len=min_len,
        max_len=max_len,
        prompt_min=min(50, min_len // 4),
        prompt_max=min(250, min_len // 2),
        tokens_per_step=tokens_per_step,
        pack=pack,
        warmup=warmup,
        steps=steps,
        paths=chosen,
        report=lambda name, f: print(f"[{name}] {json.dumps(f)}", flush=True),
    )
    _bench_record("train", workload, figures, out)
    if profile:
        print(profile_kernels(model, pack=pack, rows_per_step=max(1, tokens_per_step // pack)))


@app.command(name="ls")
def ls(plugin: list[str] | None = PLUGIN) -> None:
    """List tasks, verifiers, conditions, backends, stopping policies and presets (plugins' too)."""
    _guard(lambda: _plugins(plugin))
    from rich.console import Console

    from .backends import BACKENDS
    from .conditions import CONDITIONS
    from .report.tables import rich_table
    from .stopping import STOPPING
    from .tasks import SOURCES, TASKS
    from .verifiers import VERIFIERS, options_of
    from .verifiers.extract import EXTRACTORS

    def first_line(obj) -> str:
        doc = (obj.__doc__ or sys.modules[obj.__module__].__doc__ or "").strip().splitlines()[0]
        return doc if obj.__module__.startswith("secondtry.") else f"{doc} (plugin {obj.__module__})"

    console = Console()
    rows = [
        [kind, name, first_line(obj)]
        for kind, registry in (
            ("task", TASKS),
            ("verifier", VERIFIERS),
            ("condition", CONDITIONS),
            ("backend", BACKENDS),
            ("stopping", STOPPING),
        )
        for name, obj in registry.items()
    ]
    rows += [["preset", name, str(preset["about"])] for name, preset in PRESETS.items()]
    console.print(
        rich_table("secondtry extension points", ["kind", "name", "what it does"], rows, console.width)
    )
    hub = [
        [task, h.id, h.subset or "–", ", ".join(h.splits)]
        for task, sources in SOURCES.items()
        for h in sources
    ]
    console.print(
        rich_table(
            "task data on the hub (a task's path: the id, read at run time; `secondtry "
            "data` writes it as local files)",
            ["task", "hub id", "subset", "splits"],
            hub,
            console.width,
        )
    )
    opts = [[name, opt, repr(param.default)] for name in VERIFIERS for opt, param in options_of(name).items()]
    console.print(
        rich_table(
            "verifier options (verifier.options)", ["verifier", "option", "default"], opts, console.width
        )
    )
    ex = [[name, (fn.__doc__ or "").strip().splitlines()[0]] for name, fn in EXTRACTORS.items()]
    console.print(
        rich_table(
            "answer extractors (verifier.options.extractors; also regex:PATTERN)",
            ["extractor", "what it reads"],
            ex,
            console.width,
        )
    )


def main() -> None:
    if hasattr(sys.stdout, "reconfigure"):  # tables (stdout) and the log (stderr) keep their order in a file
        sys.stdout.reconfigure(line_buffering=True)
    app()


if __name__ == "__main__":
    main()
