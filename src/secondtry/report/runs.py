"""One finished (or running) run directory as the reports read it: its config, rounds, summary, best round."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..conditions import PRIVILEGED
from ..loop import load_history, read_eval_records
from ..records import Estimate, EvalRecord, RoundResult, RunSummary
from ..store import RunDirError, read_json


@dataclass
class RunView:
    """What the reports read from one run directory."""

    path: Path
    cfg: RunConfig
    history: list[RoundResult]
    summary: RunSummary | None  # None: the run has not finished (no summary.json yet)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def metric(self) -> str:
        return self.summary.metric if self.summary else self.cfg.get("evaluation.metric", "pass1_sampled")

    @property
    def best(self) -> RoundResult:
        """summary.json's reported round (`chosen_on`: the best on the validation split, the last round, or the best
        on the test set); for a run without a summary yet, the best test figure, earliest first."""
        evaluated = [r for r in self.history if r.figures.eval is not None]
        named = [r for r in evaluated if self.summary and r.round == self.summary.best_round]
        return (
            named[0] if named else max(evaluated, key=lambda r: (r.figures.eval[self.metric].value, -r.round))
        )

    @property
    def n_test(self) -> int:
        base = self.history[0].figures.eval
        return base[self.metric].n if base else 0

    def at(self, k: int, key: str) -> Estimate | None:
        """Round k's test metric (key "eval"), or its gain from the base ("delta_from_base") or from the round before
        ("delta_from_prev")."""
        if k >= len(self.history) or self.history[k].figures.test is None:
            return None
        test = self.history[k].figures.test
        if key == "eval":
            return test.eval[self.metric]
        if key not in ("delta_from_base", "delta_from_prev"):
            raise KeyError(f"no test figure {key!r} here: eval, delta_from_base or delta_from_prev")
        return test.delta_from_base if key == "delta_from_base" else test.delta_from_prev

    def records(self, k: int) -> list[EvalRecord]:
        """Round k's per-problem test records (eval.jsonl)."""
        return read_eval_records(self.path / f"round_{k}" / "eval.jsonl")

    @property
    def chosen_on(self) -> str:
        return self.summary.chosen_on if self.summary else "test"

    @property
    def optimistic(self) -> bool:
        """The reported round was picked on the test set among several rounds: its figures are biased upward."""
        return bool(self.summary and self.summary.optimistic)

    @property
    def privileged(self) -> str:
        return PRIVILEGED.get(self.cfg.get("conditions.retry", "retry"), "none")

    @property
    def trained_rounds(self) -> int:
        return sum(r.trained for r in self.history)

    @property
    def train_tokens(self) -> int:
        """Tokens generated on training problems, every round: the condition's budget."""
        return sum(r.figures.train.tokens_generated for r in self.history if r.figures.train)


def load_run(path: Path) -> RunView:
    history = load_history(path)
    if not history:
        raise RunDirError(f"{path}: no round_*/round.json — not a secondtry run directory, or not started")
    file = path / "summary.json"
    summary = RunSummary.from_json(read_json(file), str(file)) if file.exists() else None
    return RunView(path, read_config(path), history, summary)


@dataclass(frozen=True)
class RunConfig:
    """A run's config.yaml as the reports read it: the file as written, not checked against this release's
    Config, so that a run made by an earlier release (whose config may hold settings since renamed) still
    reports; read by dotted key."""

    data: Mapping[str, Any] = field(default_factory=dict)

    def get(self, dotted: str, default: Any = None) -> Any:
        """The setting at `dotted` ("evaluation.metric"), or `default` where it is missing or null."""
        node: Any = self.data
        for key in dotted.split("."):
            if not isinstance(node, Mapping) or key not in node:
                return default
            node = node[key]
        return default if node is None else node

    def need(self, dotted: str) -> Any:
        """The setting at `dotted`; a KeyError naming it where config.yaml does not hold it."""
        value = self.get(dotted)
        if value is None:
            raise KeyError(f"config.yaml has no {dotted}")
        return value


def read_config(path: Path) -> RunConfig:
    file = path / "config.yaml"
    return RunConfig((yaml.safe_load(file.read_text(encoding="utf-8")) or {}) if file.exists() else {})


def has_results(path: Path) -> bool:
    return (path / "round_0" / "round.json").exists()
