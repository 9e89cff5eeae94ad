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

Nothing is trusted on its word. Each piece carries its own integrity record, written
atomically after it and checked before the piece is reused: a chunk its `.sum` (record count
and SHA-256), a trainer checkpoint its `complete` marker (file count and hash), a finished
stage its record in `round_k/.stages/` and its entry in the manifest (output hashes), the
manifest and the stage records a hash of their own content, `config.yaml` its `.config.yaml.sum`.
A damaged piece is made again and the log says which and why; a damaged manifest is recovered
from its backup generation (`manifest.backup.json`) and the stage records, or rebuilt from the
stage records alone. A file system that refuses a write (read-only, full, no permission) ends
the run with one `StorageError` line naming the path and what to do; what was finished stays.

`crash_point(name)` marks the places a fault-injection test may kill the process
(SECONDTRY_KILL_AT=name); SECONDTRY_TRACE=file lists every place reached.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from . import distributed
from .config import Config, dump_config
from .log import Log

JSON = None | bool | int | float | str | list["JSON"] | dict[str, "JSON"]  # a value as JSON holds it
StageInputs = dict[str, JSON]  # what a stage's outputs depend on, hashed into the manifest


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked (locked, or run with another config)."""


# errno -> what happened, what to do about it ({root}: the run directory)
_FS_ERRORS = {
    errno.ENOSPC: (
        "no space left on the device",
        "free space there (df -h {root}; old runs' round_k/model folders are the largest) or move "
        "the run to another disk (run_dir=...)",
    ),
    errno.EDQUOT: (
        "the disk quota is exceeded",
        "free space or raise the quota, or move the run to another disk (run_dir=...)",
    ),
    errno.EROFS: (
        "the file system is read-only",
        "remount it read-write or move the run to a writable disk (run_dir=...)",
    ),
    errno.EACCES: (
        "permission denied",
        "give this user write access (chmod -R u+w {root}) or choose another run_dir=...",
    ),
    errno.EPERM: (
        "operation not permitted",
        "give this user write access (chmod -R u+w {root}) or choose another run_dir=...",
    ),
}


class StorageError(RunDirError):
    """The file system refused a write (read-only, full, no permission): one line, the path and the fix."""

    def __init__(self, path: Path | str, code: int, root: Path) -> None:
        what, fix = _FS_ERRORS[code]
        self.path, self.errno = str(path), code
        super().__init__(
            f"cannot write {path}: {what}; {fix.format(root=root)}, then run the same command "
            f"again: it resumes from the last finished stage, chunk or checkpoint"
        )

    @staticmethod
    def covers(e: OSError) -> bool:
        """Whether `e` is the file system refusing a write (read-only, full, no permission)."""
        return e.errno in _FS_ERRORS


def storage_error(exc: BaseException, root: Path) -> StorageError | None:
    """`exc` as a StorageError if the file system refused a write under `root`, else None.

    An OSError (or one in the exception's chain) with a file system errno names itself; a library's
    own error (torch.save on a full disk raises a RuntimeError naming neither) is recognised by the
    errno's text in its message, or else by a probe: a 1 MiB file written and fsynced in `root`.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if (
            isinstance(e, OSError)
            and e.errno in _FS_ERRORS
            and (
                e.errno not in (errno.EACCES, errno.EPERM)
                or not e.filename
                or Path(os.fsdecode(e.filename)).resolve().is_relative_to(root.resolve())
            )
        ):  # not a model
            return StorageError(e.filename or root, e.errno, root)
        todo += [e.__cause__, e.__context__]
    text = "" if isinstance(exc, OSError) else str(exc)  # an OSError said its errno above
    for code in _FS_ERRORS:
        if os.strerror(code) in text or re.search(rf"\bOs {{ code: {code}\b", text):  # libc's; Rust io
            named = re.search(re.escape(str(root)) + r"[^\s'\"]*", text)
            return StorageError(named.group(0) if named else root, code, root)
    return _probe(root)


