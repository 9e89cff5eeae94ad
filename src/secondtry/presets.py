"""Presets: the conditions of the reference report, as config overrides (`secondtry run CONFIG --preset NAME`).

Each preset sets only what defines its condition (retry condition, retries, rounds, what
starts each round); the task, model, sampling and training budget stay the config's, so
presets run on the same problems are comparable. The run is named `<config name>-<preset>`.
`secondtry compare` then lays them side by side with the privileged information each used.
"""

from __future__ import annotations

PRESETS: dict[str, dict[str, object]] = {
    "iterative-retry-2": {
        "about": "iterative retry, 2 rounds: retry the failures with 'Try again carefully.', train on correct retries",
        "overrides": ["conditions.retry=retry", "stopping.max_rounds=2", "stopping.policies=[max_rounds]",
                      "training.between_rounds=continue"],
    },
    "iterative-retry-3": {
        "about": "iterative retry, 3 rounds",
        "overrides": ["conditions.retry=retry", "stopping.max_rounds=3", "stopping.policies=[max_rounds]",
                      "training.between_rounds=continue"],
    },
    "star-try-again": {
        "about": "'try again' STaR: one round of the retry pipeline",
        "overrides": ["conditions.retry=retry", "stopping.max_rounds=1", "stopping.policies=[max_rounds]"],
    },
    "star-gold": {
        "about": "gold-answer STaR: the retry prompt carries the gold answer; the example is the problem without "
                 "it -> the retry; retries that name or quote the hint are dropped (filter.hint_leaks)",
        "overrides": ["conditions.retry=gold_hint", "stopping.max_rounds=1", "stopping.policies=[max_rounds]",
                      "filter.hint_leaks=drop"],
    },
    "resampling": {
        "about": "resampling: fresh independent samples of each failed problem instead of a retry turn "
                 "(conditions.retries of them, stopping at the first correct one), one round",
        "overrides": ["conditions.retry=resample", "stopping.max_rounds=1", "stopping.policies=[max_rounds]"],
    },
}
