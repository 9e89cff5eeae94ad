"""The experiment config: typed, validated, loaded from YAML with dotted command-line overrides.

Errors name the key, say what was wrong, and how to fix it:

    config error in configs/x.yaml
      training.lr: expected a number, got 'fast' — e.g. training.lr=2e-5

Names of tasks, verifiers, conditions, backends and stopping policies are checked
against the extension dicts by `secondtry.loop.check_names` (this module sits above
them and does not import them).
"""

from __future__ import annotations

import difflib
import math
import reprlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A config that cannot run. The message names the key and the fix."""


GAIN_POLICIES = {"negative_gain", "ci_patience"}  # stopping policies that read a round's measured gain


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=(), allow_inf_nan=False)


# Limits of the sizes a run can be given: far beyond any practical run, well short of exhausting a machine.
MAX_SEED = 2 ** 32 - 1  # numpy's and most libraries' seed range
MAX_STEPS = 1_000_000  # optimizer steps in one round (also after training.steps_growth)
MAX_TOKENS = 1 << 20  # new tokens of one generation; tokens of one training row
MAX_BATCH = 65_536  # sequences generated together; examples or rows a step; accumulation steps
MAX_SAMPLES = 10_000  # samples of one problem
MAX_TURNS = 100  # retry turns
MAX_WORKERS = 1024  # processes, requests in flight
MAX_SECONDS = 86_400.0  # one timeout: a day


class ToyConfig(_Strict):
    retry_error_scale: float = Field(
        1.0, gt=0, le=4, description="the toy teacher's error rate on a retry turn, as a multiple of its first "
                                     "attempts' (1: retries no better than first attempts, a neutral world; below 1 "
                                     "plants an advantage for retrying, which every report then states)")


class ModelConfig(_Strict):
    path: str = Field(description="HF hub id or local folder of a causal LM (or `toy:NAME` for a bundled toy model)")
    toy: ToyConfig | None = Field(None, description="`toy:NAME` models only: the world the toy model is pretrained "
                                                    "in (a different world is a different cached model)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="passed to apply_chat_template, e.g. {enable_thinking: false}")
    system_prompt: str | None = None

    @model_validator(mode="after")
    def _toy_only(self) -> "ModelConfig":
        if self.toy is not None and not self.path.startswith("toy:"):
            raise ValueError(f"model.toy sets how a toy model is pretrained; model.path {self.path!r} is not a "
                             f"toy model (toy:NAME): remove model.toy")
        return self


class TaskConfig(_Strict):
    name: str = Field(description="one of `secondtry ls` tasks")
    path: str | None = Field(None, description="local JSONL file or `datasets` hub id")
    split: str = "train"
    subset: str | None = Field(None, description="hub dataset config name, e.g. `main` for openai/gsm8k")
    limit: int | None = Field(None, ge=1, description="use at most this many problems")
    shuffle: bool = Field(False, description="shuffle (with the run seed) before applying limit")
    instruction: str | None = Field(None, description="text appended to each question; task default if unset")
    columns: dict[str, str] = Field(default_factory=dict,
                                    description="jsonl task: field names for id, question, answer, solution")
    on_bad_row: Literal["error", "skip"] = Field(
        "error", description="a row with a missing or empty field stops the run, or is skipped and counted")
    options: dict[str, Any] = Field(default_factory=dict, description="task-specific options")


class VerifierConfig(_Strict):
    name: str = "math"
    workers: int = Field(2, ge=0, le=MAX_WORKERS,
                         description="worker processes; 0 verifies in this process (no hard timeout)")
    timeout_s: float = Field(
        10.0, gt=0, le=MAX_SECONDS, description="hard limit per verdict; an overrun is 'cannot judge'")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="the verifier's own options, e.g. {extractors: [boxed], compare: "
                                                "hendrycks}; `secondtry ls` lists each verifier's options")
    judge_cut_text: bool = Field(
        False, description="judge generations cut at max_new_tokens on their text, as if they had ended; by "
                           "default a cut generation is incorrect ('cut at length') without being read. Cut "
                           "generations are never kept for training either way")


LAUNCH_PLACEHOLDERS = {
    "model": "the model folder or hub id to serve (the base model with backend.lora)",
    "port": "a free loopback port, one per server", "host": "127.0.0.1",
    "name": "the model name requests use: backend.model_name, else {model}",
    "seed": "the run's seed", "lora_rank": "training.rank (vLLM's --max-lora-rank must be at least this)",
}


class BackendConfig(_Strict):
    name: str = "hf"
    batch_size: int = Field(32, ge=1, le=MAX_BATCH, description="sequences generated together")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    engine: Literal["auto", "on", "off"] = Field(
        "auto", description="hf: the generation engine (docs/engine.md) on a GPU (auto), on any device (on: on a "
                            "CPU its torch path, for checks), or off for transformers generate")
    max_slots: int = Field(
        512, ge=1, le=MAX_BATCH, description="hf engine: sequences decoded together at most")

    @field_validator("engine", mode="before")
    @classmethod
    def _yaml_off(cls, v: Any) -> Any:
        return {False: "off", True: "on"}.get(v, v) if isinstance(v, bool) else v  # YAML reads off/on as bools
    # the openai backend (docs/openai-backend.md)
    endpoints: list[str] = Field(default_factory=list,
                                 description="openai: base URLs of OpenAI-compatible servers, e.g. "
                                             "[http://127.0.0.1:8000/v1]; requests go to the least busy")
    api: Literal["chat", "completions"] = Field(
        "chat", description="openai: send messages (the server applies the chat template) or the prompt "
                            "rendered here with the model's template")
    server: Literal["vllm", "sglang", "transformers", "openai"] = Field(
        "vllm", description="openai: what answers, for the parameters the API lacks (top_k; sampling on "
                            "transformers serve); `openai`: standard parameters only")
    model_name: str | None = Field(None, description="openai: the model name sent; defaults to the model's path")
    api_key_env: str | None = Field(None, description="openai: NAME of the environment variable holding the API key")
    concurrency: int = Field(8, ge=1, le=MAX_WORKERS, description="openai: requests in flight per endpoint")
    request_timeout_s: float = Field(600.0, gt=0, le=MAX_SECONDS,
                                     description="openai: one request's limit; an overrun is retried")
    max_retries: int = Field(
        5, ge=0, le=MAX_TURNS, description="openai: retries of a request after a 429, a 5xx, a timeout or a "
                                           "lost connection")
    retry_backoff_s: float = Field(
        1.0, gt=0, le=3600.0, description="openai: the first retry's wait; it doubles per retry (with "
                                          "jitter, at most 60 s)")
    n_in_request: bool = Field(False, description="openai: ask for a conversation's n samples in one request (vLLM, "
                                                  "SGLang); false: one request per sample, each with its own seed")
    # ---- servers secondtry starts itself (backends/servers.py, docs/openai-backend.md) ------------------
    launch: str | None = Field(
        None, description="openai: the command that starts a server for the model a stage samples, "
                          "instead of backend.endpoints, e.g. `vllm serve {model} --host {host} "
                          "--port {port} --seed {seed}`; placeholders: "
                          + ", ".join(f"{{{p}}}" for p in LAUNCH_PLACEHOLDERS))
    launch_per_gpu: bool = Field(False, description="openai with launch: one server per visible GPU (its "
                                                    "CUDA_VISIBLE_DEVICES), requests spread over them; under "
                                                    "torchrun each process starts the servers of its GPUs")
    launch_timeout_s: float = Field(
        600.0, gt=0, le=MAX_SECONDS, description="openai with launch: how long a started server may take to "
                                                 "answer before the run stops")
    launch_grace_s: float = Field(
        30.0, ge=0, le=MAX_SECONDS, description="openai with launch: seconds between SIGTERM and SIGKILL when "
                                                "a server is stopped")
    launch_env: dict[str, str] = Field(default_factory=dict, description="openai with launch: environment "
                                                                         "variables set for the server")
    lora: bool = Field(False, description="openai: the server runs the base model with LoRA enabled and each "
                                          "round's adapter is loaded through its adapter API (vLLM, SGLang); "
                                          "needs training.merge=false")
    lora_keep_server: bool = Field(True, description="openai with launch and lora: keep the base model's "
                                                     "server running while training (leave training room on "
                                                     "the GPU); false: stop it for training")

    @field_validator("launch_env", mode="before")
    @classmethod
    def _env_as_text(cls, v: Any) -> Any:  # {VLLM_BATCH_INVARIANT: 1}: the environment holds text
        return {str(k): str(x) for k, x in v.items()} if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _openai_has_endpoints(self) -> "BackendConfig":
        if self.name == "openai" and not self.endpoints and not self.launch:
            raise ValueError("the openai backend needs at least one server: set backend.endpoints, e.g. "
                             "backend.endpoints=[http://127.0.0.1:8000/v1], or backend.launch to have one "
                             "started")
        bad = [u for u in self.endpoints if not u.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"backend.endpoints {bad}: each must be a base URL like http://127.0.0.1:8000/v1")
        if self.launch is not None:
            _check_launch(self)
        if self.lora and self.name != "openai":
            raise ValueError("backend.lora loads adapters into the openai backend's servers; "
                             "set backend.name=openai")
        if self.lora and self.server not in ("vllm", "sglang"):
            raise ValueError(f"backend.lora: loading adapters needs vLLM's or SGLang's adapter API; "
                             f"backend.server={self.server} has none (set backend.lora=false: a server per "
                             f"stage on the round's merged model)")
        return self


def _check_launch(b: BackendConfig) -> None:
    """backend.launch: a command with a {port}, known placeholders only, and no fixed endpoints beside it."""
    import string

    if b.name != "openai":
        raise ValueError(f"backend.launch starts servers for the openai backend; set backend.name=openai "
                         f"(now {b.name})")
    if b.endpoints:
        raise ValueError("backend.launch starts the servers and knows their addresses: "
                         "drop backend.endpoints")
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(b.launch or "") if f is not None}
    except ValueError as e:
        raise ValueError(f"backend.launch {b.launch!r}: {e} (a literal brace is written {{{{ or }}}})") \
            from None
    unknown = sorted(used - set(LAUNCH_PLACEHOLDERS))
    braced = ", ".join("{" + u + "}" for u in unknown)
    if unknown:
        raise ValueError(f"backend.launch: unknown placeholder(s) {braced}; "
                         f"known: {', '.join('{' + p + '}' for p in LAUNCH_PLACEHOLDERS)}")
    if "port" not in used:
        raise ValueError("backend.launch must pass {port} to the server (secondtry picks a free port for "
                         "each server), e.g. `... --port {port}`")


def _check_lora_serving(cfg: "Config") -> None:
    """backend.lora samples each round's adapter over the base model: training must leave it unmerged."""
    t, b = cfg.training, cfg.backend
    if not t.merge and t.method != "lora":
        raise ValueError("training.merge=false keeps a LoRA adapter unmerged; training.method=full has none: "
                         "drop training.merge")
    if b.lora and (t.method != "lora" or t.merge):
        raise ValueError("backend.lora: the server loads each round's LoRA adapter over the base model, so "
                         "training must keep the adapter: set training.merge=false (training.method=lora)")
    if b.name == "openai" and not b.lora and not t.merge:
        raise ValueError("training.merge=false leaves each round's model as a LoRA adapter, which the openai "
                         "backend samples only through the server's adapter API: set backend.lora=true "
                         "(vLLM, SGLang), or training.merge=true")
