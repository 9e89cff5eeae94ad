"""What a round produces, typed: estimates, evaluation and training figures, cost, the round, the run's summary.

The stages build these records and the reports read them by attribute, so a renamed figure breaks at
its every reader when the code is checked, not when a run is reported. The run directory keeps them as
JSON (round.json, summary.json, ledger.json): `Record.to_json` writes a record as the same keys in the
same order the loop wrote before records were typed, and `Record.from_json` reads it back, naming the
file and the key that is missing or malformed. round.json carries a `version` (ROUND_VERSION);
`round_from_json` reads every version so far (none: the first, whose keys are the same).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import types as pytypes
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .types import Decision, decision_from_dict

ROUND_VERSION = 2  # round.json's format; files without a version are version 1 (the same keys)
OMIT: Mapping[str, bool] = {"omit_none": True}  # field metadata: a None value is left out of the JSON

R = TypeVar("R", bound="Record")


class RecordError(ValueError):
    """A run directory's JSON that does not hold the record it should: names the file and the key."""


class Record:
    """A frozen dataclass written to and read from JSON by its fields, in their order."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none"):
                continue
            out[f.name] = _dump(value)
        return out

    @classmethod
    def from_json(cls: type[R], data: Any, where: str = "") -> R:
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise RecordError(f"{where or cls.__name__}: expected an object, got {type(data).__name__}")
        hints = _hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in data:
                kwargs[f.name] = _load(hints[f.name], data[f.name], _at(where, f.name))
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RecordError(f"{_at(where, f.name)}: missing")
        return cls(**kwargs)


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _dump(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, Decision):
        return dataclasses.asdict(value)
    if isinstance(value, (tuple, list)):
        return [_dump(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _dump(v) for k, v in value.items()}
    return value


def _load(tp: Any, value: Any, where: str) -> Any:
    """A JSON value as the annotated type: records, Decisions, tuples and mappings of them."""
    if value is None:
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, pytypes.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _load(inner[0], value, where) if len(inner) == 1 else value
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp.from_json(value, where)
    if tp is Decision:
        if not isinstance(value, Mapping) or "stop" not in value or "reason" not in value:
            raise RecordError(f"{where}: expected a decision (stop, reason)")
        return decision_from_dict(value)
    if origin is tuple:
        if not isinstance(value, list):
            raise RecordError(f"{where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_load(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        return tuple(value)
    if origin in (collections.abc.Mapping, dict):
        if not isinstance(value, Mapping):
            raise RecordError(f"{where}: expected an object, got {type(value).__name__}")
        return {k: _load(args[1], v, _at(where, k)) for k, v in value.items()} if args else dict(value)
    return value


# ----------------------------------------------------------------------------- estimates


@dataclass(frozen=True)
class Estimate(Record):
    """A figure with its 95% CI over problems (or seeds): value None where it is undefined."""

    value: float | None
    ci: tuple[float | None, float | None]
    n: int

    @property
    def defined(self) -> bool:
        return self.value is not None

    def excludes_zero(self) -> bool:
        """The CI lies wholly above or below 0."""
        lo, hi = self.ci
        return self.value is not None and lo is not None and hi is not None and (lo > 0 or hi < 0)

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> Estimate:  # type: ignore[override]
        """The estimate's own class, by the keys it holds: a rate or delta (method), a ratio (draws or reason)."""
        if cls is Estimate and isinstance(data, Mapping):
            if "draws" in data or "reason" in data:
                return Record.from_json.__func__(Ratio, data, where)  # type: ignore[attr-defined]
            if "method" in data:
                return Record.from_json.__func__(Rate, data, where)  # type: ignore[attr-defined]
        return Record.from_json.__func__(cls, data, where)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Rate(Estimate):
    """A rate or a paired difference of rates, and the method of its CI (wilson, bootstrap, newcombe; None when
    there were no problems)."""

    method: str | None = None


@dataclass(frozen=True)
class Ratio(Estimate):
    """A statistic of several means (decay, absorbed share) with a bootstrap CI: where it is undefined on the
    data, `reason` says why; otherwise the draws and how many of them were undefined (left out of the CI)."""

    draws: int | None = field(default=None, metadata=OMIT)
    undefined_draws: int | None = field(default=None, metadata=OMIT)
    reason: str | None = field(default=None, metadata=OMIT)


