"""The experiment config: typed, validated, loaded from YAML with dotted command-line overrides.

Errors name the key, say what was wrong, and how to fix it:

    config error in configs/x.yaml
      training.lr: expected a number, got 'fast' — e.g. training.lr=2e-5

Names of tasks, verifiers, conditions, backends and stopping policies are checked
against the extension dicts by `secondtry.loop.check_names` (this module sits above
them and does not import them).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import reprlib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo


class ConfigError(ValueError):
    """A config that cannot run. The message names the key and the fix."""


GAIN_POLICIES = {"negative_gain", "ci_patience"}  # stopping policies that read a round's measured gain


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=(), allow_inf_nan=False)


# Limits of the sizes a run can be given: far beyond any practical run, well short of exhausting a machine.
MAX_SEED = 2**32 - 1  # numpy's and most libraries' seed range
MAX_STEPS = 1_000_000  # optimizer steps in one round (also after training.steps_growth)
MAX_TOKENS = 1 << 20  # new tokens of one generation; tokens of one training row
MAX_BATCH = 65_536  # sequences generated together; examples or rows a step; accumulation steps
MAX_SAMPLES = 10_000  # samples of one problem
MAX_TURNS = 100  # retry turns
MAX_WORKERS = 1024  # processes, requests in flight
MAX_SECONDS = 86_400.0  # one timeout: a day


# ----------------------------------------------------------------------------- what each value feeds

STAGES = ("attempts", "sft", "train", "eval")  # the stages of a round whose inputs come from the config
SECTION = "section"  # a field of a section used under several keys (a task, sampling): the key's stages


def feeds(*stages: str, via: str = "", key: str = "", when_set: bool = False) -> dict[str, Any]:
    """A field's `json_schema_extra`: the stages whose records depend on its value, so a change reruns them.

    `via`: the value reaches the stage's inputs through something made from it (the model's id, the
    problems' hash), not as itself. `key`: its top-level key in the stage's inputs (default: under its
    section's key). `when_set`: in the inputs only when not at its default (a field added after runs
    were recorded without it, so their records still match).
    """
    unknown = [s for s in stages if s not in (*STAGES, SECTION)]
    if not stages or unknown:
        raise ValueError(
            f"feeds{stages}: stages are {', '.join(STAGES)} or {SECTION!r}; "
            f"a value that feeds none says so with feeds_nothing(why)"
        )
    extra: dict[str, Any] = {"feeds": list(stages)}
    extra.update({k: v for k, v in (("via", via), ("key", key), ("when_set", when_set)) if v})
    return extra


def feeds_nothing(why: str, pinned: tuple[str, ...] = ()) -> dict[str, Any]:
    """A field's `json_schema_extra`: its value changes no stage's records (`why` says what it does).
    `pinned`: stages whose inputs held it before; it stays there at its default value, so records made
    then still match and a change reruns nothing."""
    if not why:
        raise ValueError("feeds_nothing(why): say what the value does instead")
    return {"feeds": [], "why": why, **({"pinned": list(pinned)} if pinned else {})}


@dataclasses.dataclass(frozen=True)
class Feeds:
    """A field's declaration (see `feeds`, `feeds_nothing`)."""

    stages: tuple[str, ...]
    why: str = ""
    via: str = ""
    key: str = ""
    when_set: bool = False
    pinned: tuple[str, ...] = ()


def feeds_of(field: FieldInfo) -> Feeds | None:
    """What a field declares it feeds, or None if it declares nothing."""
    extra = field.json_schema_extra
    if not isinstance(extra, dict) or "feeds" not in extra:
        return None
    get: Any = extra.get
    return Feeds(
        tuple(get("feeds")),
        str(get("why", "")),
        str(get("via", "")),
        str(get("key", "")),
        bool(get("when_set")),
        tuple(get("pinned", ())),
    )


class ToyConfig(_Strict):
    retry_error_scale: float = Field(
        1.0,
        gt=0,
        le=4,
        description="the toy teacher's error rate on a retry turn, as a multiple of its first "
        "attempts' (1: retries no better than first attempts, a neutral world; below 1 "
        "plants an advantage for retrying, which every report then states)",
        json_schema_extra=feeds(SECTION),
    )


class ModelConfig(_Strict):
    inputs_key: ClassVar[str] = "model_cfg"  # "model" in a stage's inputs is the model's id
    path: str = Field(
        description="HF hub id or local folder of a causal LM (or `toy:NAME` for a bundled toy model)",
        json_schema_extra=feeds("attempts", "eval", "train", via="the model's id (path or hash)"),
    )
    toy: ToyConfig | None = Field(
        None,
        description="`toy:NAME` models only: the world the toy model is pretrained "
        "in (a different world is a different cached model)",
        json_schema_extra=feeds("attempts", "eval"),
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", json_schema_extra=feeds("attempts", "eval")
    )
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="passed to apply_chat_template, e.g. {enable_thinking: false}",
        json_schema_extra=feeds("attempts", "eval"),
    )
    system_prompt: str | None = Field(None, json_schema_extra=feeds("attempts", "eval"))

    @model_validator(mode="after")
    def _toy_only(self) -> ModelConfig:
        if self.toy is not None and not self.path.startswith("toy:"):
            raise ValueError(
                f"model.toy sets how a toy model is pretrained; model.path {self.path!r} is not a "
                f"toy model (toy:NAME): remove model.toy"
            )
        return self


_PROBLEMS = feeds(SECTION, via="the problems' hash")  # every task key: it decides the problems


