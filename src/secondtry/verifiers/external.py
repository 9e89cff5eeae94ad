r"""External checker: write the candidate to a file, run a checker command on it (Coq, Lean, ...).

The candidate is `template` filled with the problem's formal statement (`problem.answer`) and the
completion's proof (its last fenced code block, or the whole text). The checker runs in the same
sandbox as model-written code (verifiers/sandbox.py): a proof checker runs untrusted input, and
Coq or Lean files can run commands and write files. Correct iff the checker exits 0 within
`timeout_s` and the candidate uses none of the `forbid` words (`Admitted`, `sorry`, ...: a proof
that skips its goal still compiles). The checker's diagnostics are kept in `details`.

Coq (Debian: `apt-get install coq`), a statement ending in `Proof.` and a tactic script:

    verifier:
      name: external
      options: {command: [coqc, "{file}"], suffix: .v, forbid: [Admitted, admit, Axiom]}

Lean 4 with Mathlib (elan's toolchain under /opt/elan, a project under /opt/lean-proj with
Mathlib built; both readable by uid 65534, which programs run as when secondtry runs as root):
the statement ends in `:= by`, the proof is a tactic block; `binds` makes the toolchain and the
project visible (read-only) inside the sandbox, where `lake env lean` runs with the project as
its working directory. Comments are not parsed: a forbidden word inside one also rejects.

    verifier:
      name: external
      timeout_s: 320
      options:
        command: [/opt/elan/bin/lake, env, lean, "{file}"]
        cwd: /opt/lean-proj
        suffix: .lean
        forbid: [sorry, admit, axiom]
        binds: [/opt/elan]
        timeout_s: 300
        memory_mb: 8192

>>> from secondtry.types import Problem
>>> p = Problem(id="t", prompt="", answer="Theorem t : 1 + 1 = 2.\nProof.")
>>> candidate(p, "```coq\nreflexivity.\nQed.\n```", "{statement}\n{proof}\n")
'Theorem t : 1 + 1 = 2.\nProof.\nreflexivity.\nQed.\n'
>>> forbidden("intros. Admitted.", ["Admitted", "admit"])
'Admitted'
>>> forbidden("intros. auto.", ["Admitted", "admit"]) is None
True
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from secondtry.types import Problem, Verdict
from secondtry.verifiers import sandbox as _sandbox

_FENCE = re.compile(r"```[\w+-]*[ \t]*\n(.*?)```", re.DOTALL)
_ERROR_LINE = re.compile(r"^.*\b(?:error|Error)\b.*$", re.MULTILINE)


def proof_of(completion: str) -> str:
    """The last fenced code block of a completion, or the whole completion when there is none."""
    blocks = _FENCE.findall(completion)
    return (blocks[-1] if blocks else completion).strip()


def candidate(problem: Problem, completion: str, template: str) -> str:
    """The file the checker reads: `template` with {statement} and {proof} filled in."""
    return template.replace("{statement}", problem.answer.rstrip()).replace("{proof}", proof_of(completion))


def forbidden(text: str, words: Sequence[str]) -> str | None:
    """The first forbidden word the text uses as a whole word, or None."""
    for word in words:
        if re.search(rf"(?<![\w.]){re.escape(word)}(?![\w])", text):
            return word
    return None


def first_error(diagnostics: str) -> str:
    r"""The first error and the lines that explain it, on one line (Coq spreads it over several).

    >>> first_error('File "./C.v", line 3, characters 0-4:\nError:\nIn environment\nn : nat\nUnable to unify.')
    'line 3: Error: / In environment / n : nat / Unable to unify.'
    """
    lines = [x.strip() for x in diagnostics.splitlines() if x.strip()]
    at = next((i for i, x in enumerate(lines) if _ERROR_LINE.match(x)), 0)
    where = re.search(r"line (\d+)", lines[at - 1]) if at else None
    text = " / ".join(lines[at : at + 6])
    return (f"line {where.group(1)}: " if where else "") + text[:240]


def verify(
    problem: Problem,
    completion: str,
    *,
    command: Sequence[str] = ("coqc", "{file}"),
    suffix: str = ".v",
    template: str = "{statement}\n{proof}\n",
    forbid: Sequence[str] = ("Admitted", "admit", "Axiom", "sorry"),
    timeout_s: float = 60.0,
    memory_mb: int = 4096,
    binds: Sequence[str] = ("/etc/ocamlfind.conf",),
    cwd: str | None = None,
    sandbox: str = "auto",
) -> Verdict:
    """Run a checker command (Coq's coqc, Lean, ...) on the statement + proof; correct iff it accepts.

    `command`: argv with "{file}" for the candidate's path; `cwd`: a read-only project folder to
    run in (bound into the sandbox), else the sandbox's own folder; `binds`: host paths the checker
    needs, read-only (the default is Debian's findlib config, which coqc reads).
    """
    if not command or not any("{file}" in part for part in command):
        raise ValueError("option command must name the candidate as {file}, e.g. [coqc, '{file}']")
    if not re.fullmatch(r"\.[\w.]+", suffix):
        raise ValueError(f"option suffix {suffix!r} should look like .v or .lean")
    binds = tuple(binds) + ((cwd,) if cwd else ())
    missing = [b for b in binds if not os.path.exists(b)]
    if missing:
        raise ValueError(
            f"option binds: {', '.join(missing)} does not exist (binds are host paths the checker "
            f"needs, shown read-only in the sandbox)"
        )
    method = _sandbox.check(sandbox, binds=binds)  # a sandbox that cannot run is a config error, raised now
    if not isinstance(completion, str) or not completion.strip():
        return Verdict(correct=False, reason="empty completion")
    proof = proof_of(completion)
    if not proof:
        return Verdict(correct=False, reason="no proof found")
    word = forbidden(proof, forbid)
    if word:
        return Verdict(correct=False, extracted=proof[:2000], reason=f"uses forbidden {word!r}")
    name = f"Candidate{suffix}"  # Coq wants a module name: letters first
    path = f"{_sandbox.INSIDE}/{name}" if method == "bwrap" else name
    argv = [part.replace("{file}", path) for part in command]
    if cwd:
        argv = ["/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", cwd, *argv]
    r = _sandbox.run(
        {name: candidate(problem, completion, template)},
        argv,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        nproc=64,
        nofile=256,
        fsize_mb=64,
        disk_mb=256,
        sandbox=sandbox,
        binds=binds,
    )
    diagnostics = (r.stdout_tail + "\n" + r.stderr_tail).strip()
    details = {
        "sandbox": r.method,
        "exit": r.returncode,
        "wall_s": round(r.wall_s, 3),
        "diagnostics": diagnostics[-2000:],
    }
    if r.error:
        return Verdict(
            correct=None, extracted=proof[:2000], reason=f"cannot judge: {r.error}", details=details
        )
    if r.timed_out:
        return Verdict(
            correct=False,
            extracted=proof[:2000],
            reason=f"checker timed out after {timeout_s:g}s",
            details=details,
        )
    if r.returncode == 0:
        return Verdict(correct=True, extracted=proof[:2000], reason="checker accepted", details=details)
    return Verdict(
        correct=False,
        extracted=proof[:2000],
        reason=f"checker rejected: {first_error(diagnostics) or f'exit {r.returncode}'}",
        details=details,
    )
