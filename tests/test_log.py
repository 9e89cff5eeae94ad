"""Progress that shows in logs: plain lines on a pipe or a file, as a stage runs, not only when it ends."""

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from secondtry.log import PlainProgress, RichLog, duration

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_progress_says_start_each_tenth_and_end_with_count_rate_and_time_left():
    lines, clock = [], Clock()
    bar = PlainProgress(lines.append, "round 1 attempts", 200, "problems", every_s=0, clock=clock)
    bar.begin()
    for _ in range(200):
        clock.now += 0.5
        bar.advance(1)
    bar.end()
    assert lines[0] == "round 1 attempts: started (200 problems)"
    tenths = [line for line in lines[1:-1]]
    assert len(tenths) == 9  # 10% .. 90%: the last tenth is the end line
    assert tenths[0] == "round 1 attempts: 20/200 problems (10%), 10s, 2.0/s, 1m 30s left"
    assert tenths[-1].startswith("round 1 attempts: 180/200 problems (90%), 1m 30s, 2.0/s, 10s left")
    assert lines[-1] == "round 1 attempts: done, 200 problems in 1m 40s, 2.0/s"


def test_a_slow_stage_gets_a_line_after_every_silence_of_every_s_even_without_progress():
    out = io.StringIO()
    log = RichLog(plain=True, every_s=0.2, file=out)
    with log.progress("round 0 evaluation", 10, "first attempts") as bar:
        time.sleep(0.7)  # nothing finished yet: the timer still says the stage is alive
        bar(1)
    text = out.getvalue()
    assert "round 0 evaluation: 0/10 first attempts (0%), 0s, none finished yet" in text
    assert text.count("none finished yet") >= 2
    assert text.splitlines()[-1].startswith("round 0 evaluation: done, 1 first attempts in ")


def test_a_failed_stage_says_where_it_stopped_and_a_terminal_gets_bars_not_lines():
    out = io.StringIO()
    log = RichLog(plain=True, every_s=0, file=out)
    try:
        with log.progress("round 2 training (lora, 40 examples)", 50, "steps") as bar:
            bar(7)
            raise RuntimeError("out of memory")
    except RuntimeError:
        pass
    last = out.getvalue().splitlines()[-1]
    assert last == "round 2 training (lora, 40 examples): stopped after 7 steps in 0s"
    assert RichLog(file=io.StringIO()).plain  # not a terminal: plain lines
    assert not RichLog(plain=False, file=io.StringIO()).plain
    assert duration(59.6) == "1m 00s" and duration(7325) == "2h 02m"


def test_in_a_log_file_a_long_message_stays_one_line():
    out = io.StringIO()
    log = RichLog(plain=True, every_s=0, file=out)
    message = "round 1: sampled pass@1 24.2% on the test set, +4.7 pp from the base; " * 3
    log.info(message.strip())
    log.warn(message.strip())
    lines = out.getvalue().splitlines()
    assert lines == [message.strip(), "warning: " + message.strip()]


@pytest.mark.integration
def test_the_cli_on_a_pipe_prints_progress_lines_while_a_stage_runs(tiny_model, tmp_path):
    """`secondtry run ... | tee log`: each stage's lines arrive as it runs, before the stage's end line."""
    env = {**os.environ, "PYTHONUNBUFFERED": "0", "COLUMNS": "80"}
    env.pop("OMP_NUM_THREADS", None)  # the command chooses its threads itself
    cmd = [
        sys.executable,
        "-m",
        "secondtry.cli",
        "run",
        str(ROOT / "configs" / "tiny-cpu.yaml"),
        f"model.path={tiny_model}",
        f"run_dir={tmp_path / 'runs'}",
        "stopping.max_rounds=1",
        "training.steps=40",
        "stopping.policies=[max_rounds]",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path
    )
    arrived: list[tuple[float, str, bool]] = []  # (when read, line, whether the command was still running)
    assert proc.stdout is not None
    for line in proc.stdout:
        arrived.append((time.monotonic(), line.rstrip("\n"), proc.poll() is None))
    assert proc.wait() == 0, "\n".join(line for _, line, _ in arrived[-30:])
    text = "\n".join(line for _, line, _ in arrived)
    bars = [line for line in text.splitlines() if "━" in line and not line.startswith(("┏", "┡"))]
    assert not bars, bars  # no progress bar drawn into the pipe (the tables' rules are not bars)
    assert re.search(r"^cpu: \d+ torch threads? \(", text, re.M)
    label = "round 1 training (lora, "
    steps = [(t, line, alive) for t, line, alive in arrived if line.startswith(label)]
    started = [s for s in steps if ": started (40 steps)" in s[1]]
    middle = [s for s in steps if re.search(r": \d+/40 steps \(\d+%\), ", s[1])]
    done = [s for s in steps if ": done, 40 steps in " in s[1]]
    assert started and done and len(middle) >= 5, text
    assert all(alive for _, _, alive in middle)  # read from the pipe while the command ran
    assert middle[0][0] < done[0][0] - 0.05, "progress lines came only when the stage ended"
    for stage in ("round 0 evaluation", "round 1 attempts", "round 1 evaluation"):
        assert f"{stage}: started (" in text and f"{stage}: done, " in text, stage
