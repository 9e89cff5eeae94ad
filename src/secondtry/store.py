"""The run directory: the interface between stages.

    runs/<name>/config.yaml, manifest.json, round_k/{attempts,sft,eval,eval_attempts}.jsonl,
    round_k/model/, round_k/round.json

Every write is atomic (temp file + fsync + rename). `manifest.json` records, per stage, a
hash of its inputs and of its outputs; `stage()` skips a stage whose inputs hash to the
recorded value and whose outputs are still intact, so a killed run resumes where it stopped.
A long stage keeps its finished pieces (generation chunks, trainer checkpoints) in
`round_k/.partial/<stage>/` while it runs (`Partial`), so a killed stage resumes from its last
piece; the folder is never an output and goes once the manifest records the stage.
One process at a time: a lock file refuses a second run on the same directory.

`crash_point(name)` marks the places a fault-injection test may kill the process
(SECONDTRY_KILL_AT=name); SECONDTRY_TRACE=file lists every place reached.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import hashlib
import io
import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TextIO

from . import distributed
from .config import Config, dump_config


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked (locked, or run with another config)."""


_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Fault injection: SECONDTRY_KILL_AT=NAME (or NAME#N: its N-th visit) SIGKILLs this process here.

    SECONDTRY_TRACE=FILE appends every point reached to FILE (the tests pick kill points from it).
    """
    trace = os.environ.get("SECONDTRY_TRACE")
    if trace:
        with open(trace, "a", encoding="utf-8") as f:
            f.write(name + "\n")
    target = os.environ.get("SECONDTRY_KILL_AT")
    if not target:
        return
    _hits[name] = _hits.get(name, 0) + 1
    want, _, nth = target.partition("#")
    if want == name and _hits[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_open(path: Path) -> Iterator[TextIO]:
    """A file that appears whole at `path` when the block ends, or not at all.

    With several processes (distributed.py) only rank 0 writes; the others' writes go nowhere.
    """
    if not distributed.is_main():
        yield io.StringIO()
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        crash_point("write:" + "/".join(path.parts[-2:]))  # written, not yet in place: a kill leaves a stray .tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; the result gets a plain file's mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_text(path: Path, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    with atomic_open(path) as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def hash_data(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fsync_tree(path: Path) -> None:
    """Flush a folder's files and the folder itself to disk (before marking it complete)."""
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_dir(path)


CARD = "README.md"  # a model folder's card: rewritten once the round is evaluated, not part of the model


def hash_path(path: Path) -> str:
    """Content hash of a file, or of a folder's files (names and contents; a top-level README.md,
    the model card, is left out)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and p != path / CARD)
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


class RunStore:
    """A run directory opened by one process."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.manifest_path = self.root / "manifest.json"
        self._lock_fd: int | None = None
        self.skipped: list[str] = []
        self.partial: Partial | None = None  # the running stage's finished pieces

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, cfg: Config, allow_change: bool = False) -> "RunStore":
        """Lock the run directory, check the config against the one it was run with, write it.

        With several processes rank 0 does this and holds the lock; the others wait for it.
        """
        store = cls(cfg.run_path)
        distributed.from_main(lambda: store._open(cfg, allow_change))
        return store

    def _open(self, cfg: Config, allow_change: bool) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock()
        self._remove_strays()
        text = dump_config(cfg)
        saved = self.root / "config.yaml"
        if saved.exists() and saved.read_text(encoding="utf-8") != text and not allow_change:
            diff = "".join(difflib.unified_diff(saved.read_text(encoding="utf-8").splitlines(True),
                                                text.splitlines(True), "config.yaml (as run)", "config (now)"))
            self.close()
            raise RunDirError(f"{self.root} was run with another config; resume with the same config, "
                              f"pass --allow-change to rerun the stages the change touches, or pick a new "
                              f"name=...\n{diff}")
        write_text(saved, text)

    def _lock(self) -> None:
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirError(f"{self.root} is in use by another secondtry process; wait for it or "
                              f"pick another run name") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _remove_strays(self) -> None:
        """Temp files and staging folders a killed process left (we hold the lock: nobody is writing them)."""
        for p in list(self.root.rglob(".*.tmp")) + list(self.root.glob("round_*/.train-*")):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)

    def close(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- paths and records ---------------------------------------------------------------------
    def path(self, round_: int, name: str) -> Path:
        return self.root / f"round_{round_}" / name

    def manifest(self) -> dict[str, Any]:
        return read_json(self.manifest_path) if self.manifest_path.exists() else {"stages": {}}

    def output_hash(self, stage: str) -> str | None:
        entry = self.manifest()["stages"].get(stage)
        return entry["outputs_hash"] if entry else None

    # -- stages --------------------------------------------------------------------------------
    def stage(self, name: str, inputs: dict[str, Any], outputs: list[Path],
              run: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
        """Run `run` unless this stage is done with the same inputs and intact outputs.

        `run` writes `outputs` (atomically) and may return stage info (wall time is added);
        the info is kept in the manifest and returned, also when the stage is skipped
        (skipped stages are listed in `self.skipped`). While `run` runs, `self.partial` holds
        the stage's finished pieces from earlier, killed runs with the same inputs.
        """
        inputs_hash = hash_data(inputs)
        partial_dir = self.root / Path(name).parent / ".partial" / Path(name).name
        done = distributed.from_main(lambda: self._finished(name, inputs_hash, outputs, partial_dir))
        if done is not None:
            self.skipped.append(name)
            return done
        self.partial = Partial(partial_dir, name, inputs_hash)
        start = time.perf_counter()
        try:
            info = dict(run() or {})  # on every rank: the stages gather their records themselves
        finally:
            self.partial = None
        info["wall_s"] = round(time.perf_counter() - start, 3)
        return distributed.from_main(lambda: self._record(name, inputs_hash, outputs, partial_dir, info))

    def _finished(self, name: str, inputs_hash: str, outputs: list[Path], partial_dir: Path) -> dict[str, Any] | None:
        """The recorded info if the stage is done with these inputs and intact outputs; else clear its
        stale outputs and return None."""
        entry = self.manifest()["stages"].get(name)
        if entry and entry["inputs_hash"] == inputs_hash and all(p.exists() for p in outputs) \
                and self._outputs_hash(outputs) == entry["outputs_hash"]:
            _remove_partial(partial_dir)  # left if the last run died right after recording
            return entry["info"]
        for p in outputs:  # stale outputs of an earlier, different or unfinished run of this stage
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        Partial(partial_dir, name, inputs_hash)  # throws away pieces made with other inputs
        return None

    def _record(self, name: str, inputs_hash: str, outputs: list[Path], partial_dir: Path,
                info: dict[str, Any]) -> dict[str, Any]:
        missing = [str(p) for p in outputs if not p.exists()]
        if missing:
            raise RuntimeError(f"stage {name} finished without writing {missing}")
        crash_point(f"{name}:outputs-written")
        manifest = self.manifest()
        manifest["stages"][name] = {"inputs_hash": inputs_hash, "outputs_hash": self._outputs_hash(outputs),
                                    "outputs": [str(p.relative_to(self.root)) for p in outputs],
                                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "info": info}
        write_json(self.manifest_path, manifest)
        crash_point(f"{name}:recorded")
        _remove_partial(partial_dir)
        return info

    @staticmethod
    def _outputs_hash(outputs: list[Path]) -> str:
        return hash_data([hash_path(p) for p in outputs])


def _remove_partial(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()  # .partial/ itself, once no stage of the round has pieces left


class Partial:
    """A running stage's finished pieces in `round_k/.partial/<stage>/`, kept across kills.

    The folder is bound to the stage's inputs hash: pieces made with other inputs are thrown
    away when the stage starts. Chunk files appear whole (atomic writes) or not at all; a
    trainer keeps its checkpoints in `folder`. The folder is made on first use.
    """

    def __init__(self, folder: Path, stage: str, inputs_hash: str) -> None:
        self._folder, self.stage, self.inputs_hash = folder, stage, inputs_hash
        marker = folder / "inputs_hash"
        if distributed.is_main() and folder.exists() and not (
                marker.is_file() and marker.read_text(encoding="utf-8") == inputs_hash):
            shutil.rmtree(folder)  # pieces of a run with other inputs, or of one killed before it wrote the hash

    @property
    def folder(self) -> Path:
        if distributed.is_main() and not (self._folder / "inputs_hash").is_file():
            self._folder.mkdir(parents=True, exist_ok=True)
            write_text(self._folder / "inputs_hash", self.inputs_hash)
        return self._folder

    def _chunk_path(self, i: int) -> Path:
        return self._folder / f"chunk-{i:05d}.jsonl"

    def done(self, i: int) -> bool:
        return self._chunk_path(i).is_file()

    def chunk(self, i: int) -> list[dict[str, Any]] | None:
        """The records of chunk `i` if an earlier run finished it, else None."""
        path = self._chunk_path(i)
        return read_jsonl(path) if path.is_file() else None

    def write_chunk(self, i: int, records: list[dict[str, Any]]) -> None:
        write_jsonl(self.folder / self._chunk_path(i).name, records)
        crash_point(f"{self.stage}:chunk{i}:saved")


def iter_rounds(root: Path) -> Iterator[tuple[int, Path]]:
    """(k, round_k folder) in order."""
    found = []
    for p in Path(root).glob("round_*"):
        suffix = p.name.removeprefix("round_")
        if p.is_dir() and suffix.isdigit():
            found.append((int(suffix), p))
    return iter(sorted(found))