def _probe(root: Path) -> StorageError | None:
    """Whether `root` takes a 1 MiB write now (an error naming no errno may have come from a full disk)."""
    folder = root if root.is_dir() else root.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=".probe.", suffix=".tmp", dir=folder)
    except OSError as e:
        return StorageError(folder, e.errno, root) if e.errno in _FS_ERRORS else None
    try:
        block = b"\0" * (1 << 20)
        done = 0
        while done < len(block):
            done += os.write(fd, block[done:])
        os.fsync(fd)
    except OSError as e:
        return StorageError(folder, e.errno, root) if e.errno in _FS_ERRORS else None
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return None


_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Fault injection: SECONDTRY_KILL_AT=NAME (or NAME#N: its N-th visit) SIGKILLs this process here;
    SECONDTRY_STOP_AT=NAME[#N] SIGSTOPs it (a test changes the world, e.g. makes the disk read-only or full,
    then sends SIGCONT).

    SECONDTRY_TRACE=FILE appends every point reached to FILE (the tests pick kill points from it).
    """
    trace = os.environ.get("SECONDTRY_TRACE")
    if trace:
        with open(trace, "a", encoding="utf-8") as f:
            f.write(name + "\n")
    targets = [
        (os.environ.get(var), sig)
        for var, sig in (("SECONDTRY_STOP_AT", signal.SIGSTOP), ("SECONDTRY_KILL_AT", signal.SIGKILL))
    ]
    if not any(target for target, _ in targets):
        return
    _hits[name] = _hits.get(name, 0) + 1
    for target, sig in targets:
        want, _, nth = (target or "").partition("#")
        if want == name and _hits[name] == int(nth or 1):
            os.kill(os.getpid(), sig)


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
        crash_point(
            "write:" + "/".join(path.parts[-2:])
        )  # written, not yet in place: a kill leaves a stray .tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; the result gets a plain file's mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a read-only folder refuses this too; the next open removes it
            Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


OLD_STAGE_NAMES = {"sft": "filter"}  # round_k/<old> in the manifests of earlier releases -> today's name


def renamed_stages(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest with the stages earlier releases named otherwise (round_k/sft: the filter) under today's names,
    so such a run resumes where it stopped."""

    def name(stage: str) -> str:
        folder, _, leaf = stage.rpartition("/")
        return f"{folder}/{OLD_STAGE_NAMES[leaf]}" if folder and leaf in OLD_STAGE_NAMES else stage

    return {**manifest, "stages": {name(k): v for k, v in manifest["stages"].items()}}


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


# -- integrity records ---------------------------------------------------------------------------------


class Damaged(ValueError):
    """A piece that does not match its own integrity record; the message says how."""


def write_checked_json(path: Path, data: dict[str, Any]) -> None:
    """JSON that carries a hash of its own content (`check`), so an edit or a cut is seen on reading."""
    write_json(path, {**data, "check": hash_data(data)})


def read_checked_json(path: Path) -> dict[str, Any]:
    """What `write_checked_json` wrote, or Damaged saying why not (missing, cut, edited)."""
    try:
        data = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise Damaged("missing") from None
    except (ValueError, OSError) as e:
        raise Damaged(f"unreadable ({_short(e)})") from None
    if not isinstance(data, dict):
        raise Damaged("damaged (not a JSON object)")
    if "check" in data and data.pop("check") != hash_data(data):  # a manifest written before checks has none
        raise Damaged("edited or damaged (its content does not match its own hash)")
    return data


def _short(e: BaseException) -> str:
    text = str(e)
    return text if len(text) <= 80 else text[:77] + "..."


def _measure(path: Path, record: Path) -> dict[str, Any]:
    """A file's line count and SHA-256, or a folder's file count and the hash of its files (not `record`)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p != record)
        h = hashlib.sha256()
        for f in files:
            h.update(str(f.relative_to(path)).encode() + b"\0" + file_sha256(f).encode())
        return {"count": len(files), "sha256": h.hexdigest()}
    lines = 0
    h = hashlib.sha256()
    for block in _blocks(path):
        h.update(block)
        lines += block.count(b"\n")
    return {"count": lines, "sha256": h.hexdigest()}


def _blocks(path: Path) -> Iterator[bytes]:
    """A file's bytes, a megabyte at a time."""
    with open(path, "rb") as fh:
        yield from iter(lambda: fh.read(1 << 20), b"")


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in blocks."""
    h = hashlib.sha256()
    for block in _blocks(path):
        h.update(block)
    return h.hexdigest()


def seal_path(path: Path) -> Path:
    """Where a file's integrity record goes: `<name>.sum` beside it."""
    return path.with_name(path.name + ".sum")


def seal(path: Path, record: Path | None = None, **extra: Any) -> None:
    """Write the integrity record of `path` (a file: its lines and SHA-256; a folder: its files and their
    hash) to `record` (default `<path>.sum`), atomically and after the piece itself is on disk.
    Only rank 0 writes (the others' pieces go nowhere: atomic_open)."""
    if not distributed.is_main():
        return
    record = record or seal_path(path)
    write_checked_json(record, {**_measure(path, record), **extra})


def check_seal(path: Path, record: Path | None = None) -> str | None:
    """None if `path` matches its integrity record; else why not (no record, unreadable, cut, edited)."""
    record = record or seal_path(path)
    if not path.exists():
        return "it is missing"
    try:
        want = read_checked_json(record)
    except Damaged as e:
        if str(e) == "missing":
            return "it has no integrity record (a kill before the record was written?)"
        return f"its integrity record is {e}"
    try:
        got = _measure(path, record)
    except OSError as e:
        return f"it cannot be read ({_short(e)})"
    unit = "files" if path.is_dir() else "lines"
    if got["sha256"] != want.get("sha256"):
        return (
            f"its content does not match its record (cut, extended or edited: {got['count']} {unit}, "
            f"the record says {want.get('count')})"
        )
    if got["count"] != want.get("count"):
        return f"it holds {got['count']} {unit}, its record says {want.get('count')}"
    return None


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
    files = (
        [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and p != path / CARD)
    )
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode())
        for block in _blocks(f):
            h.update(block)
    return h.hexdigest()[:16]


