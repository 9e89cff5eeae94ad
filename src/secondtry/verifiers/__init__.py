"""Verifiers: verify(problem, completion) -> Verdict. Pure functions; `correct=None` means cannot judge.

`VERIFIERS` is the one registry; `secondtry ls` and the docs are generated from it.
`pool.verify_all` runs any of them in worker processes with a hard per-item timeout.
"""

from __future__ import annotations

from . import math as _math
from . import numeric as _numeric
from . import synthetic as _synthetic

VERIFIERS = {
    "math": _math.verify,
    "numeric": _numeric.verify,
    "synthetic": _synthetic.verify,
}

CHECKS_STEPS = {"synthetic"}  # verifiers that fill Verdict.steps, so `filter.require: steps` can use them
