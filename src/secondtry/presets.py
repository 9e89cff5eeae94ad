"""Presets: the conditions of the reference report, as config overrides (`secondtry run CONFIG --preset NAME`).

Each preset sets only what defines its condition (retry condition, retries, samples per
problem, what is kept, rounds, what starts each round, improve passes); the task, model,
sampling and training budget stay the config's, so presets run on the same problems are
comparable (`secondtry compare` shows each one's generated tokens: its budget). The run is named `<config name>-<preset>`.
`secondtry compare` then lays them side by side with the privileged information each used.
"""

from __future__ import annotations

from .plugins import PluginError, register

PRESETS: dict[str, dict[str, object]] = {
    "iterative-retry-2": {
        "about": "iterative retry, 2 rounds: retry the failures with 'Try again carefully.', train on correct retries",
        "overrides": [
            "conditions.retry=retry",
            "stopping.max_rounds=2",
            "stopping.policies=[max_rounds]",
            "training.between_rounds=continue",
        ],
    },
    "iterative-retry-3": {
        "about": "iterative retry, 3 rounds",
        "overrides": [
            "conditions.retry=retry",
            "stopping.max_rounds=3",
            "stopping.policies=[max_rounds]",
            "training.between_rounds=continue",
        ],
    },
    "iterative-retry-keep-turn": {
        "about": "iterative retry, 3 rounds, training on the whole retry turn: problem, failed attempt, "
        "retry prompt -> the correct retry (loss on the retry only), so training need not erase the "
        "second turn",
        "overrides": [
            "conditions.retry=retry",
            "filter.retry_example=turn",
            "stopping.max_rounds=3",
            "stopping.policies=[max_rounds]",
            "training.between_rounds=continue",
        ],
    },
    "iterative-retry-keep-both": {
        "about": "iterative retry, 3 rounds, each correct retry trained twice: problem -> retry, and the "
        "whole retry turn -> retry",
        "overrides": [
            "conditions.retry=retry",
            "filter.retry_example=both",
            "stopping.max_rounds=3",
            "stopping.policies=[max_rounds]",
            "training.between_rounds=continue",
        ],
    },
    "star-try-again": {
        "about": "'try again' STaR: one round of the retry pipeline",
        "overrides": ["conditions.retry=retry", "stopping.max_rounds=1", "stopping.policies=[max_rounds]"],
    },
    "star-gold": {
        "about": "gold-answer STaR: the retry prompt carries the gold answer; the example is the problem without "
        "it -> the retry; retries that name or quote the hint are dropped (filter.hint_leaks)",
        "overrides": [
            "conditions.retry=gold_hint",
            "stopping.max_rounds=1",
            "stopping.policies=[max_rounds]",
            "filter.hint_leaks=drop",
        ],
    },
    "star-rationalize": {
        "about": "STaR with rationalisation: failures are asked again with the gold answer as a hint (the failure "
        "not shown); correct first attempts and rationalisations train a model from the base each round, "
        "20% more steps a round; 4 rounds",
        "overrides": [
            "conditions.retry=rationalize",
            "conditions.retries=1",
            "filter.include_first_attempts=true",
            "filter.hint_leaks=drop",
            "training.between_rounds=reset",
            "training.steps_growth=1.2",
            "stopping.max_rounds=4",
            "stopping.policies=[max_rounds]",
        ],
    },
    "rest": {
        "about": "ReST grow/improve: grow = 4 samples a problem from the current model; improve = 2 training passes "
        "on the same grown set (at most 2 correct samples a problem), each from the last; 3 rounds",
        "overrides": [
            "conditions.samples=4",
            "conditions.retries=0",
            "filter.include_first_attempts=true",
            "filter.max_per_problem=2",
            "training.improve_steps=2",
            "training.between_rounds=continue",
            "stopping.max_rounds=3",
            "stopping.policies=[max_rounds]",
        ],
    },
    "rest-em": {
        "about": "ReST-EM: 4 samples a problem whatever their outcome, at most 2 correct kept a problem, the model "
        "trained from the base each round; 3 rounds",
        "overrides": [
            "conditions.samples=4",
            "conditions.retries=0",
            "filter.include_first_attempts=true",
            "filter.max_per_problem=2",
            "training.between_rounds=reset",
            "stopping.max_rounds=3",
            "stopping.policies=[max_rounds]",
        ],
    },
    "resampling": {
        "about": "resampling: fresh independent samples of each failed problem instead of a retry turn "
        "(conditions.retries of them, stopping at the first correct one: the retry condition's budget "
        "at the same conditions.retries), one round",
        "overrides": ["conditions.retry=resample", "stopping.max_rounds=1", "stopping.policies=[max_rounds]"],
    },
    "resampling-16": {
        "about": "resampling at 16 samples (the reference report's Double-Sample N=16): 16 fresh samples of each "
        "failed problem instead of a retry turn, every correct one kept (at most 16 a problem, duplicates "
        "dropped); one round",
        "overrides": [
            "conditions.retry=resample",
            "conditions.retries=1",
            "conditions.retry_samples=16",
            "filter.max_per_problem=16",
            "stopping.max_rounds=1",
            "stopping.policies=[max_rounds]",
        ],
    },
}


def register_preset(name: str, overrides: list[str], about: str) -> dict[str, object]:
    """Add a preset: the dotted overrides that define a condition, and one line on what it is (shown by
    `secondtry ls` and `--preset`'s help). A name already taken is refused. A plugin's presets are usable with
    `--preset` when it is installed as an entry point (the CLI resolves presets before it reads a config)."""
    if not isinstance(overrides, (list, tuple)) or not all(
        isinstance(o, str) and "=" in o for o in overrides
    ):
        raise PluginError(
            f"preset {name!r}: overrides must be a list of key=value strings, got {overrides!r}"
        )
    return register(PRESETS, "preset", name, {"about": about, "overrides": list(overrides)})
