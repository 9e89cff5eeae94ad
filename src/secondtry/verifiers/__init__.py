"""Verifiers: verify(problem, completion, **options) -> Verdict. Pure functions; `correct=None` means cannot judge.

`VERIFIERS` is the one registry; `secondtry ls` and the docs are generated from it. A verifier's
options are its keyword-only parameters (with types and defaults); `verifier.options` in the
config is checked against them by `check_options` before a run starts. `register_verifier` adds one (a
plugin's verifiers: secondtry/plugins.py).
`pool.VerifierPool` runs any of them in worker processes with a hard per-item timeout.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

from secondtry.plugins import register
from secondtry.types import Problem, Verdict

from . import arithmetic as _arithmetic
from . import code as _code
from . import external as _external
from . import math as _math
from . import numeric as _numeric
from . import synthetic as _synthetic

VERIFIERS: dict[str, Callable[..., Verdict]] = {
    "math": _math.verify,
    "numeric": _numeric.verify,
    "numeric_steps": _arithmetic.verify,
    "synthetic": _synthetic.verify,
    "code": _code.verify,
    "external": _external.verify,
}

# verifiers that fill Verdict.steps, so `filter.require: steps` can use them
CHECKS_STEPS = {"synthetic", "numeric_steps"}


def register_verifier(
    name: str, verify: Callable[..., Verdict] | None = None, *, checks_steps: bool = False
) -> Any:
    """Add a verifier: `register_verifier("name", verify)`, or `@register_verifier("name")` on
    `verify(problem, completion, *, option=default, ...) -> Verdict` (a module-level function: pool workers
    import its module). `checks_steps`: it fills `Verdict.steps` (for `filter.require: steps`).
    A name already taken is refused."""

    def add(fn: Callable[..., Verdict]) -> Callable[..., Verdict]:
        register(VERIFIERS, "verifier", name, fn)
        if checks_steps:
            CHECKS_STEPS.add(name)
        return fn

    return add if verify is None else add(verify)


_PROBE = Problem(id="options-check", prompt="", answer="1")


def options_of(name: str) -> dict[str, inspect.Parameter]:
    """The options a verifier takes: its keyword-only parameters."""
    params = inspect.signature(VERIFIERS[name]).parameters.values()
    return {p.name: p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def check_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` validated against the verifier's signature (names, types), and a trial call.

    Returns the options as the verifier will get them; raises ValueError naming the option and the fix.
    """
    from pydantic import ValidationError, create_model

    fn = VERIFIERS[name]
    known = options_of(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        valid = ", ".join(known) or "none"
        raise ValueError(f"verifier.options: {name!r} has no option(s) {', '.join(unknown)}; valid: {valid}")
    hints = typing.get_type_hints(fn)
    fields = {k: (hints.get(k, Any), p.default) for k, p in known.items()}
    model = create_model(f"{name}_options", **fields)  # type: ignore[call-overload]
    try:
        checked = model(**options)
    except ValidationError as e:
        lines = [f"verifier.options.{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
        raise ValueError("\n".join(lines)) from None
    values = {k: getattr(checked, k) for k in options}
    try:
        fn(
            _PROBE, "", **values
        )  # values only a call can judge: unknown extractor names, a missing sandbox, ...
    except (ValueError, RuntimeError, OSError) as e:
        raise ValueError(f"verifier.options ({name}): {e}") from None
    return values
