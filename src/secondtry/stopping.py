"""Stopping policies: policy(state, cfg) -> reason to stop, or None to go on.

A policy is asked at two points of round k: `before_train` (the retries on the current
model's training failures are in: is the training set worth a round?) and `after_eval`
(the round's gain is measured: is another round worth it?). The first policy that says
stop decides, and the decision is recorded with its inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .config import GAIN_POLICIES, StoppingConfig
from .evaluation.metrics import METRIC_NAMES
from .plugins import register
from .records import Estimate, FilterStats, TrainFigures
from .types import Decision


@dataclass(frozen=True)
class StopState:
    round: int
    phase: str  # "before_train" | "after_eval"
    retry_yield: float | None = None  # success of the retries on this round's training frontier
    examples: int | None = None  # training examples the filter kept
    gain: float | None = None  # this round's change of the metric over the previous round
    gain_ci: list[float] | None = None
    gain_cis: list[list[float]] | None = None  # every trained round's gain CI so far, this one last
    gain_on: str | None = (
        None  # the evaluation set the gains are measured on: validation if held out, else test
    )
    metric: str | None = None  # the metric the gains are of (evaluation.metric)

    @classmethod
    def before_train(cls, k: int, train: TrainFigures, examples: FilterStats) -> StopState:
        """Round k's state once its retries are in: the retry yield and the examples the filter kept."""
        return cls(k, "before_train", train.retry_yield.value, examples.kept)

    @classmethod
    def after_eval(
        cls,
        k: int,
        train: TrainFigures,
        examples: FilterStats,
        gains: Sequence[Estimate],
        gain_on: str,
        metric: str,
    ) -> StopState:
        """Round k's state once it is evaluated: `gains` are every trained round's gain so far (on `gain_on`),
        this round's last."""
        last = gains[-1]
        return cls(
            k,
            "after_eval",
            train.retry_yield.value,
            examples.kept,
            last.value,
            list(last.ci),
            [list(g.ci) for g in gains],
            gain_on,
            metric,
        )

    def gain_of(self) -> str:
        """What the gains are: "sampled pass@1 on the validation split" (as far as the state says)."""
        what = METRIC_NAMES.get(self.metric or "", self.metric or "the metric")
        sets = {"validation": " on the validation split", "test": " on the test set"}
        on = sets.get(self.gain_on or "", "")
        return what + on


Policy = Callable[[StopState, StoppingConfig], "str | None"]


def retry_yield(s: StopState, cfg: StoppingConfig) -> str | None:
    """Stop when retries rarely succeed: the training set would be too small and biased."""
    if s.phase == "before_train" and s.retry_yield is not None and s.retry_yield < cfg.min_retry_yield:
        return (
            f"retry yield {s.retry_yield:.1%} on the training frontier is below "
            f"{cfg.min_retry_yield:.0%}: too few, too biased examples for another round"
        )
    return None


def negative_gain(s: StopState, cfg: StoppingConfig) -> str | None:
    """Stop after a round that lowered the metric; the previous round stays the best."""
    if s.phase == "after_eval" and s.gain is not None and s.gain < 0:
        return (
            f"{s.gain_of()} changed by {s.gain * 100:+.1f} pp from the round before: the next round "
            f"would not pay"
        )
    return None


def ci_patience(s: StopState, cfg: StoppingConfig) -> str | None:
    """Stop when none of the last `stopping.patience` rounds gained with a 95% CI above zero."""
    recent = (s.gain_cis or [])[-cfg.patience :]
    if s.phase != "after_eval" or len(recent) < cfg.patience:
        return None
    if all(ci[0] is None or ci[0] <= 0 for ci in recent):
        return (
            f"none of the last {cfg.patience} round(s) gained {s.gain_of()} with a 95% CI above zero "
            f"(lower bounds {', '.join('n/a' if ci[0] is None else f'{ci[0] * 100:+.1f} pp' for ci in recent)})"
        )
    return None


def max_rounds(s: StopState, cfg: StoppingConfig) -> str | None:
    """Stop after stopping.max_rounds rounds."""
    if s.phase == "after_eval" and s.round >= cfg.max_rounds:
        return f"reached stopping.max_rounds={cfg.max_rounds}"
    return None


STOPPING: dict[str, Policy] = {
    "retry_yield": retry_yield,
    "negative_gain": negative_gain,
    "ci_patience": ci_patience,
    "max_rounds": max_rounds,
}


def register_policy(name: str, policy: Policy | None = None, *, reads_gain: bool = False) -> Any:
    """Add a stopping policy: `register_policy("name", policy)`, or `@register_policy("name")` on
    `policy(state: StopState, cfg: StoppingConfig) -> reason or None`. `reads_gain`: it decides on a round's
    measured gain (`state.gain*`), so it needs a validation split or `evaluation.select_on: test`.
    A name already taken is refused."""

    def add(fn: Policy) -> Policy:
        register(STOPPING, "stopping policy", name, fn)
        if reads_gain:
            GAIN_POLICIES.add(name)
        return fn

    return add if policy is None else add(policy)


def decide(state: StopState, cfg: StoppingConfig) -> Decision:
    inputs = {k: v for k, v in vars(state).items() if v is not None}
    if state.phase == "before_train" and not state.examples:
        return Decision(True, "no correct retries to train on", "no_examples", inputs)
    for name in cfg.policies:
        reason = STOPPING[name](state, cfg)
        if reason:
            return Decision(True, reason, name, inputs)
    return Decision(False, "continue", None, inputs)