# ---- end of the servers secondtry starts -------------------------------------------------------------------


class SamplingConfig(_Strict):
    temperature: float = Field(0.7, ge=0, le=100.0, description="0 means greedy")
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0, le=MAX_TOKENS, description="0 disables top-k")
    max_new_tokens: int = Field(512, ge=1, le=MAX_TOKENS)


class ConditionsConfig(_Strict):
    first: str = Field("first_attempt", description="builds the first-attempt conversation")
    retry: str = Field("retry", description="builds the retry turn after a failed attempt")
    retry_prompt: str = "Try again carefully."
    retries: int = Field(
        1, ge=0, le=MAX_TURNS, description="retry turns per failed training problem (stops at the first "
                                           "success)")
    samples: int = Field(
        1, ge=1, le=MAX_SAMPLES, description="first attempts per training problem (ReST-EM's K); sample 0 "
                                             "starts the retry chain, the others are kept only with "
                                             "filter.include_first_attempts")
    retry_samples: int = Field(
        1, ge=1, le=MAX_SAMPLES, description="samples drawn at each retry turn of a training problem "
                                             "(resampling-16: 16 fresh samples of each failed problem)")
    history: Literal["all", "last"] = Field(
        "all", description="what a retry sees: every earlier attempt, or only the failed one before it")