@dataclass(frozen=True)
class SignTest(Record):
    """Exact two-sided sign (McNemar) test: b = pairs that fell, c = pairs that rose."""

    b: int
    c: int
    p_value: float


@dataclass(frozen=True)
class SeedTest(Estimate):
    """Two conditions compared at the level of seeds: the mean difference, its t-interval, the test's p-value
    and degrees of freedom, or the reason no test is possible."""

    p_value: float | None = None
    df: float | None = None
    reason: str | None = None


# ----------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class EvalRecord(Record):
    """One problem's evaluation outcome: one line of eval.jsonl."""

    problem_id: str
    greedy: bool | None  # the greedy first attempt was right (None: no greedy attempt)
    samples: tuple[bool, ...]  # the sampled first attempts; sample 0 starts the retry chain
    chain: tuple[bool, ...]  # sample 0, then each retry turn, until one is right or N turns
    pass_at_k: Mapping[str, float] = field(default_factory=dict)
    tokens: int = 0
    cut: int = 0  # generations that ran to max_new_tokens


@dataclass(frozen=True)
class RetryLift(Estimate):
    """A retry turn against a fresh sample at the same budget, on the problems whose sample 0 failed: the paired
    difference retry − fresh (an estimate, its CI's method), each side's rate and the sign test; or, where the
    figure is undefined, value None and the reason."""

    method: str | None = field(default=None, metadata=OMIT)
    retry: Rate | None = None
    fresh: Rate | None = None
    mcnemar: SignTest | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Flips(Record):
    """Outcome changes when every problem, right or wrong, got a retry turn."""

    wrong_to_right: int
    right_to_wrong: int
    right_to_right: int
    wrong_to_wrong: int
    n: int
    net: Rate
    wrong_to_right_rate: float | None
    right_to_wrong_rate: float | None
    mcnemar: SignTest


