"""Reading task rows from a local JSONL file, a JSON array file or a `datasets` hub id, with errors that say where."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import TaskConfig
from ..types import Problem


class TaskDataError(ValueError):
    """Bad task data. The message names the file and line (or hub row) and the field."""


class Problems(list):
    """A task's problems, plus the rows left out under `on_bad_row: skip` (count and first reasons)."""

    skipped: int = 0
    skip_reasons: list[str]


@dataclass(frozen=True)
class HubSource:
    """A public copy of a task's data on the Hugging Face hub."""

    id: str
    subset: str | None
    splits: tuple[str, ...]

    def describe(self) -> str:
        return self.id + (f" (subset {self.subset})" if self.subset else "")


# Each task's public data, named in errors about missing local files and by `secondtry ls`; the shipped
# configs read these hub ids (their headers give the local override).
SOURCES: dict[str, tuple[HubSource, ...]] = {
    "math": (
        HubSource("nlile/hendrycks-MATH-benchmark", None, ("train", "test")),  # train: PRM800K's 12,000
        HubSource("HuggingFaceH4/MATH-500", None, ("test",)),
    ),
    "gsm8k": (HubSource("openai/gsm8k", "main", ("train", "test")),),
    "humaneval": (HubSource("openai/openai_humaneval", None, ("test",)),),
    "mbpp": (HubSource("google-research-datasets/mbpp", "full", ("train", "validation", "test", "prompt")),),
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def read_rows(cfg: TaskConfig) -> Iterator[tuple[str, dict[str, Any] | TaskDataError]]:
    """Yield (where, row): `where` is `file:line` for JSONL files, `file[i]` for a `.json` file holding
    an array of objects, `id[split]#i` for `datasets` rows (a hub id, or a local dataset folder). A JSONL line
    that cannot be read comes as a TaskDataError in place of the row (`build_problems` raises or skips it)."""
    path = Path(source(cfg)).expanduser()
    if path.is_file() and path.suffix == ".json" and _starts_array(path):
        yield from _read_json_array(path)
    elif path.is_file():
        yield from _read_jsonl(path)
    elif path.is_dir():  # a dataset folder (parquet, jsonl, csv files): read by `datasets`, like a hub id
        yield from _read_hub(cfg)
    else:
        yield from _read_hub(cfg)


def source(cfg: TaskConfig) -> str:
    """The task's path, checked for form without reading it or touching the network: an existing local file or
    folder, or a hub id. A local path that does not exist is a TaskDataError naming the public source and the
    override; so is a path that is neither."""
    if not cfg.path:
        raise TaskDataError(
            f"task {cfg.name}: no path given; set the task's `path` to a JSONL file or hub id"
            + _where_to_get(cfg)
        )
    if Path(cfg.path).expanduser().exists():
        return cfg.path
    if looks_local(cfg.path):
        raise TaskDataError(f"task data not found: {cfg.path} (no such file)" + _where_to_get(cfg))
    if not _HUB_ID.match(cfg.path):
        raise TaskDataError(
            f"task data {cfg.path!r} is neither a local file nor a hub id (owner/name)" + _where_to_get(cfg)
        )
    return cfg.path


def is_hub_id(cfg: TaskConfig) -> bool:
    """Whether the task reads a hub id (at run time, with `datasets`) rather than a local file or folder."""
    return bool(cfg.path) and source(cfg) == cfg.path and not Path(cfg.path).expanduser().exists()


def _where_to_get(cfg: TaskConfig) -> str:
    """Where the task's data can be had, for an error about a missing file: its public hub copy with this
    split (the last named, for MATH's test split: MATH-500), read at run time or written once to local
    files."""
    hub = [h for h in SOURCES.get(cfg.name, ()) if cfg.split in h.splits]
    if not hub:
        return ""
    h = hub[-1]
    subset = f" --subset {h.subset}" if h.subset else ""
    return (
        f". Its {cfg.split} split is public on the hub: set the task's path to {h.id}"
        + (f" and its subset to {h.subset}" if h.subset else "")
        + " to read it at run time (needs "
        f"internet once, then cached), or where there is internet run `secondtry data {h.id}{subset} "
        f"--to DIR` and set the path to DIR/{cfg.split}.jsonl"
    )


def looks_local(path: str) -> bool:
    """A path that cannot be a hub id: starts like a path or ends like a data file."""
    return path.startswith((".", "/", "~")) or Path(path).suffix in {
        ".jsonl",
        ".json",
        ".gz",
        ".parquet",
        ".csv",
    }


LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def _read_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any] | TaskDataError]]:
    opener: Callable[..., Any] = open
    if path.suffix == ".gz":
        import gzip

        opener = gzip.open
    with opener(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            where = f"{path}:{lineno}"
            if lineno == 1 and raw.startswith(LFS_POINTER):
                raise TaskDataError(
                    f"{path}: a Git LFS pointer, not the data itself; fetch the file with "
                    f"`git lfs pull` (or download it from where the pointer's repository "
                    f"keeps it)"
                )
            try:
                text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # a byte-order mark may open it
            except UnicodeDecodeError as e:
                yield (
                    where,
                    TaskDataError(f"{where}: not UTF-8 ({e.reason} at byte {e.start}); re-encode the file"),
                )
                continue
            if not text.strip():
                continue
            text = text.rstrip("\r\n")  # an error at its end is at the line's end, not "column 1" after it
            try:
                row = json.loads(text)
            except json.JSONDecodeError as e:
                yield (
                    where,
                    TaskDataError(
                        f"{where}: malformed JSON ({e.msg} {_near(text, e.pos)})" + _one_document_hint(text)
                    ),
                )
                continue
            if not isinstance(row, dict):
                yield (
                    where,
                    TaskDataError(
                        f"{where}: expected a JSON object, got {type(row).__name__}"
                        + _one_document_hint(text)
                    ),
                )
                continue
            yield where, row


def _near(text: str, pos: int, width: int = 40) -> str:
    """Where in the line a parse error is, the text around it marked: at character 12: '{"a": ⟪here⟫x}'."""
    before = text[max(0, pos - width) : pos]
    if pos >= len(text):
        return f"at the end of the line: {before + '⟪end⟫'!r}"
    return f"at character {pos + 1}: {before + '⟪here⟫' + text[pos : pos + width]!r}"


def _one_document_hint(text: str) -> str:
    if text.strip() in ("{", "[", "[{"):
        return ": the file looks like one JSON document spread over lines; JSON Lines needs one object a line"
    return ""


def _starts_array(path: Path) -> bool:
    """A `.json` file whose first non-blank character is `[` (else it is read as JSON Lines)."""
    with open(path, "rb") as f:
        return f.read(4096).lstrip()[:1] == b"["


def _read_json_array(path: Path) -> Iterator[tuple[str, dict[str, Any] | TaskDataError]]:
    try:
        items = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise TaskDataError(f"{path}: not UTF-8 ({e.reason} at byte {e.start}); re-encode the file") from None
    except json.JSONDecodeError as e:
        raise TaskDataError(f"{path}:{e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
    for i, row in enumerate(items):
        if not isinstance(row, dict):
            yield (
                f"{path}[{i}]",
                TaskDataError(f"{path}[{i}]: expected a JSON object, got {type(row).__name__}"),
            )
            continue
        yield f"{path}[{i}]", row


def _read_hub(cfg: TaskConfig) -> Iterator[tuple[str, dict[str, Any] | TaskDataError]]:
    """Rows of a hub dataset (or a local dataset folder): `datasets.load_dataset(path, subset, split)`."""
    import datasets

    try:
        ds = datasets.load_dataset(cfg.path, name=cfg.subset, split=cfg.split)
    except Exception as e:
        subset, flag = (f" subset {cfg.subset!r}", f" --subset {cfg.subset}") if cfg.subset else ("", "")
        raise TaskDataError(
            f"{cfg.path}: could not load{subset} split {cfg.split!r} with `datasets` "
            f"({type(e).__name__}: {str(e)[:200]}); offline? on a machine with internet run "
            f"`secondtry data {cfg.path}{flag} --to DIR`, copy DIR here and set the task's "
            f"path to DIR/{cfg.split}.jsonl"
        ) from None
    for i, row in enumerate(ds):
        yield f"{cfg.path}[{cfg.split}]#{i}", dict(row)


def text_field(row: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    """The string value of `key`, or a TaskDataError naming the row and field."""
    if key not in row or row[key] is None:
        if required:
            raise TaskDataError(
                f"{where}: missing field {key!r} (fields present: {', '.join(row) or 'none'})"
            )
        return ""
    value = row[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise TaskDataError(f"{where}: field {key!r} should be text, got {type(value).__name__}")
    if required and not value.strip():
        raise TaskDataError(f"{where}: field {key!r} is empty")
    return value


def build_problems(
    cfg: TaskConfig, seed: int, make: Callable[[str, dict[str, Any], int], Problem]
) -> Problems:
    """Turn rows into Problems with `make(where, row, index)`; check ids are unique; shuffle/limit."""
    import random

    if cfg.options:
        raise TaskDataError(
            f"task {cfg.name}: takes no options (got {', '.join(cfg.options)}); "
            f"only the synthetic task has options"
        )
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    skipped: list[str] = []
    for index, (where, row) in enumerate(read_rows(cfg)):
        try:
            if isinstance(row, TaskDataError):  # a line that could not be read as a row
                raise row
            problem = make(where, row, index)
            if problem.id in seen:
                raise TaskDataError(
                    f"{where}: duplicate id {problem.id!r} (first seen at {seen[problem.id]}); "
                    f"give each row its own id"
                )
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


def materialise(
    path: str, out_dir: Path, subset: str | None = None, splits: list[str] | None = None
) -> dict[str, tuple[Path, int]]:
    """A task's data written once as local JSONL files, for a machine without the network:
    split -> (file, rows).

    A hub id (or a local dataset folder) is read with `datasets` (every split it has, or `splits`) and
    written as `out_dir/<split>.jsonl`, each row as `datasets` gives it, so the task loaders read the files
    as they read the hub. A local JSONL or JSON-array file is copied row by row to `out_dir/<split>.jsonl`
    (the split named, else the file's stem)."""
    import datasets

    from ..store import atomic_open

    local = Path(path).expanduser()
    tables: dict[str, Iterable[dict[str, Any]]] = {}
    if local.is_file():
        name = (splits or [local.name.split(".")[0]])[0]
        if splits and len(splits) > 1:
            raise TaskDataError(f"{path}: a single file holds one split; name at most one --split")
        tables[name] = _file_rows(path)
    else:
        if not local.exists() and looks_local(path):
            raise TaskDataError(f"{path}: no such file or folder")
        try:
            loaded = (
                {s: datasets.load_dataset(path, name=subset, split=s) for s in splits}
                if splits
                else dict(datasets.load_dataset(path, name=subset))
            )
        except Exception as e:
            raise TaskDataError(
                f"{path}: could not load it with `datasets` ({type(e).__name__}: {str(e)[:300]})"
            ) from None
        tables = {s: (dict(row) for row in ds) for s, ds in loaded.items()}
    written = {}
    for split, rows in tables.items():
        out = Path(out_dir) / f"{split}.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        with atomic_open(out) as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
                n += 1
        written[split] = (out, n)
    return written


def _file_rows(path: str) -> Iterator[dict[str, Any]]:
    """Every row of a local file; the first that cannot be read stops the copy with its error."""
    for _, row in read_rows(TaskConfig(name="jsonl", path=path)):
        if isinstance(row, TaskDataError):
            raise row
        yield row