class FilterConfig(_Strict):
    require: Literal["answer", "steps"] = Field(
        "answer", description="keep a retry if its final answer is right, or only if every step is right too")
    dedupe: bool = True
    max_per_problem: int = Field(1, ge=1, le=MAX_SAMPLES)
    include_first_attempts: bool = Field(False, description="also train on correct first attempts")
    hint_leaks: Literal["drop", "keep"] = Field(
        "drop", description="retries made with the gold answer in the prompt that name or quote the hint")
    retry_example: Literal["problem", "turn", "both"] = Field(
        "problem", description="what a kept retry trains: problem -> retry; the whole retry turn (problem, "
                               "failed attempt, retry prompt -> retry, loss on the retry only); or both")


class TrainingConfig(_Strict):
    method: Literal["lora", "full"] = "lora"
    rank: int = Field(16, ge=1, le=16_384)
    alpha: int = Field(32, ge=1, le=1_000_000)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"
    lr: float = Field(2e-5, gt=0, le=1.0)
    steps: int = Field(500, ge=1, le=MAX_STEPS, description="optimizer steps per round")
    max_epochs: float | None = Field(
        None, gt=0, le=1e4, description="at most this many passes over the round's training rows: fewer "
                                        "steps when a round has few examples (none: always `steps`)")
    batch_size: int = Field(
        8, ge=1, le=MAX_BATCH, description="examples a step; with packing, packed rows a step")
    grad_accum: int = Field(1, ge=1, le=MAX_BATCH)
    max_length: int = Field(
        2048, ge=8, le=MAX_TOKENS, description="longer examples are truncated; with packing, a row's length")
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    schedule: Literal["cosine", "constant", "linear", "constant_with_warmup"] = "cosine"
    weight_decay: float = Field(0.0, ge=0, le=1.0)
    between_rounds: Literal["continue", "reset"] = Field(
        "continue", description="continue from this round's merged model, or reset to the base model")
    merge: bool = Field(True, description="lora: write the merged model (and the adapter in adapter/); "
                                          "false: only the adapter, earlier rounds' stacked in")
    steps_growth: float = Field(
        1.0, ge=1.0, le=10.0, description="round k trains steps * steps_growth^(k-1) steps (STaR grows them "
                                          "by 20%: 1.2)")
    improve_steps: int = Field(
        1, ge=1, le=MAX_TURNS, description="training passes on a round's examples, each continuing from the "
                                           "last with a fresh optimizer (ReST's improve steps)")
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass: less "
                                                           "memory, about a third more compute")
    packing: bool = Field(True, description="pack examples end to end into rows of up to max_length tokens "
                                            "(batch_size rows a step); each example attends only to itself")
    fsdp: bool = Field(False, description="with several processes, shard weights, gradients and optimizer state "
                                          "over them (FSDP2) instead of copying the model to each (DDP): for "
                                          "models that do not fit one GPU")
    liger: bool | Literal["auto"] = Field(
        "auto", description="Liger kernels (RMSNorm, SwiGLU, RoPE); auto: on a GPU where liger-kernel is installed")
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(
        default_factory=lambda: ["tensorboard"],
        description="training logs for these trackers, each only where its package is installed")