@dataclass(frozen=True)
class EvalFigures(Record):
    """An evaluation set's figures: every rate (pass1_sampled, pass_n_retry, pass1_greedy, pass_at_K) and the gap,
    with CIs; the retry turns, the share cut at the length limit, the retry lift and (retry_all) the flips."""

    rates: Mapping[str, Estimate]  # in the JSON at the top level, by name
    # None: a round.json written before the figure was recorded
    retry_n: int | None = field(default=None, metadata=OMIT)
    cut_at_length: float | None = field(default=None, metadata=OMIT)
    retry_lift: RetryLift | None = field(default=None, metadata=OMIT)
    flips: Flips | None = None

    FIXED: ClassVar[tuple[str, ...]] = ("retry_n", "cut_at_length", "retry_lift", "flips")

    def rate(self, metric: str) -> Estimate | None:
        return self.rates.get(metric)

    def __getitem__(self, metric: str) -> Estimate:
        """The rate of `metric` (KeyError naming the rates there are)."""
        if metric not in self.rates:
            raise KeyError(f"no figure {metric!r}; the evaluation has {', '.join(self.rates)}")
        return self.rates[metric]

    def to_json(self) -> dict[str, Any]:
        return {
            **{k: v.to_json() for k, v in self.rates.items()},
            **{k: v for k, v in super().to_json().items() if k != "rates"},
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> EvalFigures:  # type: ignore[override]
        if not isinstance(data, Mapping):
            raise RecordError(f"{where}: expected an object")
        rates = {k: Estimate.from_json(v, _at(where, k)) for k, v in data.items() if k not in cls.FIXED}
        return super().from_json({**{k: data[k] for k in cls.FIXED if k in data}, "rates": rates}, where)


@dataclass(frozen=True)
class Gains(Record):
    from_base: Rate
    from_prev: Rate


@dataclass(frozen=True)
class GainedLost(Record):
    """The problems the headline metric gained and lost since the previous round, with a sign test. Rounds
    recorded before this was measured on the headline metric hold greedy right/wrong flips instead
    (outcome, wrong_to_right, right_to_wrong, mcnemar_p): read as the outcome's gains and losses, with
    `unchanged` None and `legacy` set."""

    metric: str
    gained: int
    lost: int
    unchanged: int | None
    p_value: float
    legacy: bool = False

    def to_json(self) -> dict[str, Any]:
        if self.legacy:
            return {
                "outcome": self.metric,
                "wrong_to_right": self.gained,
                "right_to_wrong": self.lost,
                "mcnemar_p": self.p_value,
            }
        out = super().to_json()
        out.pop("legacy")
        return out

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> GainedLost:  # type: ignore[override]
        if isinstance(data, Mapping) and "gained" not in data and "outcome" in data:
            old = {
                "metric": "outcome",
                "gained": "wrong_to_right",
                "lost": "right_to_wrong",
                "p_value": "mcnemar_p",
            }
            missing = [v for v in old.values() if v not in data]
            if missing:
                raise RecordError(f"{_at(where, missing[0])}: missing")
            return cls(**{k: data[v] for k, v in old.items()}, unchanged=None, legacy=True)
        return super().from_json(data, where)


@dataclass(frozen=True)
class Comparison(Record):
    """A round's evaluation against the base and the previous round, paired over problems."""

    delta_from_base: Rate
    delta_from_prev: Rate
    gains: Mapping[str, Gains]  # sampled and greedy pass@1 (where greedy attempts were made)
    decay: Ratio | None  # None in round 1: no gain before it
    absorbed_share: Ratio
    flips_vs_prev: GainedLost


@dataclass(frozen=True)
class SplitFigures(Record):
    """One evaluation set's figures in a round; after round 0 with its comparison (at the same level in JSON)."""

    eval: EvalFigures
    comparison: Comparison | None = None

    def to_json(self) -> dict[str, Any]:
        return {"eval": self.eval.to_json(), **(self.comparison.to_json() if self.comparison else {})}

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> SplitFigures:  # type: ignore[override]
        if not isinstance(data, Mapping) or "eval" not in data:
            raise RecordError(f"{_at(where, 'eval')}: missing")
        comparison = Comparison.from_json(data, where) if "delta_from_base" in data else None
        return cls(EvalFigures.from_json(data["eval"], _at(where, "eval")), comparison)

    @property
    def delta_from_base(self) -> Rate | None:
        return self.comparison.delta_from_base if self.comparison else None

    @property
    def delta_from_prev(self) -> Rate | None:
        return self.comparison.delta_from_prev if self.comparison else None


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class FilterStats(Record):
    """What the filter kept from the round's attempts, and why it rejected the rest."""

    kept: int
    kept_from: Mapping[str, int]  # examples by source: retry, first, retry_turn
    problems: int
    rejected: Mapping[str, int]  # by reason: wrong, cut, duplicate, over_cap, ...
    hint_leaks: int | None = None  # gold-hint retries that name or quote the hint (privileged retries only)
    lucky_share: float | None = None  # right answers through a wrong step (None: steps not checked)
    wall_s: float | None = field(default=None, metadata=OMIT)


@dataclass(frozen=True)
class TrainFigures(Record):
    """The round's training problems: first-attempt accuracy, the frontier, the retry yield, what was kept."""

    problems: int
    first_correct: Rate
    unjudged: int
    frontier: int  # first attempts judged wrong
    retried: int
    retry_solved: int
    retry_yield: Estimate  # a Rate, or value None without retry turns
    tokens_generated: int
    cut_at_length: float
    cut: int
    first_samples: Rate
    examples: FilterStats | None = field(default=None, metadata=OMIT)
    retry_sees: str | None = field(default=None, metadata=OMIT)  # the rendered text of one retry prompt


@dataclass(frozen=True)
class GenerationInfo(Record):
    """What a generation stage (the round's attempts, an evaluation set) keeps in the manifest: the tokens it
    generated and its wall time, split into loading, generating and verifying when it ran in this process;
    the attempts stage also one retry prompt as the model saw it."""

    tokens_generated: int = 0
    retry_sees: str | None = field(default=None, metadata=OMIT)
    load_s: float | None = field(default=None, metadata=OMIT)
    generate_s: float | None = field(default=None, metadata=OMIT)
    verify_s: float | None = field(default=None, metadata=OMIT)
    wall_s: float = 0.0

    PARTS: ClassVar[tuple[str, ...]] = ("load_s", "generate_s", "verify_s")

    def __add__(self, other: GenerationInfo) -> GenerationInfo:
        """Two stages' figures together (the evaluation sets of a round)."""

        def plus(a: float | None, b: float | None) -> float | None:
            return None if a is None and b is None else (a or 0.0) + (b or 0.0)

        return GenerationInfo(
            self.tokens_generated + other.tokens_generated,
            None,
            *(plus(getattr(self, p), getattr(other, p)) for p in self.PARTS),
            wall_s=self.wall_s + other.wall_s,
        )

    def parts(self, stage: str) -> dict[str, float]:
        """The cost fields of the time's parts, by name (attempts_load_s, eval_generate_s, ...); parts not
        measured or zero are left out."""
        return {f"{stage}_{p}": round(v, 3) for p in self.PARTS if (v := getattr(self, p))}


@dataclass(frozen=True)
class ImprovePass(Record):
    steps: int | None
    loss_first: float | None
    loss_last: float | None
    wall_s: float | None


@dataclass(frozen=True)
class TrainingInfo(Record):
    """What training did: its method, steps, tokens and losses, and where it started."""

    method: str
    steps: int
    examples: int
    rows: int
    epochs: float
    tokens_trained: int
    loss_first: float | None
    loss_last: float | None
    train_loss: float | None
    start_model: str
    packing: bool
    between_rounds: str
    reported_to: tuple[str, ...] = ()
    processes: int | None = field(default=None, metadata=OMIT)
    oom_backoffs: int | None = field(default=None, metadata=OMIT)
    fsdp: Any = field(default=None, metadata=OMIT)
    wall_s: float = 0.0
    improve_passes: tuple[ImprovePass, ...] | None = field(default=None, metadata=OMIT)
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys of a newer trainer, kept as they are

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out.pop("extra")
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> TrainingInfo:  # type: ignore[override]
        if not isinstance(data, Mapping):
            raise RecordError(f"{where}: expected an object")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        base = super().from_json({k: v for k, v in data.items() if k in known}, where)
        return dataclasses.replace(base, extra={k: v for k, v in data.items() if k not in known})


@dataclass(frozen=True)
class Decisions(Record):
    """Both stopping decisions of a round: before training, and after evaluation (when the round trained)."""

    before_train: Decision
    after_eval: Decision | None = field(default=None, metadata=OMIT)


# ----------------------------------------------------------------------------- the round

SPLITS = ("test", "validation", "transfer")


@dataclass(frozen=True)
class RoundFigures(Record):
    """A round's figures. In round.json the test set's sit at the top (eval, delta_from_base, ...), the other
    evaluation sets under their names."""

    train: TrainFigures | None = field(default=None, metadata=OMIT)
    decisions: Decisions | None = field(default=None, metadata=OMIT)
    training: TrainingInfo | None = field(default=None, metadata=OMIT)
    test: SplitFigures | None = field(default=None, metadata=OMIT)
    validation: SplitFigures | None = field(default=None, metadata=OMIT)
    transfer: SplitFigures | None = field(default=None, metadata=OMIT)

    @property
    def evaluated(self) -> bool:
        return self.test is not None

    @property
    def eval(self) -> EvalFigures | None:
        return self.test.eval if self.test else None

    @property
    def comparison(self) -> Comparison | None:
        return self.test.comparison if self.test else None

    @functools.cached_property
    def raw(self) -> dict[str, Any]:
        """The figures as round.json holds them, for readers that cite a figure by its path in the file."""
        return self.to_json()

    def on(self, split: str) -> SplitFigures | None:
        """One evaluation set's figures: test, validation or transfer (None where it was not evaluated)."""
        if split not in SPLITS:
            raise KeyError(f"no evaluation set {split!r}; the sets are {', '.join(SPLITS)}")
        return getattr(self, split)

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        test = out.pop("test", None)
        rest = {k: out.pop(k) for k in ("validation", "transfer") if k in out}
        return {**out, **(test or {}), **rest}

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> RoundFigures:  # type: ignore[override]
        if not isinstance(data, Mapping):
            raise RecordError(f"{where}: expected an object")
        hints = _hints(cls)
        kwargs = {
            k: _load(hints[k], data.get(k), _at(where, k))
            for k in ("train", "decisions", "training", "validation", "transfer")
        }
        test = SplitFigures.from_json(data, where) if "eval" in data else None
        return cls(**kwargs, test=test)


@dataclass(frozen=True)
class RoundCost(Record):
    """Where a round's time went (seconds; a generation stage's load/generate/verify parts when it ran in this
    process), the tokens generated and trained, and the device."""

    attempts_s: float | None = field(default=None, metadata=OMIT)
    attempts_load_s: float | None = field(default=None, metadata=OMIT)
    attempts_generate_s: float | None = field(default=None, metadata=OMIT)
    attempts_verify_s: float | None = field(default=None, metadata=OMIT)
    filter_s: float | None = field(default=None, metadata=OMIT)
    train_s: float | None = field(default=None, metadata=OMIT)
    eval_s: float | None = field(default=None, metadata=OMIT)
    eval_load_s: float | None = field(default=None, metadata=OMIT)
    eval_generate_s: float | None = field(default=None, metadata=OMIT)
    eval_verify_s: float | None = field(default=None, metadata=OMIT)
    tokens_generated: int = 0
    tokens_trained: int = 0
    device: str = ""

    @functools.cached_property
    def raw(self) -> dict[str, Any]:
        """The cost as round.json holds it."""
        return self.to_json()

    def seconds(self, name: str) -> float | None:
        """One of the time fields by name (attempts_s, filter_s, train_s, eval_s, eval_generate_s, ...)."""
        if not name.endswith("_s") or name not in {f.name for f in dataclasses.fields(self)}:
            raise KeyError(f"no time {name!r} in a round's cost")
        return getattr(self, name)


@dataclass(frozen=True)
class RoundResult(Record):
    """What round.json holds: the round's figures, its cost and the stopping decision."""

    round: int
    model: str  # path of the model evaluated in this round
    trained: bool
    figures: RoundFigures
    cost: RoundCost
    decision: Decision

    def to_json(self) -> dict[str, Any]:
        return {"version": ROUND_VERSION, **super().to_json()}


def round_from_json(data: Any, where: str = "round.json") -> RoundResult:
    """A round.json of any version so far: 1 (no version field) and 2 hold the same keys."""
    if not isinstance(data, Mapping):
        raise RecordError(f"{where}: expected an object")
    version = data.get("version", 1)
    if version not in (1, ROUND_VERSION):
        raise RecordError(
            f"{where}: version {version!r} is newer than this release reads (up to {ROUND_VERSION})"
        )
    return RoundResult.from_json({k: v for k, v in data.items() if k != "version"}, where)


# ----------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class PolicyStop(Record):
    """Where the stopping policies stopped the run, or would have (stopping.enforce: false)."""

    round: int
    reason: str
    policy: str | None
    enforced: bool


@dataclass(frozen=True)
class ProblemHistory(Record):
    solved: tuple[bool, ...]  # one per evaluated round
    first_solved: int | None
    forgotten_in: tuple[int, ...]


@dataclass(frozen=True)
class RoundLedger(Record):
    round: int
    solved: int
    newly_solved: int
    forgotten: int
    regained: int


@dataclass(frozen=True)
class Ledger(Record):
    """Which problems each evaluated round solves, first solves, forgets and regains (ledger.json)."""

    per_problem: Mapping[str, ProblemHistory] | None = field(
        default=None, metadata=OMIT
    )  # not in summary.json
    per_round: tuple[RoundLedger, ...] = ()
    ever_solved: int = 0
    never_solved: int = 0
    solved_then_forgotten_at_end: int = 0
    rounds: tuple[int, ...] | None = field(default=None, metadata=OMIT)  # the rounds' numbers


@dataclass(frozen=True)
class RunSummary(Record):
    """summary.json: the reported round (chosen as evaluation.select_on says) and why the run stopped."""

    name: str
    metric: str
    best_round: int
    best_model: str
    best_value: Estimate
    chosen_on: str = "test"  # summaries written before the choice was configurable: the best on the test set
    optimistic: bool = False
    best_validation: Estimate | None = field(default=None, metadata=OMIT)
    rounds: int = 0  # the last round of the run: round_k folders beyond it are stale
    stopped: str = ""
    stopped_by: str | None = None
    policy_stop: PolicyStop | None = field(default=None, metadata=OMIT)
    ledger: Ledger | None = field(default=None, metadata=OMIT)