class TaskConfig(_Strict):
    name: str = Field(description="one of `secondtry ls` tasks", json_schema_extra=_PROBLEMS)
    path: str | None = Field(
        None, description="local JSONL file or `datasets` hub id", json_schema_extra=_PROBLEMS
    )
    split: str = Field("train", json_schema_extra=_PROBLEMS)
    subset: str | None = Field(
        None, description="hub dataset config name, e.g. `main` for openai/gsm8k", json_schema_extra=_PROBLEMS
    )
    limit: int | None = Field(
        None, ge=1, description="use at most this many problems", json_schema_extra=_PROBLEMS
    )
    shuffle: bool = Field(
        False, description="shuffle (with the run seed) before applying limit", json_schema_extra=_PROBLEMS
    )
    instruction: str | None = Field(
        None, description="text appended to each question; task default if unset", json_schema_extra=_PROBLEMS
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        json_schema_extra=_PROBLEMS,
        description="jsonl task: field names for id, question, answer, solution",
    )
    on_bad_row: Literal["error", "skip"] = Field(
        "error",
        description="a row with a missing or empty field stops the run, or is skipped and counted",
        json_schema_extra=_PROBLEMS,
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="task-specific options", json_schema_extra=_PROBLEMS
    )


class VerifierConfig(_Strict):
    name: str = Field("math", json_schema_extra=feeds("attempts", "eval"))
    workers: int = Field(
        2,
        ge=0,
        le=MAX_WORKERS,
        json_schema_extra=feeds_nothing("how many processes verify"),
        description="worker processes; 0 verifies in this process (no hard timeout)",
    )
    timeout_s: float = Field(
        10.0,
        gt=0,
        le=MAX_SECONDS,
        description="hard limit per verdict; an overrun is 'cannot judge'",
        json_schema_extra=feeds("attempts", "eval"),
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra=feeds("attempts", "eval"),
        description="the verifier's own options, e.g. {extractors: [boxed], compare: "
        "hendrycks}; `secondtry ls` lists each verifier's options",
    )
    judge_cut_text: bool = Field(
        False,
        description="judge generations cut at max_new_tokens on their text, as if they had ended; by "
        "default a cut generation is incorrect ('cut at length') without being read. Cut "
        "generations are never kept for training either way",
        json_schema_extra=feeds("attempts", "eval"),
    )


LAUNCH_PLACEHOLDERS = {
    "model": "the model folder or hub id to serve (the base model with backend.lora)",
    "port": "a free loopback port, one per server",
    "host": "127.0.0.1",
    "name": "the model name requests use: backend.model_name, else {model}",
    "seed": "the run's seed",
    "lora_rank": "training.rank (vLLM's --max-lora-rank must be at least this)",
}


_GENERATES = feeds("attempts", "eval")
_REQUESTS = ("attempts", "eval")  # stages whose inputs held every backend key when there was one section


class _BackendBase(_Strict):
    """What every backend section has: the loop reads batch_size (chunk sizes) and device (training)."""

    batch_size: int = Field(
        32,
        ge=1,
        le=MAX_BATCH,
        json_schema_extra=_GENERATES,
        description="hf: sequences generated together; every backend: checkpoint.chunk defaults to 4 x this",
    )
    device: str = Field(
        "auto",
        json_schema_extra=_GENERATES,
        description="auto | cpu | cuda | cuda:N: where hf samples and where training runs",
    )


class HFBackendConfig(_BackendBase):
    """backend.name: hf — transformers weights in this process (backends/hf.py, docs/engine.md)."""

    name: Literal["hf"] = Field("hf", json_schema_extra=_GENERATES)
    engine: Literal["auto", "on", "off"] = Field(
        "auto",
        json_schema_extra=_GENERATES,
        description="the generation engine (docs/engine.md) on a GPU (auto), on any device (on: on a CPU its "
        "torch path, for checks), or off for transformers generate",
    )
    max_slots: int = Field(
        512,
        ge=1,
        le=MAX_BATCH,
        description="engine: sequences decoded together at most",
        json_schema_extra=_GENERATES,
    )

    @field_validator("engine", mode="before")
    @classmethod
    def _yaml_off(cls, v: Any) -> Any:
        return (
            {False: "off", True: "on"}.get(v, v) if isinstance(v, bool) else v
        )  # YAML reads off/on as bools


