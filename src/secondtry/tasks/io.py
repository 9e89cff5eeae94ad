"""Reading task rows from a local JSONL file, a JSON array file or a `datasets` hub id, with errors that say where."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

from ..config import TaskConfig
from ..types import Problem


class TaskDataError(ValueError):
    """Bad task data. The message names the file and line (or hub row) and the field."""


class Problems(list):
    """A task's problems, plus the rows left out under `on_bad_row: skip` (count and first reasons)."""

    skipped: int = 0
    skip_reasons: list[str]


def read_rows(cfg: TaskConfig) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (where, row): `where` is `file:line` for JSONL files, `file[i]` for a `.json` file holding
    an array of objects, `id[split]#i` for `datasets` rows (a hub id, or a local dataset folder)."""
    if not cfg.path:
        raise TaskDataError(f"task {cfg.name}: no path given; set {cfg.name} task `path` to a JSONL file or hub id")
    path = Path(cfg.path).expanduser()
    if path.is_file() and path.suffix == ".json" and _starts_array(path):
        yield from _read_json_array(path)
    elif path.is_file():
        yield from _read_jsonl(path)
    elif path.is_dir():  # a dataset folder (parquet, jsonl, csv files): read by `datasets`, like a hub id
        yield from _read_hub(cfg)
    elif looks_local(cfg.path):
        raise TaskDataError(f"task data not found: {cfg.path} (a local file, or a hub id like owner/name)")
    else:
        yield from _read_hub(cfg)


def looks_local(path: str) -> bool:
    """A path that cannot be a hub id: starts like a path or ends like a data file."""
    return path.startswith((".", "/", "~")) or Path(path).suffix in {".jsonl", ".json", ".gz", ".parquet", ".csv"}


def _read_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    opener: Callable[..., Any] = open
    if path.suffix == ".gz":
        import gzip
        opener = gzip.open
    with opener(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            where = f"{path}:{lineno}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise TaskDataError(f"{where}: not UTF-8 ({e.reason} at byte {e.start}); re-encode the file") from None
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as e:
                raise TaskDataError(f"{where}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise TaskDataError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, row


def _starts_array(path: Path) -> bool:
    """A `.json` file whose first non-blank character is `[` (else it is read as JSON Lines)."""
    with open(path, "rb") as f:
        return f.read(4096).lstrip()[:1] == b"["


def _read_json_array(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        items = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise TaskDataError(f"{path}: not UTF-8 ({e.reason} at byte {e.start}); re-encode the file") from None
    except json.JSONDecodeError as e:
        raise TaskDataError(f"{path}:{e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
    for i, row in enumerate(items):
        if not isinstance(row, dict):
            raise TaskDataError(f"{path}[{i}]: expected a JSON object, got {type(row).__name__}")
        yield f"{path}[{i}]", row


def _read_hub(cfg: TaskConfig) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        raise TaskDataError(f"{cfg.path}: reading hub datasets needs `pip install datasets`") from None
    try:
        ds = datasets.load_dataset(cfg.path, cfg.subset, split=cfg.split)
    except Exception as e:
        raise TaskDataError(f"{cfg.path}: could not load split {cfg.split!r} with `datasets` "
                            f"({type(e).__name__}: {str(e)[:200]}); offline? pass a local JSONL path") from None
    for i, row in enumerate(ds):
        yield f"{cfg.path}[{cfg.split}]#{i}", dict(row)


def text_field(row: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    """The string value of `key`, or a TaskDataError naming the row and field."""
    if key not in row or row[key] is None:
        if required:
            raise TaskDataError(f"{where}: missing field {key!r} (fields present: {', '.join(row) or 'none'})")
        return ""
    value = row[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise TaskDataError(f"{where}: field {key!r} should be text, got {type(value).__name__}")
    if required and not value.strip():
        raise TaskDataError(f"{where}: field {key!r} is empty")
    return value


def build_problems(cfg: TaskConfig, seed: int, make: Callable[[str, dict[str, Any], int], Problem]) -> Problems:
    """Turn rows into Problems with `make(where, row, index)`; check ids are unique; shuffle/limit."""
    import random

    if cfg.options:
        raise TaskDataError(f"task {cfg.name}: takes no options (got {', '.join(cfg.options)}); "
                            f"only the synthetic task has options")
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    skipped: list[str] = []
    for index, (where, row) in enumerate(read_rows(cfg)):
        try:
            problem = make(where, row, index)
            if problem.id in seen:
                raise TaskDataError(f"{where}: duplicate id {problem.id!r} (first seen at {seen[problem.id]}); "
                                    f"give each row its own id")
        except TaskDataError as e:
            if cfg.on_bad_row == "error":
                raise TaskDataError(f"{e} (set on_bad_row: skip on this task to skip such rows)") from None
            skipped.append(str(e))  # a duplicate keeps its first row
            continue
        seen[problem.id] = where
        problems.append(problem)
    if not problems:
        raise TaskDataError(f"task {cfg.name} ({cfg.path}): no problems loaded")
    if cfg.shuffle:
        random.Random(seed).shuffle(problems)
    out = Problems(problems[: cfg.limit] if cfg.limit else problems)
    out.skipped, out.skip_reasons = len(skipped), skipped[:5]
    return out


def with_instruction(question: str, instruction: str | None) -> str:
    return f"{question}\n{instruction}" if instruction else question