class RunStore:
    """A run directory opened by one process."""

    def __init__(self, root: Path, log: Log = Log()) -> None:
        self.root = Path(root)
        self.log = log
        self.manifest_path = self.root / "manifest.json"
        self.backup_path = self.root / "manifest.backup.json"  # the manifest's previous generation
        self._lock_fd: int | None = None
        self.skipped: list[str] = []
        self.partial: Partial | None = None  # the running stage's finished pieces

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, cfg: Config, allow_change: bool = False, log: Log = Log()) -> RunStore:
        """Lock the run directory, check the config against the one it was run with, write it.

        With several processes rank 0 does this and holds the lock; the others wait for it.
        """
        store = cls(cfg.run_path, log)
        distributed.from_main(lambda: store._open(cfg, allow_change))
        return store

    def _open(self, cfg: Config, allow_change: bool) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock()
            self._remove_strays()
            self._check_config(cfg, allow_change)
            manifest = self.manifest()  # a damaged manifest is recovered now, before any stage reads it
            if manifest["stages"]:
                try:
                    _manifest_shape(read_checked_json(self.backup_path))
                except Damaged as e:
                    if self.backup_path.exists():
                        self.log.warn(f"{self.backup_path} is {e}; replaced by a copy of the manifest")
                    write_checked_json(self.backup_path, manifest)
        except BaseException as e:
            self.close()
            err = storage_error(e, self.root) if isinstance(e, OSError) else None
            if err is not None:
                raise err from e
            raise

    def _check_config(self, cfg: Config, allow_change: bool) -> None:
        """Refuse another config than the one the run was made with; a damaged copy of it is restored from its
        record (which holds the text) or, without one, rewritten from this config."""
        text = dump_config(cfg)
        saved, record = self.root / "config.yaml", self.root / ".config.yaml.sum"
        old = saved.read_bytes().decode("utf-8", errors="replace") if saved.exists() else None
        if record.exists():
            try:
                kept = read_checked_json(record)["text"]
                if kept != old:
                    why = check_seal(saved, record) if old is not None else "missing"
                    self.log.warn(f"{saved} is damaged ({why}); compared with the copy its record keeps")
                old = kept
            except (Damaged, KeyError) as e:
                if old is not None and old != text:  # nothing trusted to compare with; the stage inputs are
                    self.log.warn(
                        f"{saved} differs from this config and its record is damaged ({e}), so the "
                        f"config the run was made with is not known: going on with this one "
                        f"(stages whose inputs differ from their records run again)"
                    )
                    old = None
        if old is not None and old != text and not allow_change:
            diff = "".join(
                difflib.unified_diff(
                    old.splitlines(True), text.splitlines(True), "config.yaml (as run)", "config (now)"
                )
            )
            raise RunDirError(
                f"{self.root} was run with another config; resume with the same config, "
                f"pass --allow-change to rerun the stages the change touches, or pick a "
                f"new name=...\n{diff}"
            )
        write_text(saved, text)
        seal(saved, record, text=text)

    def _lock(self) -> None:
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirError(
                f"{self.root} is in use by another secondtry process; wait for it or pick another run name"
            ) from None
        self._lock_fd = fd
        with contextlib.suppress(OSError):  # the pid is for people; a full disk must not stop the lock
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())

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

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        """Release the lock; a failed write the file system refused becomes a StorageError (one line)."""
        self.close()
        if isinstance(exc, Exception) and not isinstance(exc, RunDirError):
            err = storage_error(exc, self.root)
            if err is not None:
                raise err from exc

    # -- paths and records ---------------------------------------------------------------------
    def path(self, round_: int, name: str) -> Path:
        return self.root / f"round_{round_}" / name

    def stage_record(self, stage: str) -> Path:
        """A finished stage's own record (its manifest entry): round_k/.stages/<stage>.json."""
        return self.root / Path(stage).parent / ".stages" / f"{Path(stage).name}.json"

    def manifest(self) -> dict[str, Any]:
        """The manifest; a damaged or missing one is recovered (and written again), never a crash."""
        try:
            return renamed_stages(_manifest_shape(read_checked_json(self.manifest_path)))
        except Damaged as e:
            return renamed_stages(self._recover(str(e)))

    def _recover(self, why: str) -> dict[str, Any]:
        """The manifest from its backup generation and the stages' own records, or from the records alone."""
        records: dict[str, Any] = {}
        for path in sorted(self.root.glob("*/.stages/*.json")):
            stage = f"{path.parent.parent.name}/{path.stem}"
            try:
                records[stage] = _entry_shape(read_checked_json(path))
            except Damaged as e:
                self.log.warn(
                    f"{path.relative_to(self.root)} is damaged ({e}); stage {stage} runs again "
                    f"unless the manifest's backup vouches for it"
                )
        if why == "missing" and not records and not self.backup_path.exists():
            return {"stages": {}}  # a new run
        try:
            stages = {**_manifest_shape(read_checked_json(self.backup_path))["stages"], **records}
            how = (
                f"recovered from its backup generation ({self.backup_path.name}) and the records of "
                f"{len(records)} finished stages"
            )
        except Damaged:
            stages, how = records, f"rebuilt from the records of {len(records)} finished stages"
        manifest = {"stages": stages}
        self.log.warn(f"{self.manifest_path} is {why}: {how}")
        if self._lock_fd is not None:
            write_checked_json(self.manifest_path, manifest)
        return manifest

    def output_hash(self, stage: str) -> str | None:
        """A finished stage's outputs hash (None if it has not finished)."""
        entry = self.manifest()["stages"].get(stage)
        return entry["outputs_hash"] if entry else None

    # -- stages --------------------------------------------------------------------------------
    def stage(
        self, name: str, inputs: dict[str, Any], outputs: list[Path], run: Callable[[], dict[str, Any] | None]
    ) -> dict[str, Any]:
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
        self.partial = Partial(partial_dir, name, inputs_hash, self.log)
        start = time.perf_counter()
        try:
            info = dict(run() or {})  # on every rank: the stages gather their records themselves
        finally:
            self.partial = None
        info["wall_s"] = round(time.perf_counter() - start, 3)
        return distributed.from_main(lambda: self._record(name, inputs_hash, outputs, partial_dir, info))

    def _finished(
        self, name: str, inputs_hash: str, outputs: list[Path], partial_dir: Path
    ) -> dict[str, Any] | None:
        """The recorded info if the stage is done with these inputs and intact outputs; else clear its
        stale outputs and return None."""
        entry = self.manifest()["stages"].get(name)
        if entry and entry["inputs_hash"] == inputs_hash:
            why = self._damaged(entry, outputs)
            if why is None:
                _remove_partial(partial_dir)  # left if the last run died right after recording
                self._keep_record(name, entry)
                return entry["info"]
            self.log.warn(f"{name}: {why}; the stage runs again")
        self.stage_record(name).unlink(missing_ok=True)
        for p in outputs:  # stale outputs of an earlier, different or unfinished run of this stage
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        Partial(partial_dir, name, inputs_hash, self.log)  # throws away pieces made with other inputs
        return None

    def _keep_record(self, name: str, entry: dict[str, Any]) -> None:
        """The stage's own record, written again from the manifest if it is missing or damaged."""
        path = self.stage_record(name)
        try:
            if read_checked_json(path) == entry:
                return
            why = "not what the manifest holds"
        except Damaged as e:
            why = str(e)
        if path.exists():
            self.log.warn(f"{self._rel(path)} is {why}; written again from the manifest")
        write_checked_json(path, entry)

    def _damaged(self, entry: dict[str, Any], outputs: list[Path]) -> str | None:
        """None if the outputs hash to what the stage recorded; else which do not, and how."""
        missing = [self._rel(p) for p in outputs if not p.exists()]
        if missing:
            return f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing"
        got = {self._rel(p): hash_path(p) for p in outputs}
        if hash_data(list(got.values())) == entry["outputs_hash"]:
            return None
        known = entry.get("output_hashes", {})
        bad = [rel for rel, h in got.items() if known.get(rel) != h] or list(got)
        verb = "does" if len(bad) == 1 else "do"
        return f"{', '.join(bad)} {verb} not match the recorded hash (damaged or edited)"

    def _rel(self, p: Path) -> str:
        return str(p.relative_to(self.root)) if p.is_relative_to(self.root) else str(p)

    def _record(
        self, name: str, inputs_hash: str, outputs: list[Path], partial_dir: Path, info: dict[str, Any]
    ) -> dict[str, Any]:
        missing = [str(p) for p in outputs if not p.exists()]
        if missing:
            raise RuntimeError(f"stage {name} finished without writing {missing}")
        crash_point(f"{name}:outputs-written")
        hashes = {self._rel(p): hash_path(p) for p in outputs}
        entry = {
            "inputs_hash": inputs_hash,
            "outputs_hash": hash_data(list(hashes.values())),
            "outputs": list(hashes),
            "output_hashes": hashes,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "info": info,
        }
        previous = self.manifest()
        write_checked_json(self.stage_record(name), entry)
        if previous["stages"]:
            write_checked_json(self.backup_path, previous)
        write_checked_json(self.manifest_path, {"stages": {**previous["stages"], name: entry}})
        crash_point(f"{name}:recorded")
        _remove_partial(partial_dir)
        return info