class OpenAIBackendConfig(_BackendBase):
    """backend.name: openai — OpenAI-compatible servers (backends/openai.py, servers.py; docs/openai-backend.md)"""

    name: Literal["openai"] = Field(json_schema_extra=_GENERATES)
    endpoints: list[str] = Field(
        default_factory=list,
        json_schema_extra=_GENERATES,
        description="base URLs of OpenAI-compatible servers, e.g. "
        "[http://127.0.0.1:8000/v1]; requests go to the least busy",
    )
    api: Literal["chat", "completions"] = Field(
        "chat",
        json_schema_extra=_GENERATES,
        description="send messages (the server applies the chat template) or the prompt rendered here with "
        "the model's template",
    )
    server: Literal["vllm", "sglang", "transformers", "openai"] = Field(
        "vllm",
        json_schema_extra=_GENERATES,
        description="what answers, for the parameters the API lacks (top_k; sampling on transformers "
        "serve); `openai`: standard parameters only",
    )
    model_name: str | None = Field(
        None, json_schema_extra=_GENERATES, description="the model name sent; defaults to the model's path"
    )
    api_key_env: str | None = Field(
        None,
        json_schema_extra=feeds_nothing("where the key is read", _REQUESTS),
        description="NAME of the environment variable holding the API key",
    )
    concurrency: int = Field(
        8,
        ge=1,
        le=MAX_WORKERS,
        json_schema_extra=_GENERATES,
        description="requests in flight per endpoint (a server batches them)",
    )
    request_timeout_s: float = Field(
        600.0,
        gt=0,
        le=MAX_SECONDS,
        json_schema_extra=feeds_nothing("when a request is retried", _REQUESTS),
        description="one request's limit; an overrun is retried",
    )
    max_retries: int = Field(
        5,
        ge=0,
        le=MAX_TURNS,
        json_schema_extra=feeds_nothing("how often a request is retried", _REQUESTS),
        description="retries of a request after a 429, a 5xx, a timeout or a lost connection",
    )
    retry_backoff_s: float = Field(
        1.0,
        gt=0,
        le=3600.0,
        json_schema_extra=feeds_nothing("the wait before a retry", _REQUESTS),
        description="the first retry's wait; it doubles per retry (with jitter, at most 60 s)",
    )
    n_in_request: bool = Field(
        False,
        json_schema_extra=_GENERATES,
        description="ask for a conversation's n samples in one request (vLLM, SGLang); "
        "false: one request per sample, each with its own seed",
    )
    # ---- servers secondtry starts itself (backends/servers.py, docs/openai-backend.md) ------------------
    launch: str | None = Field(
        None,
        json_schema_extra=_GENERATES,
        description="the command that starts a server for the model a stage samples, instead of "
        "backend.endpoints, e.g. `vllm serve {model} --host {host} --port {port} --seed {seed}`; "
        "placeholders: " + ", ".join(f"{{{p}}}" for p in LAUNCH_PLACEHOLDERS),
    )
    launch_per_gpu: bool = Field(
        False,
        json_schema_extra=_GENERATES,
        description="with launch: one server per visible GPU (its "
        "CUDA_VISIBLE_DEVICES), requests spread over them; under "
        "torchrun each process starts the servers of its GPUs",
    )
    launch_timeout_s: float = Field(
        600.0,
        gt=0,
        le=MAX_SECONDS,
        json_schema_extra=feeds_nothing("how long a server may take to start", _REQUESTS),
        description="with launch: how long a started server may take to answer before the run stops",
    )
    launch_grace_s: float = Field(
        30.0,
        ge=0,
        le=MAX_SECONDS,
        json_schema_extra=feeds_nothing("how a server is stopped", _REQUESTS),
        description="with launch: seconds between SIGTERM and SIGKILL when a server is stopped",
    )
    launch_env: dict[str, str] = Field(
        default_factory=dict,
        json_schema_extra=_GENERATES,
        description="with launch: environment variables set for the server",
    )
    lora: bool = Field(
        False,
        json_schema_extra=_GENERATES,
        description="the server runs the base model with LoRA enabled and each round's adapter "
        "is loaded through its adapter API (vLLM, SGLang); needs training.merge=false",
    )
    lora_keep_server: bool = Field(
        True,
        json_schema_extra=feeds_nothing("whether a server waits through training", _REQUESTS),
        description="with launch and lora: keep the base model's server running while training (leave "
        "training room on the GPU); false: stop it for training",
    )

    @field_validator("launch_env", mode="before")
    @classmethod
    def _env_as_text(cls, v: Any) -> Any:  # {VLLM_BATCH_INVARIANT: 1}: the environment holds text
        return {str(k): str(x) for k, x in v.items()} if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _has_servers(self) -> OpenAIBackendConfig:
        if not self.endpoints and not self.launch:
            raise ValueError(
                "the openai backend needs at least one server: set backend.endpoints, e.g. "
                "backend.endpoints=[http://127.0.0.1:8000/v1], or backend.launch to have one "
                "started"
            )
        bad = [u for u in self.endpoints if not u.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(
                f"backend.endpoints {bad}: each must be a base URL like http://127.0.0.1:8000/v1"
            )
        if self.launch is not None:
            _check_launch(self)
        if self.lora and self.server not in ("vllm", "sglang"):
            raise ValueError(
                f"backend.lora: loading adapters needs vLLM's or SGLang's adapter API; "
                f"backend.server={self.server} has none (set backend.lora=false: a server per "
                f"stage on the round's merged model)"
            )
        return self


class PluginBackendConfig(_BackendBase):
    """backend.name: any other name — a backend a plugin registers (docs/plugins.md). Its own settings go
    under `options`, checked against the model the plugin registered with it (`register_backend(...,
    options=Model)`) once the plugins are imported."""

    name: str = Field(json_schema_extra=_GENERATES)
    options: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra=feeds("attempts", "eval", when_set=True),
        description="the plugin backend's own settings",
    )

    @field_validator("name")
    @classmethod
    def _not_built_in(cls, v: str) -> str:
        if v in BUILT_IN_BACKENDS:  # reached only through a direct construction: the union picks the built-in
            raise ValueError(f"{v} is a built-in backend with a section of its own")
        return v


BUILT_IN_BACKENDS: dict[str, type[_BackendBase]] = {"hf": HFBackendConfig, "openai": OpenAIBackendConfig}


def _backend_tag(v: Any) -> str:
    """Which section a `backend` mapping is: its name's built-in one (hf when no name), else a plugin's."""
    name = v.get("name", "hf") if isinstance(v, dict) else getattr(v, "name", "hf")
    return name if isinstance(name, str) and name in BUILT_IN_BACKENDS else "plugin"


BackendConfig = Annotated[
    Annotated[HFBackendConfig, Tag("hf")]
    | Annotated[OpenAIBackendConfig, Tag("openai")]
    | Annotated[PluginBackendConfig, Tag("plugin")],
    Discriminator(_backend_tag),
]
BACKEND_SECTIONS: dict[str, type[_BackendBase]] = {**BUILT_IN_BACKENDS, "plugin": PluginBackendConfig}


def backend_of_key(key: str) -> list[str]:
    """The built-in backends whose section has `key` (for an error about a key of another backend)."""
    return [name for name, section in BUILT_IN_BACKENDS.items() if key in section.model_fields]


def launches(cfg: Config) -> bool:
    """Whether the run starts its own servers (the openai backend's `backend.launch`)."""
    return isinstance(cfg.backend, OpenAIBackendConfig) and cfg.backend.launch is not None


def _check_launch(b: OpenAIBackendConfig) -> None:
    """backend.launch: a command with a {port}, known placeholders only, and no fixed endpoints beside it."""
    import string

    if b.endpoints:
        raise ValueError(
            "backend.launch starts the servers and knows their addresses: drop backend.endpoints"
        )
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(b.launch or "") if f is not None}
    except ValueError as e:
        raise ValueError(
            f"backend.launch {b.launch!r}: {e} (a literal brace is written {{{{ or }}}})"
        ) from None
    unknown = sorted(used - set(LAUNCH_PLACEHOLDERS))
    braced = ", ".join("{" + u + "}" for u in unknown)
    if unknown:
        raise ValueError(
            f"backend.launch: unknown placeholder(s) {braced}; "
            f"known: {', '.join('{' + p + '}' for p in LAUNCH_PLACEHOLDERS)}"
        )
    if "port" not in used:
        raise ValueError(
            "backend.launch must pass {port} to the server (secondtry picks a free port for "
            "each server), e.g. `... --port {port}`"
        )


