"""External checker verifier: the pipeline with a stand-in checker (default suite) and with Coq (-m coq)."""

from __future__ import annotations

import doctest
import shutil

import pytest

import secondtry.verifiers.external as ext
from secondtry.types import Problem
from secondtry.verifiers import check_options
from secondtry.verifiers.external import verify

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
# a stand-in checker: accepts a file that says QED, loops on LOOP, prints an error otherwise
CHECKER = [
    "/usr/bin/python3",
    "-c",
    "import sys, time\ns = open(sys.argv[1]).read()\n"
    "if 'LOOP' in s: time.sleep(100)\n"
    "if 'QED' in s: sys.exit(0)\n"
    "print('File x, line 2:'); print('Error: no QED'); sys.exit(1)",
    "{file}",
]
OPTS = {"command": CHECKER, "suffix": ".txt", "binds": [], "timeout_s": 3.0}
P = Problem(id="t", prompt="prove it", answer="statement")


def test_doctests() -> None:
    assert doctest.testmod(ext).failed == 0


@pytest.mark.integration
@needs_bwrap
@pytest.mark.parametrize(
    ("completion", "correct", "reason"),
    [
        ("```text\nQED\n```", True, "checker accepted"),
        ("no proof here", False, "checker rejected: line 2: Error: no QED"),
        ("QED sorry", False, "uses forbidden 'sorry'"),
        ("LOOP", False, "checker timed out after 3s"),
        ("", False, "empty completion"),
        ("```\n\n```", False, "no proof found"),
    ],
)
def test_stand_in_checker(completion: str, correct: bool, reason: str) -> None:
    v = verify(P, completion, **OPTS)
    assert (v.correct, v.reason) == (correct, reason)
    if v.details:
        assert v.details["sandbox"] == "bwrap" and "diagnostics" in v.details


@needs_bwrap
def test_checker_sees_statement_and_proof_in_the_template() -> None:
    cmd = [
        "/usr/bin/python3",
        "-c",
        "import sys; s = open(sys.argv[1]).read(); sys.exit(0 if s == 'HEAD statement\\nQED\\nTAIL' else 1)",
        "{file}",
    ]
    v = verify(P, "```\nQED\n```", command=cmd, template="HEAD {statement}\n{proof}\nTAIL", binds=[])
    assert v.correct is True, v


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"command": ["coqc"]}, "must name the candidate as {file}"),
        ({"suffix": "v"}, "should look like .v"),
        ({"binds": ["/no/such/path"]}, "/no/such/path does not exist"),
        ({"timeout": 3}, "no option"),
    ],
)
def test_bad_options(options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_options("external", options)


COQ_STATEMENT = "Theorem add_0_r' : forall n : nat, n + 0 = n.\nProof."
COQ_CASES = [
    (
        "```coq\nintros n. induction n as [| n IH].\n- reflexivity.\n- simpl. rewrite IH. reflexivity.\nQed.\n```",
        True,
        "checker accepted",
    ),
    ("```coq\nRequire Import Lia.\nintros n. lia.\nQed.\n```", True, "checker accepted"),
    ("intros n. reflexivity.\nQed.", False, "checker rejected: line 3: Error:"),  # n + 0 does not reduce
    ("intros n. Admitted.", False, "uses forbidden 'Admitted'"),
    ("intros n.", False, "checker rejected:"),  # the proof is never closed
    ("```coq\nQed.\nTheorem other : True.\nProof. exact I.\nQed.\n```", False, "checker rejected:"),
]


@pytest.mark.coq
@needs_bwrap
@pytest.mark.skipif(shutil.which("coqc") is None, reason="coqc not installed (apt-get install coq)")
@pytest.mark.parametrize(("proof", "correct", "reason"), COQ_CASES)
def test_coq(proof: str, correct: bool, reason: str) -> None:
    v = verify(Problem(id="coq", prompt="", answer=COQ_STATEMENT), proof)
    assert v.correct is correct and v.reason.startswith(reason), v
    if v.details:
        assert v.details["sandbox"] == "bwrap"
