"""The experiment: evaluate the base model, then rounds of
first attempts -> retry the failures -> verify -> keep correct retries -> SFT -> evaluate -> stop?

`run()` and `run_round()` read top to bottom; each stage reads and writes the run directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from . import distributed, filtering, training
from .backends import BACKENDS, Sampler, SamplerFactory, backend_options
from .backends.servers import Launcher, ServerError
from .backends.stream import open_stream
from .conditions import CONDITIONS, PRIVILEGED
from .config import Config, ConfigError, SamplingConfig, launches, stage_inputs
from .evaluation.metrics import (
    METRIC_NAMES,
    compare_evals,
    cut_shares,
    eval_record,
    summarize_eval,
    train_figures,
)
from .evaluation.retry import ledger
from .log import Log
from .models import load_tokenizer
from .plugins import load as load_plugins
from .records import (
    Decisions,
    Estimate,
    EvalRecord,
    FilterStats,
    GenerationInfo,
    ImprovePass,
    Ledger,
    PolicyStop,
    R,
    RecordError,
    RoundCost,
    RoundFigures,
    RoundResult,
    RunSummary,
    SplitFigures,
    TrainingInfo,
    round_from_json,
)
from .stopping import STOPPING, StopState, decide
from .store import (
    RunDirError,
    RunStore,
    StageInputs,
    crash_point,
    hash_data,
    iter_rounds,
    read_json,
    read_jsonl,
    write_json,
    write_jsonl,
)
from .tasks import TASKS, TaskDataError
from .types import (
    Attempt,
    Completion,
    Decision,
    Kind,
    Problem,
    Verdict,
    attempt_from_dict,
    example_from_dict,
    to_dict,
)
from .verifiers import CHECKS_STEPS, VERIFIERS, check_options
from .verifiers.pool import Judge, VerifierPool


def run(
    cfg: Config,
    log: Log = Log(),
    allow_change: bool = False,
    eval_only: bool = False,
    then: Callable[[], None] | None = None,
    *,
    make_sampler: SamplerFactory | None = None,
    make_verifier: Callable[[Config], Judge] | None = None,
    warn_cut: bool = True,
) -> list[RoundResult]:
    """The whole experiment (or only round 0's evaluation). Resumes a killed run from its last finished stage.
    `then` (the report) runs last, while the run directory is still locked.

    The components are injected: `make_sampler(model_path, cfg, log, **extra)` builds each model's sampler
    (default: the config's backend), `make_verifier(cfg)` the verifier (default: `verifier_pool`);
    `warn_cut=False` drops the warning about generations cut at the length limit (a benchmark's drawn
    lengths).
    """
    check_names(cfg)
    train_set, eval_sets = load_problems(cfg, log)
    load_tokenizer(cfg.model.path)  # a missing model or chat template fails here, before anything is written
    with (
        RunStore.open(cfg, allow_change, log) as store,
        Models(cfg, log, make_sampler) as models,
        contextlib.closing((make_verifier or verifier_pool)(cfg)) as pool,
    ):
        ctx = Context(cfg, store, models, pool, log, train_set, eval_sets, warn_cut=warn_cut)
        history = [run_base(ctx)]
        model = cfg.model.path
        for k in range(1, 0 if eval_only else cfg.stopping.max_rounds + 1):
            result = run_round(ctx, k, model, history)
            history.append(result)
            if result.trained:
                model = result.model
            if result.decision.stop and (cfg.stopping.enforce or not result.trained):
                break  # an untrained round leaves nothing new to go on from
        write_json(store.root / "summary.json", summarize_run(cfg, history, ctx.ledger(history)).to_json())
        if then is not None:
            then()
    return history


def verifier_pool(cfg: Config) -> VerifierPool:
    """The config's verifier in `verifier.workers` processes, its options checked, its plugins imported."""
    return VerifierPool(
        cfg.verifier.name,
        cfg.verifier.workers,
        cfg.verifier.timeout_s,
        options=check_options(cfg.verifier.name, cfg.verifier.options),
        plugins=cfg.plugins,
    )


def run_round(ctx: Context, k: int, model: str, history: list[RoundResult]) -> RoundResult:
    """One round on `model` (the previous round's): attempts, filter, train, evaluate, decide."""
    cfg, store = ctx.cfg, ctx.store
    attempts_info = ctx.stage(
        f"round_{k}/attempts",
        ctx.inputs("attempts", model, k),
        [store.path(k, "attempts.jsonl")],
        lambda: make_attempts(ctx, k, model),
        GenerationInfo,
    )
    attempts = [attempt_from_dict(d) for d in read_jsonl(store.path(k, "attempts.jsonl"))]
    filter_inputs = {"attempts": store.output_hash(f"round_{k}/attempts"), **stage_inputs(cfg, "sft")}
    examples = ctx.stage(
        f"round_{k}/filter",
        filter_inputs,
        [store.path(k, "sft.jsonl")],
        lambda: make_sft(ctx, k, attempts),
        FilterStats,
    )
    train = train_figures(attempts, cfg.evaluation.bootstrap, cfg.seed, examples)
    train = dataclasses.replace(train, retry_sees=attempts_info.retry_sees or "")
    cost = RoundCost(
        attempts_s=attempts_info.wall_s, **attempts_info.parts("attempts"), filter_s=examples.wall_s
    )
    before = decide(StopState.before_train(k, train, examples), cfg.stopping)
    figures = RoundFigures(train=train, decisions=Decisions(before))
    if before.stop and (cfg.stopping.enforce or not examples.kept):
        return finish_round(ctx, k, model, False, figures, cost, before, attempts_info)

    start = model if cfg.training.between_rounds == "continue" else cfg.model.path
    out, training_info = train_stage(ctx, k, start, examples)
    cost = dataclasses.replace(cost, train_s=training_info.wall_s)

    evaluated, eval_info = evaluate_round(ctx, k, str(out), history)
    cost = dataclasses.replace(cost, eval_s=eval_info.wall_s, **eval_info.parts("eval"))
    figures = dataclasses.replace(evaluated, train=train, decisions=figures.decisions, training=training_info)
    test = figures.test
    training.write_model_card(
        out,
        k,
        cfg,
        training_info.to_json(),
        examples.to_json(),
        {
            **test.eval.to_json(),
            **(
                {}
                if test.comparison is None
                else {
                    "delta_from_base": test.comparison.delta_from_base.to_json(),
                    "delta_from_prev": test.comparison.delta_from_prev.to_json(),
                }
            ),
        },
    )
    on = cfg.gains_on  # the gains the policies see: the validation split's when one is held out
    gains = [g for g in (gain_on(f, on) for f in [*(r.figures for r in history), figures]) if g]
    after = decide(StopState.after_eval(k, train, examples, gains, on, cfg.evaluation.metric), cfg.stopping)
    figures = dataclasses.replace(figures, decisions=Decisions(before, after))
    decision = (
        before if before.stop else after
    )  # with stopping.enforce false, the first reason to stop counts
    return finish_round(ctx, k, str(out), True, figures, cost, decision, attempts_info, eval_info)


def run_base(ctx: Context) -> RoundResult:
    """Round 0: the base model's evaluation, the reference every gain is measured from."""
    figures, info = evaluate_round(ctx, 0, ctx.cfg.model.path, [])
    return finish_round(
        ctx,
        0,
        ctx.cfg.model.path,
        False,
        figures,
        RoundCost(eval_s=info.wall_s, **info.parts("eval")),
        Decision(False, "base model evaluated"),
        None,
        info,
    )


def gain_on(figures: RoundFigures, split: str) -> Estimate | None:
    """A round's gain over the round before on one evaluation set (None for round 0 or an untrained round)."""
    on = figures.on(split)
    return on.delta_from_prev if on is not None else None


# ----------------------------------------------------------------------------- the stages


def make_attempts(ctx: Context, k: int, model: str) -> GenerationInfo:
    """`conditions.samples` first attempts on every training problem, then up to `conditions.retries` retries
    where sample 0 failed."""
    cfg = ctx.cfg
    chains = [
        Chains(
            Kind.FIRST,
            samples=cfg.conditions.samples,
            turns=1 + cfg.conditions.retries,
            retry=cfg.conditions.retry,
            params=cfg.sampling,
            seed=_seed(cfg.seed, "attempts", k),
            retry_samples=cfg.conditions.retry_samples,
        )
    ]
    ctx.take_clock()
    with ctx.log.progress(f"round {k} attempts", len(ctx.train_set), "problems") as bar:
        attempts = in_chunks(ctx, model, ctx.train_set, chains, f"round_{k}/attempts", bar)
    clock = ctx.take_clock()
    write_jsonl(ctx.store.path(k, "attempts.jsonl"), map(to_dict, attempts))
    first_retry = next((a for a in attempts if a.kind == Kind.RETRY), None)
    rendered = ctx.models.get(model).render(first_retry.messages) if first_retry else ""
    return GenerationInfo(sum(a.n_tokens for a in attempts), rendered, **clock)


def make_sft(ctx: Context, k: int, attempts: list[Attempt]) -> FilterStats:
    examples, stats = filtering.select(attempts, ctx.problems, CONDITIONS[ctx.cfg.conditions.first], ctx.cfg)
    crash_point(f"round_{k}/filter:selected")
    write_jsonl(ctx.store.path(k, "sft.jsonl"), (to_dict(e) for e in examples))
    return FilterStats.from_json(stats, f"round_{k}/filter")


def train_stage(ctx: Context, k: int, start: str, examples: FilterStats) -> tuple[Path, TrainingInfo]:
    """Fine-tune on the round's examples: `training.improve_steps` passes (ReST's improve steps), each
    continuing from the last with a fresh optimizer, each a stage of its own; the last writes round_k/model.

    Round k trains `steps * steps_growth^(k-1)` steps a pass (STaR's growing schedule).
    """
    cfg, store = ctx.cfg, ctx.store
    t = cfg.training
    steps = max(1, round(t.steps * t.steps_growth ** (k - 1)))
    passes: list[TrainingInfo] = []
    for i in range(1, t.improve_steps + 1):
        last = i == t.improve_steps
        name, out = (
            (f"round_{k}/train", store.path(k, "model"))
            if last
            else (f"round_{k}/improve_{i}", store.path(k, f"improve_{i}"))
        )
        inputs = {
            "sft": store.output_hash(f"round_{k}/filter"),
            "start": ctx.model_id(start),
            **stage_inputs(cfg, "train"),
            "steps": steps,
            "pass": i,
        }
        passes.append(
            ctx.stage(
                name,
                inputs,
                [out],
                lambda i=i, name=name, start=start, out=out: train_model(
                    ctx, k, i, name, start, out, steps, examples
                ),
                TrainingInfo,
            )
        )
        start = str(out)
    info = dataclasses.replace(passes[-1], wall_s=round(sum(p.wall_s for p in passes), 3))
    if len(passes) > 1:
        info = dataclasses.replace(
            info,
            tokens_trained=sum(p.tokens_trained for p in passes),
            improve_passes=tuple(ImprovePass(p.steps, p.loss_first, p.loss_last, p.wall_s) for p in passes),
        )
    return out, info


def train_model(
    ctx: Context, k: int, i: int, where: str, start: str, out: Path, steps: int, examples_kept: FilterStats
) -> TrainingInfo:
    ctx.models.close()  # free the sampler's memory for training
    cfg = ctx.cfg.model_copy(update={"training": ctx.cfg.training.model_copy(update={"steps": steps})})
    examples = [example_from_dict(d) for d in read_jsonl(ctx.store.path(k, "sft.jsonl"))]
    info = training.train(
        start,
        examples,
        cfg,
        out,
        seed=_seed(cfg.seed, "train", k, *([i] if i > 1 else [])),
        log=ctx.log,
        checkpoints=ctx.store.partial.folder,
        where=where,
        logs=ctx.store.root / "logs" / (f"round_{k}" if i == 1 else f"round_{k}_pass{i}"),
    )
    training.write_model_card(out, k, cfg, info, examples_kept.to_json())
    return TrainingInfo.from_json(info, f"{where}: the trainer's figures")


def evaluate_round(
    ctx: Context, k: int, model: str, history: list[RoundResult]
) -> tuple[RoundFigures, GenerationInfo]:
    """`model` on every evaluation set (test; the validation split and the transfer set when configured):
    rates with CIs and, after round 0, paired gains over the base and the previous round; and the stages'
    time and tokens.
    """
    cfg, ev = ctx.cfg, ctx.cfg.evaluation
    splits: dict[str, SplitFigures] = {}
    info = GenerationInfo()
    for split in ctx.eval_sets:
        records, stage_info = evaluate_stage(ctx, k, model, split)
        info += stage_info
        comparison = None
        if history:  # every earlier round was evaluated
            before_prev = ctx.eval_records(history[-2].round, split) if k >= 2 else None
            comparison = compare_evals(
                ctx.eval_records(0, split),
                before_prev,
                ctx.eval_records(history[-1].round, split),
                records,
                ev.metric,
                ev.bootstrap,
                cfg.seed,
            )
        splits[split] = SplitFigures(
            summarize_eval(records, ev.bootstrap, cfg.seed, ev.retry_n, ev.retry_all), comparison
        )
    return RoundFigures(**splits), info


def evaluate_stage(
    ctx: Context, k: int, model: str, split: str = "test"
) -> tuple[list[EvalRecord], GenerationInfo]:
    """Per-problem evaluation of `model` on one evaluation set (greedy, samples, retry chain)."""
    store, name = ctx.store, eval_name(split)
    outputs = [store.path(k, f"{name}.jsonl"), store.path(k, f"{name}_attempts.jsonl")]
    info = ctx.stage(
        f"round_{k}/{name}",
        ctx.inputs("eval", model, k, split),
        outputs,
        lambda: evaluate(ctx, k, model, split),
        GenerationInfo,
    )
    return ctx.eval_records(k, split), info


def eval_name(split: str) -> str:
    """The evaluation files' stem: eval.jsonl for the test set, eval_<split>.jsonl for the others."""
    return "eval" if split == "test" else f"eval_{split}"


def evaluate(ctx: Context, k: int, model: str, split: str) -> GenerationInfo:
    cfg, ev = ctx.cfg, ctx.cfg.evaluation
    seed = _seed(cfg.seed, "eval")  # the same seed every round: rounds are compared on common noise
    problems = ctx.eval_sets[split]
    chains = (
        [
            Chains(
                Kind.GREEDY,
                samples=1,
                turns=1,
                retry=ev.retry,
                seed=seed,
                name="greedy",
                params=cfg.eval_sampling.model_copy(update={"temperature": 0.0}),
            )
        ]
        if ev.greedy
        else []
    )
    chains.append(
        Chains(
            Kind.SAMPLE,
            samples=ev.samples,
            turns=ev.retry_n,
            retry=ev.retry,
            params=cfg.eval_sampling,
            seed=seed,
            name="samples",
            retry_all=ev.retry_all,
        )
    )
    title = f"round {k} evaluation" + ("" if split == "test" else f" ({split})")
    ctx.take_clock()
    with ctx.log.progress(title, len(problems) * (ev.samples + ev.greedy), "first attempts") as bar:
        transcripts = in_chunks(ctx, model, problems, chains, f"round_{k}/{eval_name(split)}", bar)
    clock = ctx.take_clock()
    by_problem: dict[str, list[Attempt]] = {}
    for a in transcripts:
        by_problem.setdefault(a.problem_id, []).append(a)
    records = []
    for p in problems:
        attempts_of = by_problem[p.id]
        g = next((a for a in attempts_of if a.kind == Kind.GREEDY), None)
        samples = sorted((a for a in attempts_of if a.kind == Kind.SAMPLE), key=lambda a: a.sample)
        chain = [samples[0]] + sorted((a for a in attempts_of if a.kind == Kind.RETRY), key=lambda a: a.turn)
        records.append(eval_record(p.id, g, samples, chain, ev.pass_k))
    write_jsonl(ctx.store.path(k, f"{eval_name(split)}_attempts.jsonl"), map(to_dict, transcripts))
    write_jsonl(ctx.store.path(k, f"{eval_name(split)}.jsonl"), (r.to_json() for r in records))
    return GenerationInfo(sum(a.n_tokens for a in transcripts), **clock)


_KIND_ORDER = {Kind.GREEDY: 0, Kind.FIRST: 1, Kind.SAMPLE: 1, Kind.RETRY: 2}


def in_chunks(
    ctx: Context, model: str, problems: Sequence[Problem], chains: list[Chains], stage: str, progress: Any
) -> list[Attempt]:
    """Every chain of `chains` on every problem, in chunks of `checkpoint.chunk` problems: the attempts.

    Each finished chunk is saved in the stage's partial folder; a chunk an earlier, killed run
    finished is read back instead of generated again. One process streams all its chunks through
    one stream (`Flow`); with several processes chunk c runs on rank c mod world, and after each
    wave of chunks every rank gathers the wave's records. The records come back in one order
    whatever the chunking or the order work finished in: greedy, first attempts or samples, then
    retries by turn; problems in task order.
    """
    size, partial = ctx.cfg.chunk_size, ctx.store.partial
    starts = range(0, len(problems), size)
    done = [c for c in range(len(starts)) if partial.done(c)]
    if done:
        ctx.log.info(f"{partial.stage}: {len(done)} of {len(starts)} chunks finished earlier, kept")
    order = {p.id: i for i, p in enumerate(problems)}

    def canonical(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(
            records, key=lambda r: (_KIND_ORDER[r["kind"]], r["turn"], order[r["problem_id"]], r["sample"])
        )

    def first_attempts(records: list[dict[str, Any]]) -> int:
        return sum(r["turn"] == 0 for r in records)

    records: list[dict[str, Any]] = []
    ranks, me = distributed.world_size(), distributed.rank()
    if ranks == 1:
        todo = []
        for c, start in enumerate(starts):
            kept = partial.chunk(c)
            if kept is None:
                todo.append((c, list(problems[start : start + size])))
            else:
                progress(first_attempts(kept))
                records += kept

        def save(c: int, made: list[Attempt]) -> None:
            chunk = canonical([to_dict(a) for a in made])
            partial.write_chunk(c, chunk)
            records.extend(chunk)

        if todo:
            Flow(ctx, model, chains, stage, progress).run(todo, save)
        return [attempt_from_dict(r) for r in canonical(records)]
    for wave in range(0, len(starts), ranks):  # one chunk per rank, then every rank gathers them all
        c = wave + me
        own, fresh = None, False
        if c < len(starts):
            own = partial.chunk(c)
            if own is None:
                made: list[dict[str, Any]] = []
                Flow(ctx, model, chains, stage, progress).run(
                    [(c, list(problems[starts[c] : starts[c] + size]))],
                    lambda _, chunk, made=made: made.extend(map(to_dict, chunk)),
                )
                own, fresh = canonical(made), True
            else:
                progress(first_attempts(own))
        for theirs_c, theirs, new in distributed.gather((c, own, fresh)):
            if theirs is None:
                continue
            if new:
                partial.write_chunk(theirs_c, theirs)  # rank 0 writes every rank's chunk
            if theirs_c != c:
                progress(first_attempts(theirs))
            records += theirs
    return [attempt_from_dict(r) for r in canonical(records)]


@dataclasses.dataclass(frozen=True)
class Chains:
    """One kind of attempt chain, run on every problem of a stage: `samples` first attempts (`first_kind`);
    sample 0 gets up to `turns - 1` retry turns (condition `retry`) while it fails (with `retry_all`, the
    first retry turn goes to every problem, right or wrong). A retry turn draws `retry_samples` samples;
    the chain goes on from sample 0 while none of them is right. Sample j of problem p at turn t is seeded
    by (seed, t, p.id, j): the same whatever else is generated beside it. `name` tells its crash points
    apart from the stage's other chains."""

    first_kind: Kind
    samples: int
    turns: int
    retry: str
    params: SamplingConfig
    seed: int
    name: str = ""
    retry_all: bool = False
    retry_samples: int = 1


@dataclasses.dataclass
class _Chain:
    """One problem's chain in flight: its attempts so far and the failed completions a retry shows."""

    chunk: int
    chains: int  # index into Flow.chains
    problem: Problem
    turn: int = 0
    failed: list[str] = dataclasses.field(default_factory=list)
    solved: bool = False
    conversation: tuple = ()


class Flow:
    """A generation stage's chunks through one stream (backends/stream.py), verified beside it.

    First attempts of a chunk are submitted (the next chunk too, while the stream wants more work);
    each request's completions go to the verifier as soon as they are all back, on a thread of their
    own when the stream runs ahead (the engine decodes while the pool judges); a verdict that ends a
    chain's turn in failure submits its retry at once. A chunk whose chains have all ended is handed
    to `save`. Crash points: `<stage>:chunk<c>[:<name>]:turn<t>:generated` once a turn's generations
    of a chunk are all back, `...:verified` once they are all judged.
    """

    def __init__(self, ctx: Context, model: str, chains: list[Chains], stage: str, progress: Any) -> None:
        self.ctx, self.model, self.chains, self.stage, self.progress = ctx, model, chains, stage, progress
        cfg = ctx.cfg
        self.first = CONDITIONS[cfg.conditions.first]
        self.open: dict[int, int] = {}  # chunk -> chains still running
        self.made: dict[int, list[Attempt]] = {}
        self.turns: dict[
            tuple[int, int, int], list[int]
        ] = {}  # (chunk, chains, turn) -> [sent, back, judged]
        self.closed: set[tuple[int, int, int]] = set()  # turns to which no more requests come
        self.said: set[tuple[int, int, int, str]] = set()  # (chunk, chains, turn, point) passed

    def run(self, todo: list[tuple[int, list[Problem]]], save: Callable[[int, list[Attempt]], None]) -> None:
        ctx = self.ctx
        with ctx.timed("load_s"):
            sampler = ctx.models.get(self.model)
        first_convs = [self.first(p, [], ctx.cfg) for _, chunk in todo for p in chunk]
        stream = open_stream(
            sampler,
            [c.params for c in self.chains],
            first=first_convs,
            turns=max(c.turns for c in self.chains),
            progress=self.progress,
        )
        # beside the engine on a thread of its own, when the verifier's work happens in other processes
        checker = Checker(
            lambda items: judge(ctx, items),
            background=stream.lookahead and bool(getattr(ctx.pool, "threaded", False)),
        )
        waiting = list(todo)
        try:
            while True:
                if waiting and (not self.open or (stream.lookahead and stream.wants_more())):
                    c, chunk = waiting.pop(0)
                    self._start(stream, c, chunk)
                    continue
                with ctx.timed("verify_s"):  # waves: the turn's verdicts; beside the engine: what is done
                    judged = checker.ready(block=False)
                if not judged:
                    if stream.busy():
                        with ctx.timed("generate_s"):
                            back = stream.poll()
                        for tag, completions in back:
                            self._generated(tag, completions, checker)
                        continue
                    if not checker.pending():
                        if self.open or waiting:
                            raise RuntimeError(
                                f"{self.stage}: work left that nothing is generating or judging"
                            )
                        return
                    with ctx.timed("verify_s"):
                        judged = checker.ready(block=True)
                for tag, verdicts in judged:
                    self._judged(tag, verdicts, stream, save)
        finally:
            checker.close()
            stream.close()

    def _start(self, stream: Any, c: int, chunk: list[Problem]) -> None:
        self.open[c], self.made[c] = len(chunk) * len(self.chains), []
        for i in range(len(self.chains)):
            self.closed.add((c, i, 0))
            for p in chunk:
                self._submit(stream, _Chain(c, i, p))

    def _submit(self, stream: Any, chain: _Chain) -> None:
        spec, cfg, p = self.chains[chain.chains], self.ctx.cfg, chain.problem
        if chain.turn == 0:
            chain.conversation = tuple(self.first(p, [], cfg))
        else:
            chain.conversation = tuple(CONDITIONS[spec.retry](p, chain.failed, cfg))
        n = spec.samples if chain.turn == 0 else spec.retry_samples
        self.turns.setdefault((chain.chunk, chain.chains, chain.turn), [0, 0, 0])[0] += 1
        stream.submit(
            chain,
            chain.conversation,
            spec.params,
            n=n,
            seed=_seed(spec.seed, chain.turn),
            key=p.id,
            counts=chain.turn == 0,
        )

    def _where(self, c: int, i: int, turn: int) -> str:
        name = self.chains[i].name
        return f"{self.stage}:chunk{c}{':' + name if name else ''}:turn{turn}"

    def _turn_check(self, c: int, i: int, turn: int) -> None:
        """The crash points of a turn whose requests are all back, or all judged."""
        sent, back, judged = self.turns[(c, i, turn)]
        if (c, i, turn) not in self.closed:
            return
        if back == sent and sent and (c, i, turn, "generated") not in self.said:
            self.said.add((c, i, turn, "generated"))
            crash_point(f"{self._where(c, i, turn)}:generated")
        if judged == sent and sent and (c, i, turn, "verified") not in self.said:
            self.said.add((c, i, turn, "verified"))
            crash_point(f"{self._where(c, i, turn)}:verified")
            self.closed.add((c, i, turn + 1))  # every request of the next turn has been sent
            if (c, i, turn + 1) in self.turns:
                self._turn_check(c, i, turn + 1)

    def _generated(self, chain: _Chain, completions: list[Completion], checker: Checker) -> None:
        self.turns[(chain.chunk, chain.chains, chain.turn)][1] += 1
        self._turn_check(chain.chunk, chain.chains, chain.turn)
        checker.put((chain, completions), [(chain.problem, c) for c in completions])

    def _judged(
        self, tag: tuple, verdicts: list[Verdict], stream: Any, save: Callable[[int, list[Attempt]], None]
    ) -> None:
        chain, completions = tag
        spec, p, turn = self.chains[chain.chains], chain.problem, chain.turn
        kind = spec.first_kind if turn == 0 else Kind.RETRY
        drawn = [
            Attempt(p.id, kind, turn, s, chain.conversation, c.text, c.n_tokens, c.finish_reason, v)
            for s, (c, v) in enumerate(zip(completions, verdicts))
        ]
        self.made[chain.chunk] += drawn
        if turn == 0 and not _failed(drawn[0]):
            chain.solved = True  # with retry_all it still gets one retry turn, and its chain ends there
        elif turn > 0 and any(a.verdict.correct is True for a in drawn):
            chain.solved = True  # one right sample of a retry turn ends the chain
        goes_on = (_failed(drawn[0]) and not chain.solved) or (
            spec.retry_all and turn == 0
        )  # sample 0 carries it
        self.turns[(chain.chunk, chain.chains, turn)][2] += 1
        if goes_on and turn + 1 < spec.turns:
            chain.failed, chain.turn = chain.failed + [drawn[0].completion], turn + 1
            self._submit(stream, chain)
        else:
            self.open[chain.chunk] -= 1
        self._turn_check(chain.chunk, chain.chains, turn)
        if self.open[chain.chunk] == 0:
            del self.open[chain.chunk]
            save(chain.chunk, self.made.pop(chain.chunk))


class Checker:
    """Verification of generated requests, in order of arrival: on a thread of its own beside the generation
    (`background`), or in one pool call when asked for its results (the order `generate` waves had)."""

    def __init__(
        self, judge_items: Callable[[list[tuple[Problem, Completion]]], list[Verdict]], background: bool
    ) -> None:
        self.judge_items = judge_items
        self.todo: list[tuple[Any, list[tuple[Problem, Completion]]]] = []
        self.done: list[tuple[Any, list[Verdict]]] = []
        self.error: BaseException | None = None
        self.lock = threading.Condition()
        self.busy = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._work, daemon=True) if background else None
        if self.thread is not None:
            self.thread.start()

    def put(self, tag: Any, items: list[tuple[Problem, Completion]]) -> None:
        with self.lock:
            self.todo.append((tag, items))
            self.lock.notify_all()

    def pending(self) -> bool:
        with self.lock:
            return bool(self.todo or self.done or self.busy)

    def ready(self, block: bool) -> list[tuple[Any, list[Verdict]]]:
        """The verdicts of finished requests; with `block`, waits until there are some (if any are pending)."""
        if self.thread is None:
            batch, self.todo = self.todo, []
            return self._judge(batch) if batch else []
        with self.lock:
            while block and not self.done and (self.todo or self.busy) and self.error is None:
                self.lock.wait()
            if self.error is not None:
                raise self.error
            out, self.done = self.done, []
            return out

    def _work(self) -> None:
        while True:
            with self.lock:
                while not self.todo and not self.stopping:
                    self.lock.wait()
                if self.stopping:
                    return
                batch, self.todo = self.todo, []
                self.busy = len(batch)
            try:
                out = self._judge(batch)
            except BaseException as e:  # handed to the stage's thread, which raises it
                with self.lock:
                    self.error, self.busy = e, 0
                    self.lock.notify_all()
                return
            with self.lock:
                self.done += out
                self.busy = 0
                self.lock.notify_all()

    def _judge(
        self, batch: list[tuple[Any, list[tuple[Problem, Completion]]]]
    ) -> list[tuple[Any, list[Verdict]]]:
        """One verifier call for the batch's items; the verdicts handed back per request."""
        verdicts = iter(self.judge_items([item for _, items in batch for item in items]))
        return [(tag, [next(verdicts) for _ in items]) for tag, items in batch]

    def close(self) -> None:
        if self.thread is not None:
            with self.lock:
                self.stopping = True
                self.lock.notify_all()
            self.thread.join()


CUT = "cut at length"  # the reason of a generation that ran to max_new_tokens: it has no ending to judge


def judge(ctx: Context, items: list[tuple[Problem, Completion]]) -> list[Verdict]:
    """Verdicts in item order. A generation cut at max_new_tokens is incorrect ("cut at length") without being
    read, unless `verifier.judge_cut_text`; either way its verdict records the finish reason."""
    cut = [c.finish_reason == "length" for _, c in items]
    read = [(p, c.text) for (p, c), x in zip(items, cut) if ctx.cfg.verifier.judge_cut_text or not x]
    verdicts = iter(ctx.pool.map(read))
    out = []
    for _, x in zip(items, cut):
        if not x:
            out.append(next(verdicts))
        elif ctx.cfg.verifier.judge_cut_text:
            v = next(verdicts)
            out.append(dataclasses.replace(v, details={**(v.details or {}), "finish_reason": "length"}))
        else:
            out.append(Verdict(False, None, CUT, details={"finish_reason": "length"}))
    return out


def _failed(a: Attempt) -> bool:
    return a.verdict.correct is False  # "cannot judge" is not retried: its retry could not be judged either


def finish_round(
    ctx: Context,
    k: int,
    model: str,
    trained: bool,
    figures: RoundFigures,
    cost: RoundCost,
    decision: Decision,
    attempts_info: GenerationInfo | None,
    eval_info: GenerationInfo | None = None,
) -> RoundResult:
    """Add the cost, write round.json, tell the user."""
    generated = sum(i.tokens_generated for i in (attempts_info, eval_info) if i is not None)
    cost = dataclasses.replace(
        cost,
        tokens_generated=generated,
        device=device_name(),
        tokens_trained=figures.training.tokens_trained if figures.training else 0,
    )
    result = RoundResult(k, model, trained, figures, cost, decision)
    write_json(ctx.store.path(k, "round.json"), result.to_json())
    if ctx.warn_cut:
        warn_if_cut(ctx, k, figures)
    said = figures_said(ctx.cfg.evaluation.metric, figures)
    observed = decision.stop and trained and not ctx.cfg.stopping.enforce and k < ctx.cfg.stopping.max_rounds
    ctx.log.info(
        f"round {k}: {said + '; ' if said else ''}{decision.reason}"
        + (f" [{decision.policy}]" if decision.policy else "")
        + (": the policies would stop here; going on (stopping.enforce: false)" if observed else "")
    )
    return result


def figures_said(metric: str, figures: RoundFigures) -> str:
    """A round's headline figures for the log, each naming its metric and set: "sampled pass@1 72.3% on the
    test set, +4.1 pp from the base; on the validation split +3.0 pp from the round before"."""
    if figures.test is None:
        return ""
    name = METRIC_NAMES.get(metric, metric)
    out = f"{name} {figures.test.eval[metric].value:.1%} on the test set"
    if figures.test.delta_from_base:
        out += f", {figures.test.delta_from_base.value * 100:+.1f} pp from the base"
    prev = figures.validation.delta_from_prev if figures.validation else None
    if prev:
        out += f"; on the validation split {prev.value * 100:+.1f} pp from the round before"
    return out


CUT_WARNING = 0.25  # share of generations cut at the length limit above which a round warns


def warn_if_cut(ctx: Context, k: int, figures: RoundFigures) -> None:
    """A cut generation has no final answer and is judged wrong: many of them mean the length limit is too
    low for this model, or the model does not end its turns (its EOS)."""

    def described(name: str) -> str:  # the set, and the length limit its generations ran under
        if name == "training attempts":
            return f"{name} (at {ctx.cfg.sampling.max_new_tokens} new tokens)"
        return f"{name} evaluation (at {ctx.cfg.eval_sampling.max_new_tokens} new tokens)"

    cut = [
        f"{share:.0%} of the {described(name)}" for name, share in cut_shares(figures) if share > CUT_WARNING
    ]
    if cut:
        ctx.log.warn(
            f"round {k}: {', '.join(cut)} ran to the length limit and were judged without an ending: raise "
            "max_new_tokens, or check that the model ends its turns (its EOS token)"
        )


def summarize_run(cfg: Config, history: list[RoundResult], ledger: Ledger | None = None) -> RunSummary:
    """The reported round and why the run stopped.

    The reported round (`best_round`) is chosen as `evaluation.select_on` says (`chosen_on`): the best round on
    the held-out validation split, so the test figure reported for it (`best_value`) is not the maximum of
    several looks at the test set; `last`: the last evaluated round, no choice made; `test`: the best round on
    the test set itself, which overstates it whenever there was more than one round to choose from
    (`optimistic`). With `stopping.enforce: false` the run goes on past a stop decision; `policy_stop` then
    names the round where the policies would have stopped it.
    """
    metric, on = cfg.evaluation.metric, cfg.selection
    evaluated = [r for r in history if r.figures.evaluated]

    def value_on(r: RoundResult) -> float:
        figures = r.figures.on(on)
        return figures.eval[metric].value if figures else float("-inf")

    if on == "last":
        best = evaluated[-1]
    else:
        best = max(
            (r for r in evaluated if r.figures.on(on) is not None), key=lambda r: (value_on(r), -r.round)
        )
    first_stop = next((r for r in history if r.decision.stop), history[-1])
    best_eval = best.figures.eval
    assert best_eval is not None  # an evaluated round
    validation = best.figures.validation if on == "validation" else None
    return RunSummary(
        name=cfg.name,
        metric=metric,
        best_round=best.round,
        best_model=best.model,
        best_value=best_eval[metric],
        chosen_on=on,
        optimistic=on == "test" and len(evaluated) > 1,
        best_validation=validation.eval[metric] if validation else None,
        rounds=len(history) - 1,  # round_k beyond: stale
        stopped=history[-1].decision.reason,
        stopped_by=history[-1].decision.policy,
        policy_stop=PolicyStop(
            first_stop.round, first_stop.decision.reason, first_stop.decision.policy, cfg.stopping.enforce
        ),
        ledger=dataclasses.replace(ledger, per_problem=None) if ledger else None,
    )


# ----------------------------------------------------------------------------- plumbing


class Context:
    """What every stage needs: the config, the run directory, the model in memory, the verifier."""

    def __init__(
        self,
        cfg: Config,
        store: RunStore,
        models: Models,
        pool: Judge,
        log: Log,
        train_set: list[Problem],
        eval_sets: dict[str, list[Problem]],
        warn_cut: bool = True,
    ) -> None:
        self.cfg, self.store, self.models, self.pool, self.log = cfg, store, models, pool, log
        self.warn_cut = warn_cut  # warn when many generations ran to the length limit
        self.train_set, self.eval_sets = (
            train_set,
            eval_sets,
        )  # eval_sets: test, then validation, transfer if any
        self.problems = {p.id: p for p in train_set}
        self.clock: dict[str, float] = {}  # seconds a stage spent loading models, generating and verifying
        self.resumed = False  # said where a resumed run takes up its work
        self._hashes = {
            "train": _hash_problems(train_set),
            **{k: _hash_problems(v) for k, v in eval_sets.items()},
        }

    @contextlib.contextmanager
    def timed(self, part: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.clock[part] = self.clock.get(part, 0.0) + time.perf_counter() - start

    def take_clock(self) -> dict[str, float]:
        """The stage's load/generate/verify seconds so far (this process's), and a fresh clock."""
        parts, self.clock = {k: round(v, 3) for k, v in self.clock.items()}, {}
        return parts

    def ledger(self, history: list[RoundResult]) -> Ledger | None:
        """Which problems each evaluated round solves, first solves and forgets; per problem in ledger.json."""
        evaluated = [r.round for r in history if r.figures.evaluated]
        if len(evaluated) < 2:
            return None
        book = ledger([self.eval_records(k) for k in evaluated], metric="greedy")  # sample mean if no greedy
        book = dataclasses.replace(book, rounds=tuple(evaluated))
        write_json(self.store.root / "ledger.json", book.to_json())
        return book

    def model_id(self, model: str) -> str:
        """The base model's path, or the content hash of a model this run trained."""
        path = Path(model)
        if path.parent.parent == self.store.root and path.name == "model":
            return self.store.output_hash(f"{path.parent.name}/train") or model
        return model

    def inputs(self, stage: str, model: str, k: int, split: str = "test") -> StageInputs:
        """What a generation stage's records depend on (and nothing else: a change reruns the stage): the
        config values whose fields say they feed it (`config.stage_inputs`), and what is made from others
        (`via`): the model's id, the problems' hash, the chunk size."""
        made = {
            "model": self.model_id(model),
            "chunk": self.cfg.chunk_size,
        }  # which problems share a batch: float rounding on a GPU
        if stage == "attempts":
            return {**made, **stage_inputs(self.cfg, stage), "problems": self._hashes["train"], "round": k}
        return {**made, **stage_inputs(self.cfg, stage), "problems": self._hashes[split]}

    def stage(
        self, name: str, inputs: StageInputs, outputs: list[Path], run: Callable[[], R], reads: type[R]
    ) -> R:
        """`RunStore.stage`, telling the user when a finished stage is skipped on resume, and where a resumed
        run takes up its work. `run` returns the stage's record (`reads`), kept in the manifest as JSON with
        the stage's wall time, and read back from there, also when the stage is skipped."""

        def go() -> dict[str, Any]:
            if self.store.skipped and not self.resumed:
                self.resumed = True
                where = name.replace("round_", "round ").replace("/", ", stage ")
                self.log.info(f"resumed at {where} ({len(self.store.skipped)} finished stages kept)")
            return run().to_json()

        with self.models.stage(name):
            info = self.store.stage(name, inputs, outputs, go)
        if self.store.skipped[-1:] == [name]:
            self.log.info(f"{name}: finished earlier with the same inputs, skipped")
        return reads.from_json(info, f"manifest.json: stage {name}")

    def eval_records(self, k: int, split: str = "test") -> list[EvalRecord]:
        return read_eval_records(self.store.path(k, f"{eval_name(split)}.jsonl"))


class Models:
    """One sampler in memory at a time, loaded on first use of a model; with `backend.launch`, the servers
    it samples from (backends/servers.py): started for a stage's model, stopped when the stage ends."""

    def __init__(self, cfg: Config, log: Log, make_sampler: SamplerFactory | None = None) -> None:
        self.cfg, self.log, self.path = cfg, log, None
        self.sampler: Sampler | None = None
        self.make = make_sampler or BACKENDS[cfg.backend.name]
        self.servers = Launcher(cfg, log) if launches(cfg) else None

    def get(self, path: str) -> Sampler:
        if path != self.path:
            self._close_sampler()
            self.log.info(f"loading {path}")
            extra = {"servers": self.servers} if self.servers is not None else {}
            self.sampler, self.path = self.make(path, self.cfg, self.log, **extra), path
        return self.sampler

    @contextlib.contextmanager
    def stage(self, name: str):
        """While stage `name` runs: launched servers log to logs/server-<stage>.log and stop at its end."""
        if self.servers is None:
            yield
            return
        self.servers.begin_stage(name)
        try:
            yield
        finally:
            self.servers.end_stage()

    def close(self) -> None:
        """Free the devices for training."""
        self._close_sampler()
        if self.servers is not None:
            self.servers.release()

    def _close_sampler(self) -> None:
        if self.sampler is not None:
            self.sampler.close()
        self.sampler = self.path = None

    def __enter__(self) -> Models:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._close_sampler()
        if self.servers is not None:
            self.servers.stop()


def check_names(cfg: Config) -> None:
    """Every name in the config refers to an entry of its extension dict (after importing its plugins)."""
    load_plugins(cfg.plugins)
    checks = [
        *((f"{key}.name", task.name, TASKS) for key, task in cfg.tasks()),
        ("verifier.name", cfg.verifier.name, VERIFIERS),
        ("backend.name", cfg.backend.name, BACKENDS),
        ("conditions.first", cfg.conditions.first, CONDITIONS),
        ("conditions.retry", cfg.conditions.retry, CONDITIONS),
        ("evaluation.retry", cfg.evaluation.retry, CONDITIONS),
    ]
    checks += [(f"stopping.policies[{i}]", p, STOPPING) for i, p in enumerate(cfg.stopping.policies)]
    bad = [
        f"  {key}: unknown name {name!r}; choose one of {', '.join(table)}"
        for key, name, table in checks
        if name not in table
    ]
    try:
        cfg._selection_is_declared()  # again: a plugin's stopping policy may read the gain
    except ValueError as e:
        bad.append(f"  {e}")
    if cfg.evaluation.retry in PRIVILEGED:
        bad.append(
            f"  evaluation.retry: {cfg.evaluation.retry!r} shows the gold answer; test-time retries use "
            f"`retry`"
        )
    if cfg.verifier.name in VERIFIERS:
        try:
            check_options(cfg.verifier.name, cfg.verifier.options)
        except ValueError as e:
            bad.extend(f"  {line}" for line in str(e).splitlines())
    if cfg.backend.name in BACKENDS:
        try:
            backend_options(cfg)
        except ValueError as e:
            bad.extend(f"  {line}" for line in str(e).splitlines())
    if launches(cfg):
        try:
            Launcher(cfg).argv(0)  # the server command can be found
        except ServerError as e:
            bad.append(f"  {e}")
    if cfg.filter.retry_example != "problem" and cfg.conditions.retry in PRIVILEGED:
        shows = PRIVILEGED[cfg.conditions.retry]
        bad.append(
            f"  filter.retry_example: `{cfg.filter.retry_example}` trains on the retry's "
            f"conversation, which under {cfg.conditions.retry!r} shows the {shows}; use `problem`"
        )
    if cfg.filter.require == "steps" and cfg.verifier.name not in CHECKS_STEPS:
        bad.append(
            f"  filter.require: `steps` needs a verifier that checks steps ({', '.join(sorted(CHECKS_STEPS))}); "
            f"{cfg.verifier.name!r} checks answers only — use filter.require=answer"
        )
    if bad:
        raise ConfigError("config error\n" + "\n".join(bad))


def load_problems(cfg: Config, log: Log) -> tuple[list[Problem], dict[str, list[Problem]]]:
    """The training problems and the evaluation sets, loaded and checked before anything is written.

    Evaluation sets: "test" (eval_task); "validation" (`evaluation.validation` training problems,
    drawn with the run seed and removed from training, or `evaluation.validation_task`) and "transfer"
    (transfer_task) when configured.
    """
    loaded = {}
    for key, task in cfg.tasks():
        try:
            problems = TASKS[task.name](task, cfg.seed)
        except TaskDataError as e:
            raise TaskDataError(f"{key}: {e}") from None
        skipped = getattr(problems, "skipped", 0)
        if skipped:
            log.warn(f"{key}: skipped {skipped} bad rows, e.g. {problems.skip_reasons[0]}")
        log.info(f"{key}: {len(problems)} problems ({task.name})")
        loaded[key] = list(problems)
    train, n_val = loaded["train_task"], cfg.evaluation.validation
    if n_val >= len(train):
        raise ConfigError(
            f"evaluation.validation={n_val} would hold out all {len(train)} training problems; hold out fewer"
        )
    held = set(random.Random(_seed(cfg.seed, "validation")).sample(range(len(train)), n_val))
    sets = {"test": loaded["eval_task"]}
    if held:
        sets["validation"] = [p for i, p in enumerate(train) if i in held]
        train = [p for i, p in enumerate(train) if i not in held]
        log.info(f"validation: {n_val} training problems held out (never trained on)")
    if cfg.evaluation.validation_task:
        sets["validation"] = loaded["evaluation.validation_task"]
        overlap = {p.id for p in sets["validation"]} & {p.id for p in train}
        if overlap:
            raise ConfigError(
                f"evaluation.validation_task shares {len(overlap)} problem ids with train_task (e.g. "
                f"{sorted(overlap)[0]!r}): a validation split must be held out of training"
            )
    if cfg.transfer_task:
        sets["transfer"] = loaded["transfer_task"]
    return train, sets


def device_name() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    return f"cpu ({os.cpu_count()} cores)"


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "little")


def _hash_problems(problems: list[Problem]) -> str:
    return hash_data([to_dict(p) for p in problems])


def load_history(root: Path) -> list[RoundResult]:
    """The round.json records of a run, in order; rounds beyond the last run's (summary.json) are stale."""
    summary = Path(root) / "summary.json"
    last = read_json(summary)["rounds"] if summary.exists() else None
    return [
        read_round(p / "round.json")
        for k, p in iter_rounds(root)
        if (p / "round.json").exists() and (last is None or k <= last)
    ]


def read_round(path: Path) -> RoundResult:
    """One round.json (of any version so far) as its record; a malformed one is a RunDirError naming the key."""
    try:
        return round_from_json(read_json(path), str(path))
    except RecordError as e:
        raise RunDirError(str(e)) from None


def read_eval_records(path: Path) -> list[EvalRecord]:
    """One eval*.jsonl as its records; a malformed line is a RunDirError naming the file and the line."""
    try:
        return [EvalRecord.from_json(d, f"{path}: line {i}") for i, d in enumerate(read_jsonl(path), 1)]
    except RecordError as e:
        raise RunDirError(str(e)) from None