class EvaluationConfig(_Strict):
    greedy: bool = Field(True, description="also score one greedy first attempt per problem")
    samples: int = Field(
        4, ge=1, le=MAX_SAMPLES, description="sampled first attempts per problem (pass@1 mean, pass@k)")
    retry_n: int = Field(
        4, ge=1, le=MAX_TURNS, description="N of pass@N-with-retries: a first attempt plus up to N-1 "
                                           "retries")
    retry: str = Field("retry", description="the retry condition at test time (never one that shows the gold answer)")
    retry_all: bool = Field(False, description="give the first retry turn to every problem, right or wrong, and "
                                               "report wrong->right and right->wrong flips (retrying only the "
                                               "failures uses the verifier as an oracle)")
    validation: int = Field(0, ge=0, description="training problems held out (never trained on) and evaluated "
                                                 "every round; with some, the best round and the gain the "
                                                 "stopping policies see come from them, not from the test set")
    validation_task: TaskConfig | None = Field(
        None, description="a validation split of its own (e.g. MBPP's `validation`), instead of holding "
                          "`validation` training problems out")
    select_on: Literal["validation", "test", "last"] | None = Field(
        None, description="what picks the reported round and feeds the stopping gains: the validation split "
                          "(the default when one is held out); `last`: no choice, the last trained round (the "
                          "default for one-round runs); `test`: the test set, every figure so chosen then marked "
                          "optimistic. A run of several rounds must hold out a validation split or say `test`")
    pass_k: list[int] = Field(default_factory=lambda: [1])
    metric: Literal["pass1_sampled", "pass1_greedy"] = Field(
        "pass1_sampled", description="the accuracy that gains, the stopping policy and best round use")
    sampling: SamplingConfig | None = Field(None, description="defaults to the top-level sampling section")
    bootstrap: int = Field(2000, ge=100, le=1_000_000, description="bootstrap resamples for 95% CIs")

    @model_validator(mode="after")
    def _k_within_samples(self) -> "EvaluationConfig":
        bad = [k for k in self.pass_k if k < 1 or k > self.samples]
        if bad:
            raise ValueError(f"pass_k {bad} must lie in 1..evaluation.samples ({self.samples}); "
                             f"raise evaluation.samples or drop those k")
        if self.metric == "pass1_greedy" and not self.greedy:
            raise ValueError("metric pass1_greedy needs evaluation.greedy=true")
        if self.validation and self.validation_task:
            raise ValueError("hold out evaluation.validation training problems or name an evaluation.validation_task, "
                             "not both")
        if self.select_on == "validation" and not (self.validation or self.validation_task):
            raise ValueError("select_on: validation needs a validation split: set evaluation.validation=N (training "
                             "problems held out) or evaluation.validation_task")
        return self