def _check_lora_serving(cfg: Config) -> None:
    """backend.lora samples each round's adapter over the base model: training must leave it unmerged."""
    t, b = cfg.training, cfg.backend
    lora = isinstance(b, OpenAIBackendConfig) and b.lora
    if not t.merge and t.method != "lora":
        raise ValueError(
            "training.merge=false keeps a LoRA adapter unmerged; training.method=full has none: "
            "drop training.merge"
        )
    if lora and (t.method != "lora" or t.merge):
        raise ValueError(
            "backend.lora: the server loads each round's LoRA adapter over the base model, so "
            "training must keep the adapter: set training.merge=false (training.method=lora)"
        )
    if b.name == "openai" and not lora and not t.merge:
        raise ValueError(
            "training.merge=false leaves each round's model as a LoRA adapter, which the openai "
            "backend samples only through the server's adapter API: set backend.lora=true "
            "(vLLM, SGLang), or training.merge=true"
        )


# ---- end of the servers secondtry starts -------------------------------------------------------------------


class SamplingConfig(_Strict):
    temperature: float = Field(
        0.7, ge=0, le=100.0, description="0 means greedy", json_schema_extra=feeds(SECTION)
    )
    top_p: float = Field(1.0, gt=0, le=1, json_schema_extra=feeds(SECTION))
    top_k: int = Field(
        0, ge=0, le=MAX_TOKENS, description="0 disables top-k", json_schema_extra=feeds(SECTION)
    )
    max_new_tokens: int = Field(512, ge=1, le=MAX_TOKENS, json_schema_extra=feeds(SECTION))


class ConditionsConfig(_Strict):
    first: str = Field(
        "first_attempt",
        description="builds the first-attempt conversation",
        json_schema_extra=feeds("attempts", "eval"),
    )
    retry: str = Field(
        "retry",
        description="builds the retry turn after a failed attempt",
        json_schema_extra=feeds("attempts", key="retry"),
    )
    retry_prompt: str = Field("Try again carefully.", json_schema_extra=feeds("attempts", "eval"))
    retries: int = Field(
        1,
        ge=0,
        le=MAX_TURNS,
        description="retry turns per failed training problem (stops at the first success)",
        json_schema_extra=feeds("attempts", key="retries"),
    )
    samples: int = Field(
        1,
        ge=1,
        le=MAX_SAMPLES,
        json_schema_extra=feeds("attempts", key="samples", when_set=True),
        description="first attempts per training problem (ReST-EM's K); sample 0 "
        "starts the retry chain, the others are kept only with "
        "filter.include_first_attempts",
    )
    retry_samples: int = Field(
        1,
        ge=1,
        le=MAX_SAMPLES,
        json_schema_extra=feeds("attempts", key="retry_samples", when_set=True),
        description="samples drawn at each retry turn of a training problem "
        "(resampling-16: 16 fresh samples of each failed problem)",
    )
    history: Literal["all", "last"] = Field(
        "all",
        description="what a retry sees: every earlier attempt, or only the failed one before it",
        json_schema_extra=feeds("attempts", "eval"),
    )


_SFT = feeds("sft")


class FilterConfig(_Strict):
    require: Literal["answer", "steps"] = Field(
        "answer",
        json_schema_extra=_SFT,
        description="keep a retry if its final answer is right, or only if every step is right too",
    )
    dedupe: bool = Field(True, json_schema_extra=_SFT)
    max_per_problem: int = Field(1, ge=1, le=MAX_SAMPLES, json_schema_extra=_SFT)
    include_first_attempts: bool = Field(
        False, json_schema_extra=_SFT, description="also train on correct first attempts"
    )
    hint_leaks: Literal["drop", "keep"] = Field(
        "drop",
        json_schema_extra=_SFT,
        description="retries made with the gold answer in the prompt that name or quote the hint",
    )
    retry_example: Literal["problem", "turn", "both"] = Field(
        "problem",
        json_schema_extra=_SFT,
        description="what a kept retry trains: problem -> retry; the whole retry turn (problem, failed "
        "attempt, retry prompt -> retry, loss on the retry only); or both",
    )


_TRAIN = feeds("train")


