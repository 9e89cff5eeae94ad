"""A run directory made by an earlier release still loads and reports identically.

tests/data/runs/demo/ was made by the release before round records were typed (round.json without a
`version`, the filter stage named `sft` in its manifest; model weights and evaluation transcripts left out to
keep it small); tests/data/reports/demo/ holds what `secondtry report --markdown` wrote for it then, and what it
printed at 120 columns. Nothing is masked: none of these outputs prints a date or a version.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from secondtry.loop import load_history
from secondtry.records import Ledger, RunSummary, round_from_json

DATA = Path(__file__).resolve().parents[1] / "data"
RUN, EXPECTED = DATA / "runs" / "demo", DATA / "reports" / "demo"


def test_old_round_files_read_as_records_and_write_back_the_same_json():
    for path in sorted(RUN.glob("round_*/round.json")):
        old = json.loads(path.read_text())
        assert "version" not in old  # the release before records had none
        new = round_from_json(old, str(path)).to_json()
        assert new.pop("version") == 2
        assert json.dumps(new) == json.dumps(old), path  # same keys, same order, same values
    summary = json.loads((RUN / "summary.json").read_text())
    assert json.dumps(RunSummary.from_json(summary).to_json()) == json.dumps(summary)
    ledger = json.loads((RUN / "ledger.json").read_text())
    assert json.dumps(Ledger.from_json(ledger).to_json()) == json.dumps(ledger)
    history = load_history(RUN)
    assert [r.round for r in history] == [0, 1, 2]
    assert history[1].figures.train.examples.kept == 6 and history[0].figures.train is None


def test_old_run_reports_byte_identically(tmp_path):
    run = tmp_path / "demo"
    shutil.copytree(RUN, run)
    env = {**os.environ, "COLUMNS": "120", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "secondtry.cli", "report", "demo", "--markdown"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout + done.stderr == (EXPECTED / "tables.txt").read_text()
    for name in ("summary.md", "page.md"):
        assert (run / "report" / name).read_text() == (EXPECTED / name).read_text(), name