class StoppingConfig(_Strict):
    policies: list[str] = Field(default_factory=lambda: ["retry_yield", "negative_gain", "max_rounds"])
    min_retry_yield: float = Field(0.15, ge=0, le=1, description="retry_yield: stop below this success rate")
    max_rounds: int = Field(3, ge=1, le=1000)
    patience: int = Field(
        1, ge=1, le=1000, description="ci_patience: stop after this many rounds without a gain whose 95% CI "
                                      "is above zero")
    enforce: bool = Field(True, description="false: record what the policies decide but run every round "
                                            "(to see whether stopping was right)")


class CheckpointConfig(_Strict):
    chunk: int = Field(
        0, ge=0, le=1_000_000, description="problems per generation + verification chunk (a killed stage "
                                           "resumes at its first unfinished chunk); 0: 4 x "
                                           "backend.batch_size")
    train_steps: int = Field(
        50, ge=1, le=MAX_STEPS, description="a training checkpoint every this many optimizer steps; a "
                                            "killed training resumes from the last one")


class PredictionConfig(_Strict):
    text: str = Field("", description="the prediction in words, shown on the experiment page as written")
    gain_pp: float | None = Field(None, ge=-100, le=100, description="the least gain of the headline metric from the "
                                  "base, in percentage points, at the reported round: the page says whether the "
                                  "run bore it out (its CI above it), refuted it (below) or left it open")
    rounds: int | None = Field(None, ge=0, le=1000, description="the number of rounds expected to pay (the reported "
                                                               "round): the page says whether it did")