class TrainingConfig(_Strict):
    method: Literal["lora", "full"] = Field("lora", json_schema_extra=_TRAIN)
    rank: int = Field(16, ge=1, le=16_384, json_schema_extra=_TRAIN)
    alpha: int = Field(32, ge=1, le=1_000_000, json_schema_extra=_TRAIN)
    dropout: float = Field(0.05, ge=0, lt=1, json_schema_extra=_TRAIN)
    target_modules: str | list[str] = Field("all-linear", json_schema_extra=_TRAIN)
    lr: float = Field(2e-5, gt=0, le=1.0, json_schema_extra=_TRAIN)
    steps: int = Field(
        500, ge=1, le=MAX_STEPS, description="optimizer steps per round", json_schema_extra=_TRAIN
    )
    max_epochs: float | None = Field(
        None,
        gt=0,
        le=1e4,
        description="at most this many passes over the round's training rows: fewer "
        "steps when a round has few examples (none: always `steps`)",
        json_schema_extra=_TRAIN,
    )
    batch_size: int = Field(
        8,
        ge=1,
        le=MAX_BATCH,
        description="examples a step; with packing, packed rows a step",
        json_schema_extra=_TRAIN,
    )
    grad_accum: int = Field(1, ge=1, le=MAX_BATCH, json_schema_extra=_TRAIN)
    max_length: int = Field(
        2048,
        ge=8,
        le=MAX_TOKENS,
        description="longer examples are truncated; with packing, a row's length",
        json_schema_extra=_TRAIN,
    )
    warmup_ratio: float = Field(0.03, ge=0, lt=1, json_schema_extra=_TRAIN)
    schedule: Literal["cosine", "constant", "linear", "constant_with_warmup"] = Field(
        "cosine", json_schema_extra=_TRAIN
    )
    weight_decay: float = Field(0.0, ge=0, le=1.0, json_schema_extra=_TRAIN)
    between_rounds: Literal["continue", "reset"] = Field(
        "continue",
        description="continue from this round's merged model, or reset to the base model",
        json_schema_extra=_TRAIN,
    )
    merge: bool = Field(
        True,
        description="lora: write the merged model (and the adapter in adapter/); "
        "false: only the adapter, earlier rounds' stacked in",
        json_schema_extra=_TRAIN,
    )
    steps_growth: float = Field(
        1.0,
        ge=1.0,
        le=10.0,
        description="round k trains steps * steps_growth^(k-1) steps (STaR grows them by 20%: 1.2)",
        json_schema_extra=_TRAIN,
    )
    improve_steps: int = Field(
        1,
        ge=1,
        le=MAX_TURNS,
        description="training passes on a round's examples, each continuing from the "
        "last with a fresh optimizer (ReST's improve steps)",
        json_schema_extra=_TRAIN,
    )
    gradient_checkpointing: bool = Field(
        False,
        description="recompute activations in the backward pass: less memory, about a third more compute",
        json_schema_extra=_TRAIN,
    )
    packing: bool = Field(
        True,
        description="pack examples end to end into rows of up to max_length tokens "
        "(batch_size rows a step); each example attends only to itself",
        json_schema_extra=_TRAIN,
    )
    fsdp: bool = Field(
        False,
        description="with several processes, shard weights, gradients and optimizer state "
        "over them (FSDP2) instead of copying the model to each (DDP): for "
        "models that do not fit one GPU",
        json_schema_extra=_TRAIN,
    )
    liger: bool | Literal["auto"] = Field(
        "auto",
        description="Liger kernels (RMSNorm, SwiGLU, RoPE); auto: on a GPU where liger-kernel is installed",
        json_schema_extra=_TRAIN,
    )
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(
        default_factory=lambda: ["tensorboard"],
        json_schema_extra=feeds_nothing("which trackers receive the training logs", ("train",)),
        description="training logs for these trackers, each only where its package is installed",
    )


_EVAL = feeds("eval")
_CHOSEN = "the round reported and the decisions are made from the records on every run"


class EvaluationConfig(_Strict):
    greedy: bool = Field(
        True, description="also score one greedy first attempt per problem", json_schema_extra=_EVAL
    )
    samples: int = Field(
        4,
        ge=1,
        le=MAX_SAMPLES,
        description="sampled first attempts per problem (pass@1 mean, pass@k)",
        json_schema_extra=_EVAL,
    )
    retry_n: int = Field(
        4,
        ge=1,
        le=MAX_TURNS,
        description="N of pass@N-with-retries: a first attempt plus up to N-1 retries",
        json_schema_extra=_EVAL,
    )
    retry: str = Field(
        "retry",
        description="the retry condition at test time (never one that shows the gold answer)",
        json_schema_extra=_EVAL,
    )
    retry_all: bool = Field(
        False,
        description="give the first retry turn to every problem, right or wrong, and "
        "report wrong->right and right->wrong flips (retrying only the "
        "failures uses the verifier as an oracle)",
        json_schema_extra=feeds("eval", when_set=True),
    )
    validation: int = Field(
        0,
        ge=0,
        json_schema_extra=feeds("attempts", "eval", via="the problems' hash"),
        description="training problems held out (never trained on) and evaluated "
        "every round; with some, the best round and the gain the "
        "stopping policies see come from them, not from the test set",
    )
    validation_task: TaskConfig | None = Field(
        None,
        description="a validation split of its own (e.g. MBPP's `validation`), instead of holding "
        "`validation` training problems out",
        json_schema_extra=feeds("eval", via="the problems' hash"),
    )
    select_on: Literal["validation", "test", "last"] | None = Field(
        None,
        description="what picks the reported round and feeds the stopping gains: the validation split "
        "(the default when one is held out); `last`: no choice, the last trained round (the "
        "default for one-round runs); `test`: the test set, every figure so chosen then marked "
        "optimistic. A run of several rounds must hold out a validation split or say `test`",
        json_schema_extra=feeds_nothing(_CHOSEN),
    )
    pass_k: list[int] = Field(default_factory=lambda: [1], json_schema_extra=_EVAL)
    metric: Literal["pass1_sampled", "pass1_greedy"] = Field(
        "pass1_sampled",
        description="the accuracy that gains, the stopping policy and best round use",
        json_schema_extra=feeds_nothing(_CHOSEN),
    )
    sampling: SamplingConfig | None = Field(
        None,
        description="defaults to the top-level sampling section",
        json_schema_extra=feeds("eval", via="the eval stage's `sampling`"),
    )
    bootstrap: int = Field(
        2000,
        ge=100,
        le=1_000_000,
        description="bootstrap resamples for 95% CIs",
        json_schema_extra=feeds_nothing("figures are computed from the records on every run"),
    )

    @model_validator(mode="after")
    def _k_within_samples(self) -> EvaluationConfig:
        bad = [k for k in self.pass_k if k < 1 or k > self.samples]
        if bad:
            raise ValueError(
                f"pass_k {bad} must lie in 1..evaluation.samples ({self.samples}); "
                f"raise evaluation.samples or drop those k"
            )
        if self.metric == "pass1_greedy" and not self.greedy:
            raise ValueError("metric pass1_greedy needs evaluation.greedy=true")
        if self.validation and self.validation_task:
            raise ValueError(
                "hold out evaluation.validation training problems or name an evaluation.validation_task, "
                "not both"
            )
        if self.select_on == "validation" and not (self.validation or self.validation_task):
            raise ValueError(
                "select_on: validation needs a validation split: set evaluation.validation=N (training "
                "problems held out) or evaluation.validation_task"
            )
        return self


_DECIDES = feeds_nothing("whether to stop is decided from the records on every run")


