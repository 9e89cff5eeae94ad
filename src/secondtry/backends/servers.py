"""Servers secondtry starts itself for the `openai` backend (`backend.launch`), and their adapter API.

`Launcher.serve(model)` starts the servers a stage samples from: `backend.launch` is split like a
shell line (no shell runs it) and each word filled in ({model}, {port}, {host}, {name}, {seed},
{lora_rank}). Each server gets a free loopback port, a session of its own (so stopping it stops
its whole process group) and the log `<run_dir>/logs/server-<stage>.log` (`-gpu<G>` with
`backend.launch_per_gpu`, `-rank<R>` under torchrun). A server counts as up once `GET /health`
(or, where there is none, `GET /v1/models`) answers 200; one that exits first, or is not up
within `backend.launch_timeout_s`, stops the run with the end of its log in the error.

A server is stopped with SIGTERM to its process group, then SIGKILL after `backend.launch_grace_s`:
at the end of its stage (with `backend.lora` it serves the base model for the whole run, and stops
for training only with `lora_keep_server: false`), when the model to sample changes, and when the
run ends. A server is started through a small shim that asks Linux to SIGTERM it if secondtry dies
(PR_SET_PDEATHSIG), so a killed run leaves no server holding a GPU.

A server that dies during a stage is started again, once per stage (`revive`); the generate call
that saw it die resends the requests that had not finished. A second death in the same stage is
a `ServerError` naming the log.

Adapters (`backend.lora`): vLLM loads one with `POST /v1/load_lora_adapter` (started with
`--enable-lora` and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, set here) and is asked for it by its
name; SGLang with `POST /load_lora_adapter` and `model: "<base>:<adapter>"`. `transformers serve`
has no adapter API.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config
from ..log import Log

HOST = "127.0.0.1"
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the values vLLM's --max-lora-rank takes
TAIL_LINES = 25
# torchrun's variables: a server that sees them may join (or collide with) the run's process group
TORCHRUN_VARS = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "GROUP_WORLD_SIZE",
    "ROLE_RANK",
    "ROLE_WORLD_SIZE",
    "ROLE_NAME",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_RESTART_COUNT",
    "TORCHELASTIC_MAX_RESTARTS",
    "TORCHELASTIC_USE_AGENT_STORE",
    "TORCH_NCCL_ASYNC_ERROR_HANDLING",
)
# runs in the new session before the server: SIGTERM the server when secondtry dies, then become it
SHIM = (
    "import os, signal, sys\n"
    "try:\n"
    "    import ctypes\n"
    "    ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG (Linux)\n"
    "except (AttributeError, OSError):\n"
    "    pass\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(70)  # secondtry is gone already\n"
    "os.execv(sys.argv[2], sys.argv[3:])\n"
)


class ServerError(RuntimeError):
    """A launched server that would not start, or that died twice in a stage; the message names its log."""


class ServerDied(Exception):
    """A launched server's process exited while a generate call used it (handled by the sampler)."""


@dataclass
class Server:
    """One launched server process."""

    gpu: str | None  # its CUDA_VISIBLE_DEVICES; None: the environment's
    log_path: Path
    port: int = 0
    argv: tuple[str, ...] = ()  # the command it runs
    proc: subprocess.Popen | None = None
    starts: int = 0  # changes at every start: an adapter loaded before is gone
    deaths: int = 0  # in the current stage

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None