class Config(_Strict):
    name: str = Field(description="run name; the run directory is run_dir/name")
    description: str = Field("", description="the hypothesis, shown on the experiment page")
    prediction: PredictionConfig = Field(default_factory=PredictionConfig,
                                         description="what the run is expected to show, judged on the page")
    seed: int = Field(42, ge=0, le=MAX_SEED)
    run_dir: str = "runs"
    model: ModelConfig
    train_task: TaskConfig
    eval_task: TaskConfig
    transfer_task: TaskConfig | None = Field(
        None, description="a second test set from another distribution, evaluated every round: gains that are "
                          "only narrowing to the eval task's distribution show up as none here")
    verifier: VerifierConfig = VerifierConfig()
    backend: BackendConfig = BackendConfig()
    sampling: SamplingConfig = SamplingConfig()
    conditions: ConditionsConfig = ConditionsConfig()
    filter: FilterConfig = FilterConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    stopping: StoppingConfig = StoppingConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    plugins: list[str] = Field(
        default_factory=list,
        description="modules to import before the run (and in every verifier worker) that register "
                    "tasks, verifiers, conditions, backends or stopping policies (docs/plugins.md); "
                    "installed, or on PYTHONPATH")

    @field_validator("plugins")
    @classmethod
    def _module_names(cls, v: list[str]) -> list[str]:
        bad = [m for m in v if not all(part.isidentifier() for part in m.split("."))]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))}: not a module name (dotted Python identifiers, "
                             f"e.g. my_package.plugin)")
        return v

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not v or "/" in v or v.startswith("."):
            raise ValueError("must be a plain folder name (no '/', not starting with '.')")
        return v

    @model_validator(mode="after")
    def _selection_is_declared(self) -> "Config":
        ev, rounds = self.evaluation, self.stopping.max_rounds
        if ev.select_on is None and rounds > 1 and not (ev.validation or ev.validation_task):
            raise ValueError(
                f"evaluation.select_on: a run of up to {rounds} rounds picks its best round and decides when to stop "
                f"on an evaluation set, and the test set must not be it: hold out a validation split "
                f"(evaluation.validation=500, or evaluation.validation_task for a task with its own split), or say "
                f"evaluation.select_on=last (report the last round; only max_rounds may stop the run) or "
                f"evaluation.select_on=test (every figure so chosen is marked optimistic)")
        looking = sorted(set(self.stopping.policies) & GAIN_POLICIES)
        if ev.select_on == "last" and rounds > 1 and looking:
            raise ValueError(f"stopping.policies: {', '.join(looking)} decide on a round's gain, which "
                             f"evaluation.select_on=last takes from the test set; hold out a validation split, "
                             f"drop those policies, or say evaluation.select_on=test")
        return self

    @model_validator(mode="after")
    def _lora_serving(self) -> "Config":
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
    def _last_round_steps(self) -> "Config":
        t, rounds = self.training, self.stopping.max_rounds  # round k trains steps * steps_growth^(k-1) steps
        if math.log(t.steps) + (rounds - 1) * math.log(t.steps_growth) > math.log(MAX_STEPS) + 1e-9:
            raise ValueError(f"training.steps={t.steps} grown by training.steps_growth={t.steps_growth} "
                             f"over stopping.max_rounds={rounds} rounds trains more than {MAX_STEPS:,} steps "
                             f"in the last round; lower one of them")
        return self

    @property
    def eval_sampling(self) -> SamplingConfig:
        return self.evaluation.sampling or self.sampling

    @property
    def chunk_size(self) -> int:
        return self.checkpoint.chunk or 4 * self.backend.batch_size  # retries of a chunk still fill a batch or so

    def tasks(self) -> list[tuple[str, TaskConfig]]:
        """(config key, task) of every task the run reads: training, test, validation and transfer if set."""
        validation = self.evaluation.validation_task
        return [("train_task", self.train_task), ("eval_task", self.eval_task),
                *([("evaluation.validation_task", validation)] if validation else []),
                *([("transfer_task", self.transfer_task)] if self.transfer_task else [])]

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir) / self.name


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
            raise _Refused("an alias refers to a value that contains it (a cycle); write the value out",
                           node.start_mark)
        on_path.add(id(node))
        stack.append((node, True))
        stack += [(k, False) for k in kids if id(k) not in size]
        for k in kids:
            if id(k) in on_path:
                raise _Refused("an alias refers to a value that contains it (a cycle); write the value out",
                               k.start_mark)
    added = size[id(root)] - len(size)  # what aliases add beyond the values written
    if added > ALIAS_BUDGET:
        over = min((n for n in _nodes(root) if size[id(n)] > ALIAS_BUDGET), key=lambda n: size[id(n)])
        raise _Refused(f"its aliases expand to {size[id(root)]:,} values from {len(size):,} written, more "
                       f"than {ALIAS_BUDGET:,} added (aliases of aliases: a \"billion laughs\"); write the "
                       f"values out", over.start_mark)


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
        raise _Refused(f"a value cannot be read ({text[:100] + '...' if len(text) > 100 else text})",
                       loader.get_mark()) from None
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
    for part in path:
        field = model.model_fields.get(str(part)) if model else None
        ann = getattr(field, "annotation", None) if field else None
        model = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)),
                     None)
    return model


def _fields_of(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The valid keys at the parent of `loc` (for 'did you mean')."""
    parent = _model_at(loc[:-1])
    return list(parent.model_fields) if parent else []


def _describe(err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc)
    kind = err["type"]
    if not loc:  # a check across sections: its message names the keys
        return err["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        valid = _fields_of(Config, loc)
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f" — did you mean {'.'.join(map(str, loc[:-1] + (close[0],)))}?" if close else ""
        return f"{key}: unknown key{hint} (valid here: {', '.join(valid)})"
    if kind == "missing":
        return f"{key}: required, add it to the config or pass {key}=..."
    if not loc:  # a rule across sections: its message names the keys
        return err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    got_s = cut(got) if not isinstance(got, dict) else "a mapping"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return f"{key}: {msg} (got {got_s}){_example(loc, key, got)}"


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