class StoppingConfig(_Strict):
    policies: list[str] = Field(
        default_factory=lambda: ["retry_yield", "negative_gain", "max_rounds"], json_schema_extra=_DECIDES
    )
    min_retry_yield: float = Field(
        0.15, ge=0, le=1, description="retry_yield: stop below this success rate", json_schema_extra=_DECIDES
    )
    max_rounds: int = Field(3, ge=1, le=1000, json_schema_extra=_DECIDES)
    patience: int = Field(
        1,
        ge=1,
        le=1000,
        description="ci_patience: stop after this many rounds without a gain whose 95% CI is above zero",
        json_schema_extra=_DECIDES,
    )
    enforce: bool = Field(
        True,
        description="false: record what the policies decide but run every round "
        "(to see whether stopping was right)",
        json_schema_extra=_DECIDES,
    )


class CheckpointConfig(_Strict):
    chunk: int = Field(
        0,
        ge=0,
        le=1_000_000,
        json_schema_extra=feeds("attempts", "eval", via="`chunk`: Config.chunk_size"),
        description="problems per generation + verification chunk (a killed stage "
        "resumes at its first unfinished chunk); 0: 4 x "
        "backend.batch_size",
    )
    train_steps: int = Field(
        50,
        ge=1,
        le=MAX_STEPS,
        json_schema_extra=feeds_nothing("how often training saves a state to resume from"),
        description="a training checkpoint every this many optimizer steps; a "
        "killed training resumes from the last one",
    )


_PAGE = feeds_nothing("the experiment page's text")


class PredictionConfig(_Strict):
    text: str = Field(
        "",
        description="the prediction in words, shown on the experiment page as written",
        json_schema_extra=_PAGE,
    )
    gain_pp: float | None = Field(
        None,
        ge=-100,
        le=100,
        description="the least gain of the headline metric from the "
        "base, in percentage points, at the reported round: the page says whether the "
        "run bore it out (its CI above it), refuted it (below) or left it open",
        json_schema_extra=_PAGE,
    )
    rounds: int | None = Field(
        None,
        ge=0,
        le=1000,
        description="the number of rounds expected to pay (the reported round): the page says whether it did",
        json_schema_extra=_PAGE,
    )


class Config(_Strict):
    name: str = Field(
        description="run name; the run directory is run_dir/name",
        json_schema_extra=feeds_nothing("which run directory"),
    )
    description: str = Field(
        "", description="the hypothesis, shown on the experiment page", json_schema_extra=_PAGE
    )
    prediction: PredictionConfig = Field(
        default_factory=PredictionConfig, description="what the run is expected to show, judged on the page"
    )
    seed: int = Field(42, ge=0, le=MAX_SEED, json_schema_extra=feeds("attempts", "eval", "train"))
    run_dir: str = Field("runs", json_schema_extra=feeds_nothing("which run directory"))
    model: ModelConfig
    train_task: TaskConfig = Field(json_schema_extra=feeds("attempts", via="the problems' hash"))
    eval_task: TaskConfig = Field(json_schema_extra=feeds("eval", via="the problems' hash"))
    transfer_task: TaskConfig | None = Field(
        None,
        description="a second test set from another distribution, evaluated every round: gains that are "
        "only narrowing to the eval task's distribution show up as none here",
        json_schema_extra=feeds("eval", via="the problems' hash"),
    )
    verifier: VerifierConfig = VerifierConfig()
    backend: BackendConfig = HFBackendConfig()
    sampling: SamplingConfig = Field(
        SamplingConfig(),
        json_schema_extra=feeds("attempts", "eval"),
        description="generation settings; evaluation.sampling replaces them there",
    )
    conditions: ConditionsConfig = ConditionsConfig()
    filter: FilterConfig = FilterConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    stopping: StoppingConfig = StoppingConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    plugins: list[str] = Field(
        default_factory=list,
        json_schema_extra=feeds_nothing("the names it registers are inputs where used"),
        description="modules to import before the run (and in every verifier worker) that register "
        "tasks, verifiers, conditions, backends or stopping policies (docs/plugins.md); "
        "installed, or on PYTHONPATH",
    )

    @field_validator("plugins")
    @classmethod
    def _module_names(cls, v: list[str]) -> list[str]:
        bad = [m for m in v if not all(part.isidentifier() for part in m.split("."))]
        if bad:
            raise ValueError(
                f"{', '.join(map(repr, bad))}: not a module name (dotted Python identifiers, "
                f"e.g. my_package.plugin)"
            )
        return v

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not v or "/" in v or v.startswith("."):
            raise ValueError("must be a plain folder name (no '/', not starting with '.')")
        return v

    @model_validator(mode="after")
    def _selection_is_declared(self) -> Config:
        ev, rounds = self.evaluation, self.stopping.max_rounds
        if ev.select_on is None and rounds > 1 and not (ev.validation or ev.validation_task):
            raise ValueError(
                f"evaluation.select_on: a run of up to {rounds} rounds picks its best round and decides when to stop "
                f"on an evaluation set, and the test set must not be it: hold out a validation split "
                f"(evaluation.validation=500, or evaluation.validation_task for a task with its own split), or say "
                f"evaluation.select_on=last (report the last round; only max_rounds may stop the run) or "
                f"evaluation.select_on=test (every figure so chosen is marked optimistic)"
            )
        looking = sorted(set(self.stopping.policies) & GAIN_POLICIES)
        if ev.select_on == "last" and rounds > 1 and looking:
            raise ValueError(
                f"stopping.policies: {', '.join(looking)} decide on a round's gain, which "
                f"evaluation.select_on=last takes from the test set; hold out a validation split, "
                f"drop those policies, or say evaluation.select_on=test"
            )
        return self

    @model_validator(mode="after")
    def _lora_serving(self) -> Config:
        _check_lora_serving(self)
        return self

    @property
    def selection(self) -> str:
        """The evaluation set that picks the reported round and whose gains the stopping policies see:
        validation, test, or last (no choice: the last trained round; gains from the test set)."""
        ev = self.evaluation
        return ev.select_on or ("validation" if ev.validation or ev.validation_task else "last")

    @property
    def gains_on(self) -> str:
        """The evaluation set whose gains the stopping policies see."""
        return "validation" if self.selection == "validation" else "test"

    @model_validator(mode="after")
    def _last_round_steps(self) -> Config:
        t, rounds = self.training, self.stopping.max_rounds  # round k trains steps * steps_growth^(k-1) steps
        if math.log(t.steps) + (rounds - 1) * math.log(t.steps_growth) > math.log(MAX_STEPS) + 1e-9:
            raise ValueError(
                f"training.steps={t.steps} grown by training.steps_growth={t.steps_growth} "
                f"over stopping.max_rounds={rounds} rounds trains more than {MAX_STEPS:,} steps "
                f"in the last round; lower one of them"
            )
        return self

    @property
    def eval_sampling(self) -> SamplingConfig:
        return self.evaluation.sampling or self.sampling

    @property
    def chunk_size(self) -> int:
        return (
            self.checkpoint.chunk or 4 * self.backend.batch_size
        )  # retries of a chunk still fill a batch or so

    def tasks(self) -> list[tuple[str, TaskConfig]]:
        """(config key, task) of every task the run reads: training, test, validation and transfer if set."""
        validation = self.evaluation.validation_task
        return [
            ("train_task", self.train_task),
            ("eval_task", self.eval_task),
            *([("evaluation.validation_task", validation)] if validation else []),
            *([("transfer_task", self.transfer_task)] if self.transfer_task else []),
        ]

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir) / self.name


