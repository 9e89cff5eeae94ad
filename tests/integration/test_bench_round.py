"""`secondtry bench round` on a CPU with a tiny architecture: the reference loop runs with fixed output lengths
and forced verdict rates, every stage is timed, and the projection is the arithmetic it says it is."""

import json
import math

import pytest

from secondtry.bench.round import draw_length, run
from secondtry.config import ConfigError
from secondtry.store import read_jsonl

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
SMALL = [
    "model.dtype=float32",
    "backend.device=cpu",
    "backend.batch_size=8",
    "sampling.max_new_tokens=32",
    "training.batch_size=2",
    "training.max_length=256",
    "evaluation.samples=2",
    "evaluation.retry_n=2",
    "evaluation.pass_k=[1,2]",
    "verifier.workers=1",
    "checkpoint.chunk=16",
]


def _math(path, n):
    rows = [
        {
            "problem": f"What is {i} + {i + 3}? Give the sum.",
            "solution": f"{i} + {i + 3} = \\boxed{{{2 * i + 3}}}",
            "answer": str(2 * i + 3),
            "unique_id": f"p{i}",
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_lengths_are_log_normal_within_bounds():
    draws = [draw_length(i, 380, 0.6, 1024) for i in range(4000)]
    assert min(draws) >= 16 and max(draws) == 1024  # the cap is reached: ~5 % above it
    assert draw_length("x", 380, 0.6, 1024) == draw_length("x", 380, 0.6, 1024)
    median = sorted(draws)[2000]
    assert abs(median - 380) < 25
    logs = [math.log(d) for d in draws if 16 < d < 1024]
    assert 0.45 < (sum((x - sum(logs) / len(logs)) ** 2 for x in logs) / len(logs)) ** 0.5 < 0.65


def _small_round(tmp, problems=60, **kwargs):
    """A measured round on the tiny architecture: by default 24 training and 8 test problems, 4 SFT steps,
    short drawn lengths (keyword arguments replace `run`'s)."""
    train, test = _math(tmp / "train.jsonl", problems), _math(tmp / "test.jsonl", 10)
    args = dict(train=24, evaluate=8, steps=4, median_new=20, sigma=0.5, pass_rate=0.4, overrides=SMALL)
    config = ROOT / "configs" / "math500-qwen3-1.7b.yaml"
    return run(config, train, test, tmp / "work", "tiny-qwen3", **{**args, **kwargs})


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("round")
    workload, figures = _small_round(tmp)
    return tmp / "work" / "runs" / "math500-qwen3-1.7b", workload, figures


def test_the_loop_ran_every_stage_with_fixed_lengths(measured):
    root, workload, figures = measured
    attempts = list(read_jsonl(root / "round_1" / "attempts.jsonl"))
    assert figures["first_attempts"] == 24 == workload["train_problems"]
    assert 0 < figures["retries"] < 24 and figures["kept"] > 0 and figures["sft_steps"] == 4
    for (
        a
    ) in attempts:  # EOS ignored: each output has exactly its drawn length; only one drawn at the cap is cut
        assert 16 <= a["n_tokens"] <= 32 and a["finish_reason"] == (
            "length" if a["n_tokens"] == 32 else "stop"
        )
    assert len({a["n_tokens"] for a in attempts}) > 3
    for stage in ("attempts_s", "filter_s", "train_s", "eval_s", "base_eval_s"):
        assert figures[stage] >= 0
    assert figures["verdicts"] >= len(attempts) and figures["real_verdicts_correct"] == 1.0
    # where the generation stages' time went: generating and verifying are inside the stage's wall time
    for stage in ("attempts", "eval"):
        parts = (
            figures[f"{stage}_generate_s"]
            + figures.get(f"{stage}_verify_s", 0)
            + figures.get(f"{stage}_load_s", 0)
        )
        assert 0 < figures[f"{stage}_generate_s"] and parts <= figures[f"{stage}_s"] + 1e-3


def test_each_generation_stage_is_one_engine_session_set_beside_the_engine_rate(measured):
    _, _, figures = measured
    sessions = figures["sessions"]
    assert len(sessions) >= 3  # base evaluation, attempts, evaluation (each its own session)
    assert all(s["slots"] >= 1 and s["max_len"] > 32 and s.get("rebuilds", 0) == 0 for s in sessions)
    assert figures["engine_tok_s"] > 0
    for stage in ("attempts", "eval"):
        assert figures[f"{stage}_share"] == round(figures[f"{stage}_tok_s"] / figures["engine_tok_s"], 3)


def test_streamed_stages_keep_the_engine_fuller_than_turn_by_turn_calls(measured, tmp_path):
    """The same round generated turn by turn (`waves`: a `generate` call per turn and chunk, the path before
    streams) makes the same tokens in more decode steps: every call drains the engine at its end."""
    _, _, streamed = measured
    workload, waves = _small_round(tmp_path, waves=True)
    assert workload["generation"] == "turn by turn (--waves)"
    for key in ("attempts_tokens", "eval_tokens", "first_attempts", "retries", "kept"):
        assert waves[key] == streamed[key], key  # the same work, the same records
    assert len(waves["sessions"]) > len(streamed["sessions"]) == 3  # a session per call against one a stage
    steps = {k: sum(s["decode_steps"] for s in f["sessions"]) for k, f in (("s", streamed), ("w", waves))}
    tokens = {k: sum(s["decoded_tokens"] for s in f["sessions"]) for k, f in (("s", streamed), ("w", waves))}
    assert tokens["s"] == tokens["w"] and steps["s"] < steps["w"]
    assert 0 < waves["occupancy"] < streamed["occupancy"] <= 1


def test_forced_verdicts_set_the_share_retried(measured):
    root, _, figures = measured
    first = [a for a in read_jsonl(root / "round_1" / "attempts.jsonl") if a["kind"] == "first"]
    failed = sum(a["verdict"]["correct"] is False for a in first)
    assert figures["retries"] == failed  # a retry for each failed first attempt (one retry turn)
    assert 0.2 < failed / len(first) < 0.95


def test_projection_scales_attempts_and_eval_not_training(measured):
    _, workload, figures = measured
    p, held = figures["projected"], workload["full_validation_problems"]
    assert (
        held == 500
    )  # the config's validation split: out of training, evaluated every round like the test set
    assert p["attempts_s"] == pytest.approx(figures["attempts_s"] * (12000 - held) / 24, rel=0.01, abs=0.5)
    assert p["eval_s"] == pytest.approx(figures["eval_s"] * (500 + held) / 8, rel=0.01, abs=0.5)
    assert p["train_s"] == pytest.approx(
        figures["train_s"] * 500 / 4, rel=0.01, abs=0.5
    )  # the config's 500 steps
    assert figures["projected_round_min"] == pytest.approx(sum(p.values()) / 60, abs=0.02)
    assert workload["full_train_problems"] == 12000 and workload["pass_rate_forced"] == 0.4
    assert workload["sft_steps"] == 4 and workload["sft_steps_projected"] == 500


def test_a_bad_override_is_named(tmp_path):
    with pytest.raises(ConfigError, match="training.nonsense"):
        _small_round(tmp_path, 10, train=4, evaluate=2, overrides=SMALL + ["training.nonsense=1"])


def test_a_round_that_keeps_nothing_is_named_not_a_traceback(tmp_path):
    """Every drawn length at the cap: every output is cut, nothing is kept, and the loop stops before the
    evaluation the benchmark measures; the error names the round and what to change."""
    with pytest.raises(ConfigError, match="round_1.*ended before its evaluation"):
        _small_round(tmp_path, 12, train=6, evaluate=2, steps=2, median_new=400, sigma=0.1)


def test_the_benchmark_injects_its_components_and_patches_nothing():
    """Drawn lengths reach the cap by design, so the benchmark turns the cut warning off through `loop.run`'s
    argument; shipped classes and functions stay as they are, and no module of bench/ assigns to another's."""
    import ast

    from secondtry import loop
    from secondtry.backends.engine import Engine
    from secondtry.backends.hf import HFSampler
    from secondtry.bench.round import ForcedVerdicts, seams
    from secondtry.verifiers.pool import VerifierPool

    def shipped():
        return Engine.generate, HFSampler.__init__, HFSampler._engine, VerifierPool.map, loop.warn_if_cut

    before = shipped()
    parts = seams(20, 0.5, 0.4, {})
    assert parts["warn_cut"] is False and issubclass(parts["make_sampler"], HFSampler)
    assert shipped() == before
    assert set(parts) <= set(__import__("inspect").signature(loop.run).parameters)
    assert ForcedVerdicts.map is not VerifierPool.map
    assigned = []
    for path in (ROOT / "src" / "secondtry" / "bench").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {
            (a.asname or a.name).split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for a in node.names
        }
        for node in ast.walk(tree):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, (ast.AugAssign, ast.AnnAssign))
                else []
            )
            for sub in (s for t in targets for s in ast.walk(t)):  # `module.x = ...`, `Class.x = ...`
                if (
                    isinstance(sub, ast.Attribute)
                    and isinstance(sub.value, ast.Name)
                    and sub.value.id in imported
                ):
                    assigned.append(f"{path.name}:{node.lineno}: {sub.value.id}.{sub.attr}")
    assert not assigned, assigned