def _entry_shape(entry: Any) -> dict[str, Any]:
    if not (
        isinstance(entry, dict)
        and isinstance(entry.get("inputs_hash"), str)
        and isinstance(entry.get("outputs_hash"), str)
        and isinstance(entry.get("info"), dict)
    ):
        raise Damaged("damaged (not a stage record)")
    return entry


def _manifest_shape(data: dict[str, Any]) -> dict[str, Any]:
    stages = data.get("stages")
    if not isinstance(stages, dict):
        raise Damaged("damaged (not a manifest)")
    for entry in stages.values():
        _entry_shape(entry)
    return data


def _remove_partial(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()  # .partial/ itself, once no stage of the round has pieces left


class Partial:
    """A running stage's finished pieces in `round_k/.partial/<stage>/`, kept across kills.

    The folder is bound to the stage's inputs hash: pieces made with other inputs are thrown
    away when the stage starts. A chunk file appears whole (atomic write), then its integrity
    record (`.sum`: records and SHA-256); a chunk is reused only if it matches its record, else
    it is made again and the log says why. A trainer keeps its checkpoints in `folder` (each
    with its own record, training/sft.py). The folder is made on first use.
    """

    def __init__(self, folder: Path, stage: str, inputs_hash: str, log: Log = Log()) -> None:
        self._folder, self.stage, self.inputs_hash, self.log = folder, stage, inputs_hash, log
        self._checked: dict[int, list[dict[str, Any]] | None] = {}
        marker = folder / "inputs_hash"
        if (
            distributed.is_main()
            and folder.exists()
            and not (marker.is_file() and marker.read_bytes() == inputs_hash.encode())
        ):
            pieces = [p for p in folder.iterdir() if p != marker]
            if pieces:
                log.info(
                    f"{stage}: {len(pieces)} earlier pieces were made with other inputs (or their "
                    f"inputs record is damaged); they are made again"
                )
            shutil.rmtree(
                folder
            )  # pieces of a run with other inputs, or of one killed before it wrote the hash

    @property
    def folder(self) -> Path:
        if distributed.is_main() and not (self._folder / "inputs_hash").is_file():
            self._folder.mkdir(parents=True, exist_ok=True)
            write_text(self._folder / "inputs_hash", self.inputs_hash)
        return self._folder

    def _chunk_path(self, i: int) -> Path:
        return self._folder / f"chunk-{i:05d}.jsonl"

    def done(self, i: int) -> bool:
        return self.chunk(i) is not None

    def chunk(self, i: int) -> list[dict[str, Any]] | None:
        """The records of chunk `i` if an earlier run finished it and it matches its record, else None."""
        if i not in self._checked:
            self._checked[i] = self._load(i)
        return self._checked[i]

    def _load(self, i: int) -> list[dict[str, Any]] | None:
        path = self._chunk_path(i)
        if not path.is_file():
            return None
        why = check_seal(path)
        if why is None:
            try:
                return read_jsonl(path)
            except ValueError as e:
                why = f"it cannot be parsed ({_short(e)})"
        if distributed.is_main():
            self.log.warn(f"{self.stage}: chunk {i} ({path.name}) is not trusted, {why}; it is made again")
            path.unlink(missing_ok=True)
            seal_path(path).unlink(missing_ok=True)
        return None

    def write_chunk(self, i: int, records: list[dict[str, Any]]) -> None:
        path = self.folder / self._chunk_path(i).name
        write_jsonl(path, records)
        seal(path)  # written after the chunk: a kill between the two leaves a chunk that is made again
        self._checked.pop(i, None)
        crash_point(f"{self.stage}:chunk{i}:saved")


def iter_rounds(root: Path) -> Iterator[tuple[int, Path]]:
    """(k, round_k folder) in order."""
    found = []
    for p in Path(root).glob("round_*"):
        suffix = p.name.removeprefix("round_")
        if p.is_dir() and suffix.isdigit():
            found.append((int(suffix), p))
    return iter(sorted(found))