# ----------------------------------------------------------------------------- a stage's inputs


def stage_inputs(cfg: Config, stage: str) -> dict[str, Any]:
    """The config values the records of `stage` depend on, from what each field declares (`feeds`).

    A section's values sit under its key (the model section's under `model_cfg`), a top-level value or
    one with a `key` of its own at the top. A value that reaches the stage through something made from
    it (`via`: the model's id, the problems' hash, the chunk size) is the caller's to add. For `eval`,
    `sampling` is the evaluation's (`Config.eval_sampling`).
    """
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r}: the stages with inputs are {', '.join(STAGES)}")
    if stage == "eval":
        cfg = cfg.model_copy(update={"sampling": cfg.eval_sampling})
    out: dict[str, Any] = {}
    for name, field in Config.model_fields.items():
        value = getattr(cfg, name)
        declared = feeds_of(field)
        if declared is not None:
            if _takes(declared, stage, value, field):
                out[declared.key or name] = _dumped(value)
            continue
        section = type(value)
        group = _other_backends(section, stage) if name == "backend" else {}
        for key, f in section.model_fields.items():
            d = feeds_of(f)
            if d is None:
                raise ValueError(f"{name}.{key} declares no stages (config.feeds or config.feeds_nothing)")
            if stage in d.pinned:
                group[key] = f.get_default(call_default_factory=True)
            elif _takes(d, stage, getattr(value, key), f):
                if d.key:
                    out[d.key] = _dumped(getattr(value, key))
                else:
                    group[key] = _dumped(getattr(value, key))
        if group:
            out[getattr(section, "inputs_key", name)] = group
    return out


def _takes(d: Feeds, stage: str, value: Any, field: FieldInfo) -> bool:
    """Whether `value` sits in `stage`'s inputs as itself."""
    if stage not in d.stages or d.via:
        return False
    return not (d.when_set and value == field.get_default(call_default_factory=True))


def _dumped(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value


def _other_backends(section: type[BaseModel], stage: str) -> dict[str, Any]:
    """The keys of the other built-in backend sections, at their defaults, in the `backend` of a stage's
    inputs: there was one backend section with all of them, and records made then still match."""
    pinned: dict[str, Any] = {}
    for other in BUILT_IN_BACKENDS.values():
        for key, f in other.model_fields.items():
            d = feeds_of(f)
            if key in section.model_fields or d is None or d.via or d.when_set:
                continue
            if stage in d.stages or stage in d.pinned:
                pinned[key] = f.get_default(call_default_factory=True)
    return pinned


# ----------------------------------------------------------------------------- loading

ALIAS_BUDGET = 10_000  # values YAML aliases may add to a config (a "billion laughs" adds billions)

_CUT = reprlib.Repr()
_CUT.maxstring, _CUT.maxother, _CUT.maxlong, _CUT.maxlevel = 60, 60, 40, 3
_CUT.maxlist = _CUT.maxtuple = _CUT.maxset = _CUT.maxdict = 6


def cut(value: Any) -> str:
    """repr(value), cut to a readable length (long strings keep both ends and say how long they were)."""
    try:
        text = _CUT.repr(value)
    except ValueError:  # an integer too long to print
        return f"an integer of about {int(value.bit_length() * 0.30103):,} digits"
    if isinstance(value, str) and len(value) > _CUT.maxstring:
        text += f" ({len(value):,} characters)"
    return text if len(text) <= 200 else text[:197] + "..."


class _Refused(yaml.YAMLError):
    """YAML that is valid but may not be loaded (aliases expanding beyond the budget, a cycle)."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses a document whose aliases would expand it by more than ALIAS_BUDGET values.

    Aliases share one node, so composing and constructing a "billion laughs" is cheap; what is not is
    everything after (validation, error messages, dumping, hashing), which sees each alias expanded.
    The expansion is counted on the composed node graph, before any Python object is made.
    """

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expansion(root: Any) -> None:
    """Count each node's expanded size (iteratively: the graph may be deep) and refuse beyond the budget."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in size:
            continue
        kids = _children(node)
        if children_done:
            on_path.discard(id(node))
            size[id(node)] = 1 + sum(size[id(k)] for k in kids)
            continue
        if id(node) in on_path:
            raise _Refused(
                "an alias refers to a value that contains it (a cycle); write the value out", node.start_mark
            )
        on_path.add(id(node))
        stack.append((node, True))
        stack += [(k, False) for k in kids if id(k) not in size]
        for k in kids:
            if id(k) in on_path:
                raise _Refused(
                    "an alias refers to a value that contains it (a cycle); write the value out", k.start_mark
                )
    added = size[id(root)] - len(size)  # what aliases add beyond the values written
    if added > ALIAS_BUDGET:
        over = min((n for n in _nodes(root) if size[id(n)] > ALIAS_BUDGET), key=lambda n: size[id(n)])
        raise _Refused(
            f"its aliases expand to {size[id(root)]:,} values from {len(size):,} written, more "
            f'than {ALIAS_BUDGET:,} added (aliases of aliases: a "billion laughs"); write the '
            f"values out",
            over.start_mark,
        )


def _nodes(root: Any) -> list[Any]:
    seen: dict[int, Any] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen[id(node)] = node
            stack += _children(node)
    return list(seen.values())


def read_yaml(text: str) -> Any:
    """YAML as the config reads it: safe types only, aliases within ALIAS_BUDGET. Raises yaml.YAMLError (with
    the line where it can) for text it will not load: invalid, aliases beyond the budget, nested too deep,
    numbers too long."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except RecursionError:
        raise _Refused("nested deeper than it can be read; flatten it", loader.get_mark()) from None
    except ValueError as e:  # e.g. an integer literal of thousands of digits
        text = str(e)
        raise _Refused(
            f"a value cannot be read ({text[:100] + '...' if len(text) > 100 else text})", loader.get_mark()
        ) from None
    finally:
        loader.dispose()


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """['training.lr=1e-4', 'model.path=x'] -> nested dict of overrides; values are read as YAML."""
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {cut(item)}: expected key=value, e.g. training.lr=1e-4")
        try:
            value = read_yaml(raw) if raw.strip() else ""
        except _Refused as e:
            raise ConfigError(f"override {cut(key)}: {e.problem}") from None
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {cut(item)}: {part} was already set to a value")
        node[parts[-1]] = _Literal(value)
    return out


class _Literal:
    """An override's value: it replaces what the YAML has at that key (a mapping too), never merges."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in extra.items():
        if isinstance(v, _Literal):
            merged[k] = v.value
        elif isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = _merge({}, v)
    return merged


def _model_at(path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config section at `path` (() is the whole config), or None if it is not a section."""
    model: type[BaseModel] | None = Config
    parts = [str(p) for p in path]
    while parts:
        part = parts.pop(0)
        if model is Config and part == "backend":  # a union: the section its tag (in an error's loc) names
            model = BACKEND_SECTIONS[parts.pop(0) if parts and parts[0] in BACKEND_SECTIONS else "hf"]
            continue
        field = model.model_fields.get(part) if model else None
        ann = getattr(field, "annotation", None) if field else None
        model = next(
            (a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)),
            None,
        )
    return model