class Launcher:
    """Starts, watches and stops the servers of `backend.launch` for the models the stages sample."""

    def __init__(self, cfg: Config, log: Log = Log(), logs: Path | None = None) -> None:
        self.cfg, self.b, self.log = cfg, cfg.backend, log
        if not self.b.launch:
            raise ValueError("Launcher needs backend.launch")
        self.logs = Path(logs) if logs is not None else cfg.run_path / "logs"
        self.stage: str | None = None
        self.servers: list[Server] = []
        self.serving: str | None = None  # the model the running servers were started with
        self.pids: list[int] = []  # every server process started (their process groups too)

    # -- the stages' view -----------------------------------------------------------------------
    def begin_stage(self, name: str) -> None:
        """A stage starts: its servers' logs are named after it, and each server may die once in it."""
        self.stage = name
        for s in self.servers:
            s.deaths = 0

    def end_stage(self) -> None:
        """A stage ended: its servers stop (with backend.lora the base model's server stays for the next)."""
        self.stage = None
        if not self.b.lora:
            self.stop()

    def release(self) -> None:
        """Training needs the devices: stop, unless backend.lora keeps the base model's server running."""
        if not (self.b.lora and self.b.lora_keep_server):
            self.stop()

    def serve(self, model: str) -> list[Server]:
        """The servers for `model` (the base model with backend.lora), started and answering."""
        target = self.cfg.model.path if self.b.lora else model
        if self.servers and self.serving != target:
            self.stop()
        if not self.servers:
            self.servers, self.serving = [Server(gpu, self._log_path(gpu)) for gpu in self.gpus()], target
            try:
                self._start(self.servers)
            except BaseException:
                self.stop()
                raise
        return self.servers

    def dead(self) -> list[Server]:
        return [s for s in self.servers if s.exited()]

    def revive(self) -> None:
        """Start the servers that died again, once per stage each; a second death is a ServerError."""
        dead = self.dead()
        for s in dead:
            code = s.proc.returncode if s.proc else None
            s.deaths += 1
            _note(s.log_path, f"the server exited with code {code}")
            if s.deaths > 1:
                tail = _tail(s.log_path)
                self.stop()
                raise ServerError(
                    f"backend.launch: the server for {self.stage or 'this call'} ({s.url}) died again, exit "
                    f"code {code}, after one restart in this stage; finished chunks are kept, `secondtry "
                    f"run` on the same config resumes. Its log, {s.log_path}, ends:\n{tail}"
                )
            self.log.warn(
                f"the server at {s.url} exited with code {code} during {self.stage or 'a call'}; "
                f"starting it again (once; its log: {s.log_path})"
            )
        if dead:
            try:
                self._start(dead)
            except BaseException:
                self.stop()
                raise

    def stop(self) -> None:
        """SIGTERM every server's process group; SIGKILL what is left after backend.launch_grace_s."""
        servers, self.servers, self.serving = self.servers, [], None
        stop_servers(servers, self.b.launch_grace_s)

    # -- placement --------------------------------------------------------------------------------
    def gpus(self) -> list[str | None]:
        """One CUDA_VISIBLE_DEVICES value per server this process starts (None: leave the environment's).

        Under torchrun the node's visible GPUs are shared out by local rank (GPU i to rank i mod ranks)."""
        visible = visible_gpus()
        local, ranks = int(os.environ.get("LOCAL_RANK", "0")), int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        mine = [g for i, g in enumerate(visible) if i % ranks == local]
        if self.b.launch_per_gpu:
            if not mine:
                raise ServerError(
                    "backend.launch_per_gpu: no GPU visible to this process "
                    "(CUDA_VISIBLE_DEVICES unset or empty and torch sees none); "
                    "drop backend.launch_per_gpu"
                )
            return list(mine)
        return [",".join(mine)] if ranks > 1 and mine else [None]

    def _log_path(self, gpu: str | None) -> Path:
        name = "server-" + (self.stage or "run").replace("/", "-")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            name += f"-rank{os.environ.get('RANK', '0')}"
        if self.b.launch_per_gpu:
            name += f"-gpu{gpu}"
        return self.logs / f"{name}.log"

    # -- processes --------------------------------------------------------------------------------
    def argv(self, port: int) -> list[str]:
        """backend.launch filled in for a server on `port`."""
        target = self.serving or self.cfg.model.path
        values = {
            "model": target,
            "port": port,
            "host": HOST,
            "name": self.b.model_name or target,
            "seed": self.cfg.seed,
            "lora_rank": lora_rank(self.cfg),
        }
        try:
            words = [w.format(**values) for w in shlex.split(self.b.launch or "")]
        except ValueError as e:
            raise ServerError(f"backend.launch {self.b.launch!r}: {e}") from None
        exe = shutil.which(words[0]) or shutil.which(words[0], path=str(Path(sys.executable).parent))
        if exe is None:
            raise ServerError(
                f"backend.launch: {words[0]!r} is not an executable on PATH (nor beside "
                f"{sys.executable}); install it, or give its full path"
            )
        return [exe, *words[1:]]

    def _env(self, gpu: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
        if self.b.lora and self.b.server == "vllm":
            env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"  # enables /v1/load_lora_adapter
        env.update(self.b.launch_env)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        return env

    def _start(self, servers: list[Server]) -> None:
        """Start `servers` (on their old ports where still free) and wait until every one answers."""
        taken = {s.port for s in self.servers if s not in servers}
        for s in servers:
            s.port = s.port if s.port and s.port not in taken and port_free(s.port) else free_port(taken)
            taken.add(s.port)
            self._spawn(s)
        self._wait(servers)

    def _spawn(self, s: Server) -> None:
        argv = self.argv(s.port)
        s.argv = tuple(argv)
        s.log_path.parent.mkdir(parents=True, exist_ok=True)
        where = f"stage {self.stage}" if self.stage else "secondtry"
        gpu = f", CUDA_VISIBLE_DEVICES={s.gpu}" if s.gpu is not None else ""
        _note(s.log_path, f"starting for {where} on port {s.port}{gpu}: {shlex.join(argv)}")
        with open(s.log_path, "ab") as out:
            s.proc = subprocess.Popen(
                [sys.executable, "-S", "-c", SHIM, str(os.getpid()), argv[0], *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._env(s.gpu),
                start_new_session=True,
            )
        s.starts += 1
        self.pids.append(s.proc.pid)

    def _wait(self, servers: list[Server]) -> None:
        timeout = self.b.launch_timeout_s
        deadline = time.monotonic() + timeout
        pending, port_retries = list(servers), 0
        while pending:
            for s in list(pending):
                if s.exited():
                    tail = _tail(s.log_path)
                    if "address already in use" in tail.lower() and port_retries < 3:  # taken since we looked
                        port_retries += 1
                        s.port = free_port({x.port for x in self.servers})
                        self._spawn(s)
                        continue
                    raise ServerError(
                        f"backend.launch: the server exited with code {s.proc.returncode} "
                        f"before answering at {s.url} ({shlex.join(s.argv)}). Its log, "
                        f"{s.log_path}, ends:\n{tail}"
                    )
                if healthy(s.port):
                    _note(s.log_path, f"answering at {s.url}")
                    pending.remove(s)
            if pending and time.monotonic() > deadline:
                s = pending[0]
                stop_servers(pending, self.b.launch_grace_s)
                raise ServerError(
                    f"backend.launch: the server did not answer at {s.url} (GET /health, /v1/models) within "
                    f"backend.launch_timeout_s={timeout:g} s, and was stopped; raise the timeout if it is "
                    f"still loading, or check that the command serves on --host {HOST} --port {{port}}. Its "
                    f"log, {s.log_path}, ends:\n{_tail(s.log_path)}"
                )
            if pending:
                time.sleep(0.25)


def stop_servers(servers: list[Server], grace: float) -> None:
    """SIGTERM each server's process group, wait up to `grace` seconds for all of them, SIGKILL the rest."""
    live = [s for s in servers if s.proc is not None]
    for s in live:
        if s.proc.poll() is None:
            _note(s.log_path, "stopping (SIGTERM to the process group)")
        _signal_group(s.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while live:
        for s in live:
            s.proc.poll()  # reap the leader
        live = [s for s in live if group_alive(s.proc.pid)]
        if not live or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for s in live:
        _note(s.log_path, f"still running {grace:g} s after SIGTERM (backend.launch_grace_s): SIGKILL")
        _signal_group(s.proc.pid, signal.SIGKILL)
    for s in servers:
        if s.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                s.proc.wait(10)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """Whether any process of the group `pgid` still runs (zombies waiting to be reaped do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def visible_gpus() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES's entries when set, else those torch counts."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        out = []
        for g in (x.strip() for x in env.split(",")):
            if not g or g == "-1":
                break  # CUDA stops at the first invalid entry
            out.append(g)
        return out
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def lora_rank(cfg: Config) -> int:
    """The largest adapter rank the run may load: training.rank times the passes an adapter stacks
    (training/adapters.py), rounded up to a value vLLM's --max-lora-rank takes."""
    t = cfg.training
    passes = t.improve_steps * (cfg.stopping.max_rounds if t.between_rounds == "continue" else 1)
    rank = t.rank * passes
    return next((r for r in VLLM_LORA_RANKS if r >= rank), rank)


def free_port(taken: set[int] | frozenset[int] = frozenset()) -> int:
    """A loopback port nothing listens on now (and not in `taken`)."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
        if port not in taken:
            return port
    raise ServerError("no free loopback port found")


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _open(url: str | urllib.request.Request, timeout: float):
    """urlopen, without the environment's HTTP proxy for the servers secondtry started on loopback."""
    full = url if isinstance(url, str) else url.full_url
    opener = _LOOPBACK if full.startswith(f"http://{HOST}:") else urllib.request.build_opener()
    return opener.open(url, timeout=timeout)


_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def healthy(port: int, timeout: float = 2.0) -> bool:
    """GET /health answers 200, or (for a server without one) GET /v1/models does."""
    for path in ("/health", "/v1/models"):
        try:
            with _open(f"http://{HOST}:{port}{path}", timeout) as r:
                return r.status == 200
        except urllib.error.HTTPError as e:
            if e.code not in (404, 405):
                return False
        except (OSError, ValueError):
            return False
    return False


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text.rstrip().splitlines()[-lines:]) or "    (empty)"


def _note(path: Path, message: str) -> None:
    """A line of secondtry's own in a server's log."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"[secondtry {time.strftime('%Y-%m-%d %H:%M:%S')}] {message}\n")


# ----------------------------------------------------------------------------- adapters


def adapter_name(path: str) -> str:
    """The name an adapter folder is served under: its round and the hash of its weights (a retrained
    round is another adapter)."""
    folder = Path(path)
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        if (folder / name).is_file():
            digest.update((folder / name).read_bytes())
    stem = folder.parent.name if folder.name == "model" else folder.name
    return f"{stem or 'adapter'}-{digest.hexdigest()[:12]}"


def request_model(server: str, base_name: str, adapter: str | None) -> str:
    """The `model` a request names: vLLM asks for an adapter by its name, SGLang by `<base>:<adapter>`."""
    if adapter is None:
        return base_name
    return f"{base_name}:{adapter}" if server == "sglang" else adapter


def _adapter_url(url: str, server: str, verb: str) -> str:
    root = url.rstrip("/")
    if server == "sglang":  # SGLang's adapter endpoints sit at the root, beside /v1
        root = root.removesuffix("/v1")
    return f"{root}/{verb}_lora_adapter"


def _post(url: str, body: dict[str, Any], timeout: float) -> tuple[int, str]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with _open(req, timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def served_models(url: str, timeout: float = 30.0) -> list[str]:
    """The model ids `GET <url>/models` lists."""
    with _open(f"{url.rstrip('/')}/models", timeout) as r:
        return [m.get("id") for m in json.loads(r.read()).get("data", [])]


def load_adapter(url: str, server: str, name: str, path: str, timeout: float = 600.0) -> None:
    """Load the adapter folder `path` as `name` into the server at `url` (a base URL ending in /v1), unless
    it is loaded already; a refusal is a ServerError that says what the server needs."""
    with contextlib.suppress(OSError, ValueError):
        if name in served_models(url):
            return
    try:
        status, body = _post(
            _adapter_url(url, server, "load"), {"lora_name": name, "lora_path": str(path)}, timeout
        )
    except OSError as e:
        raise ServerError(f"backend.lora: loading adapter {name} into {url} failed: {e}") from None
    if status != 200:
        need = (
            "vLLM needs --enable-lora, --max-lora-rank {lora_rank} and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
            if server == "vllm"
            else "SGLang needs --enable-lora, --max-lora-rank {lora_rank} and --lora-target-modules all"
        )
        raise ServerError(
            f"backend.lora: {url} refused to load adapter {name} from {path}: HTTP {status}: "
            f"{body.strip()[:400]}. {need} (docs/openai-backend.md)"
        )


def unload_adapter(url: str, server: str, name: str, timeout: float = 60.0) -> None:
    """Unload adapter `name` from the server at `url`; a server that is gone or never had it is fine."""
    with contextlib.suppress(OSError):
        _post(_adapter_url(url, server, "unload"), {"lora_name": name}, timeout)