def _shown(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """An error's location as the config spells it: without the backend section's tag."""
    if len(loc) > 1 and loc[0] == "backend" and loc[1] in BACKEND_SECTIONS:
        return loc[:1] + loc[2:]
    return loc


def _fields_of(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The valid keys at the parent of `loc` (for 'did you mean')."""
    parent = _model_at(loc[:-1])
    return list(parent.model_fields) if parent else []


def _describe(err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    shown = _shown(loc)
    key = ".".join(str(p) for p in shown)
    kind = err["type"]
    if not loc:  # a check across sections: its message names the keys
        return err["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        if len(shown) == 2 and shown[0] == "backend" and backend_of_key(str(shown[1])):
            return _other_backends_key(loc, key)
        valid = _fields_of(Config, loc)
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f" — did you mean {'.'.join(map(str, shown[:-1] + (close[0],)))}?" if close else ""
        return f"{key}: unknown key{hint} (valid here: {', '.join(valid)})"
    if kind == "missing":
        return f"{key}: required, add it to the config or pass {key}=..."
    if not loc:  # a rule across sections: its message names the keys
        return err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    got_s = cut(got) if not isinstance(got, dict) else "a mapping"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return f"{key}: {msg} (got {got_s}){_example(loc, key, got)}"


def _other_backends_key(loc: tuple[Any, ...], key: str) -> str:
    """A key of another backend's section: whose it is, and the two ways out."""
    owners = " and the ".join(backend_of_key(str(loc[-1])))
    if loc[1] == "plugin":
        return (
            f"{key}: a key of the {owners} backend's section; backend.name names a plugin's backend, "
            f"whose own settings go under backend.options (docs/plugins.md)"
        )
    return (
        f"{key}: a key of the {owners} backend's section, and backend.name is {loc[1]}: set "
        f"backend.name={backend_of_key(str(loc[-1]))[0]}, or drop {key}"
    )


def _example(loc: tuple[Any, ...], key: str, got: Any) -> str:
    """The fix for a wrong type or value: ' — e.g. key=default', or the keys a section takes."""
    section = _model_at(loc)
    if section is not None:  # a mapping that failed a check has its own fix in the message
        return "" if isinstance(got, dict) else f" — a mapping with keys {', '.join(section.model_fields)}"
    parent = _model_at(loc[:-1])
    field = parent.model_fields.get(str(loc[-1])) if parent else None
    if field is None:
        return ""
    default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
    if default is None or isinstance(default, dict) or repr(default) == "PydanticUndefined":
        return ""
    return f" — e.g. {key}={yaml.safe_dump(default, default_flow_style=True).strip().removesuffix('...').strip()}"


def build_config(data: dict[str, Any], source: str = "<config>") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"config error in {source}: the top level must be a mapping of keys")
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        lines = "\n".join("  " + _describe(err) for err in e.errors())
        raise ConfigError(f"config error in {source}\n{lines}") from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = read_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        if isinstance(e, _Refused):
            raise ConfigError(f"config error in {where}: {e.problem}") from None
        raise ConfigError(f"config error in {where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config error in {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if overrides:
        if not isinstance(data, dict):
            raise ConfigError(f"config error in {path}: the top level must be a mapping of keys")
        data = _merge(data, parse_overrides(overrides))
    return build_config(data, source=str(path))


def dump_config(cfg: Config) -> str:
    """The config as YAML (`plugins` only when set, so the text of a run made without it stays the same)."""
    data = cfg.model_dump(mode="json", exclude=None if cfg.plugins else {"plugins"})
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
