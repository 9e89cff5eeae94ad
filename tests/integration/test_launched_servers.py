"""Two rounds whose every generation stage samples from a server secondtry starts (backend.launch),
against the same run on the hf backend:

- through the real `transformers serve`, a server per stage on the round's merged model: training attempts
  greedy (so both runs train on the same examples and write the same weights), evaluation greedy and sampled.
  Greedy records are identical. Sampled records have the same problems, samples and retry rule, not the same
  text: the hf backend draws with its own seeded Gumbel noise, transformers serve with torch's generator
  seeded by the request (docs/openai-backend.md);
- through a scripted vLLM (tests/backends/scripted_vllm.py) with backend.lora: one server for the whole run on
  the base model, each round's adapter (training.merge: false) loaded through /v1/load_lora_adapter; the
  scripted server samples with the hf backend's seeded noise, so every record, sampled too, is identical.

Both check the process table: no server is left behind.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch

from secondtry.config import load_config
from secondtry.loop import run
from secondtry.models import load_model
from secondtry.store import read_jsonl

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "tiny-cpu.yaml"
SCRIPTED = ROOT / "tests" / "backends" / "scripted_vllm.py"
# one-operation training problems, correct first attempts trained on too: the tiny model solves a few of
# those (deeper ones and retries hardly ever), so both rounds train
SMALL = [
    "train_task.options={count: 24, levels: [1]}",
    "eval_task.options={count: 8, levels: [1, 2]}",
    "conditions.retries=1",
    "filter.include_first_attempts=true",
    "checkpoint.chunk=8",
    "stopping.policies=[max_rounds]",
    "evaluation.samples=2",
    "evaluation.retry_n=2",
]
SERVE = "transformers serve {model} --host {host} --port {port} --device cpu --dtype float32"
STAGES = ["round_0-eval", "round_1-attempts", "round_1-eval", "round_2-attempts", "round_2-eval"]


def two_rounds(tiny_model, root, name, *overrides):
    where = [f"model.path={tiny_model}", f"run_dir={root}", f"name={name}"]
    cfg = load_config(CONFIG, [*where, *SMALL, *overrides])
    run(cfg)
    return cfg.run_path


def records(path: Path, name: str, kind: str | None = None) -> list[dict]:
    return [r for r in read_jsonl(path / name) if kind is None or r["kind"] == kind]


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = (load_model(str(p), "float32", torch.device("cpu")).state_dict() for p in (a, b))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def check_chains(attempts: list[dict], retry_n: int) -> None:
    """Each problem's sample 0 is retried while it fails, at most retry_n - 1 times, and only then."""
    by_problem: dict[str, list[dict]] = {}
    for a in attempts:
        if a["kind"] in ("sample", "retry"):
            by_problem.setdefault(a["problem_id"], []).append(a)
    for mine in by_problem.values():
        chain = [a for a in mine if a["kind"] == "sample" and a["sample"] == 0]
        chain += sorted((a for a in mine if a["kind"] == "retry"), key=lambda a: a["turn"])
        for before in chain[:-1]:
            assert before["verdict"]["correct"] is False, "a retry after a right attempt"
        last = chain[-1]
        assert len(chain) == retry_n or last["verdict"]["correct"] is not False, "a failure left unretried"


@pytest.fixture(scope="module")
def greedy_training(tiny_model, tmp_path_factory):
    """The same two rounds on the hf backend and through transformers serve started by backend.launch."""
    root = tmp_path_factory.mktemp("launched")
    # greedy training attempts, sampled evaluation
    common = ["sampling.temperature=0", "evaluation.sampling={temperature: 1.0, max_new_tokens: 48}"]
    hf = two_rounds(tiny_model, root, "hf", *common)
    served = two_rounds(
        tiny_model,
        root,
        "served",
        *common,
        "backend.name=openai",
        "backend.server=transformers",
        f"backend.launch={SERVE}",
        "backend.concurrency=2",
        "backend.launch_env={OMP_NUM_THREADS: '1'}",
    )
    return hf, served


def test_greedy_records_and_trained_weights_are_the_hf_backends(greedy_training):
    hf, served = greedy_training
    assert (hf / "round_2" / "eval.jsonl").is_file(), "the run stopped before round 2"
    for k in (1, 2):
        assert records(served, f"round_{k}/attempts.jsonl") == records(hf, f"round_{k}/attempts.jsonl")
        assert records(served, f"round_{k}/sft.jsonl") == records(hf, f"round_{k}/sft.jsonl")
        assert read_jsonl(hf / f"round_{k}" / "sft.jsonl"), "a round with no examples to train on"
        assert same_weights(hf / f"round_{k}" / "model", served / f"round_{k}" / "model")
    for k in (0, 1, 2):
        greedy = records(hf, f"round_{k}/eval_attempts.jsonl", "greedy")
        assert records(served, f"round_{k}/eval_attempts.jsonl", "greedy") == greedy
        assert [r["greedy"] for r in read_jsonl(served / f"round_{k}" / "eval.jsonl")] == [
            r["greedy"] for r in read_jsonl(hf / f"round_{k}" / "eval.jsonl")
        ]


def test_sampled_records_have_the_same_problems_samples_and_retry_rule(greedy_training):
    hf, served = greedy_training
    for k in (0, 1, 2):
        runs = [records(p, f"round_{k}/eval_attempts.jsonl") for p in (hf, served)]
        firsts = [sorted((a["problem_id"], a["sample"]) for a in r if a["kind"] == "sample") for r in runs]
        assert firsts[0] == firsts[1] and len(firsts[0]) == 8 * 2
        for attempts in runs:
            check_chains(attempts, retry_n=2)
        evals = [read_jsonl(p / f"round_{k}" / "eval.jsonl") for p in (hf, served)]
        assert [(r["problem_id"], len(r["samples"])) for r in evals[0]] == [
            (r["problem_id"], len(r["samples"])) for r in evals[1]
        ]
        sampled = {(a["problem_id"], a["sample"]): a["completion"] for a in runs[1] if a["kind"] == "sample"}
        greedy = {a["problem_id"]: a["completion"] for a in runs[1] if a["kind"] == "greedy"}
        assert any(text != greedy[p] for (p, _), text in sampled.items())  # the server did sample


def test_each_stage_had_its_server_and_none_is_left(greedy_training, tiny_model, processes):
    _, served = greedy_training
    logs = served / "logs"
    assert sorted(p.name for p in logs.glob("server-*.log")) == sorted(f"server-{s}.log" for s in STAGES)
    pids = []
    for stage in STAGES:
        text = (logs / f"server-{stage}.log").read_text()
        assert text.count("] starting for stage") == 1 and "stopping (SIGTERM to the process group)" in text
        pids += [int(p) for p in re.findall(r"Started server process \[(\d+)\]", text)]
    assert len(pids) == len(STAGES) and not any(processes.alive(p) for p in pids)
    assert not processes.serving(str(tiny_model))


def test_adapters_through_a_scripted_vllm_give_the_hf_backends_records(tiny_model, tmp_path, processes):
    merge = ["training.merge=false"]
    hf = two_rounds(tiny_model, tmp_path, "hf-adapters", *merge)
    events = tmp_path / "events.jsonl"
    launch = (
        f"{sys.executable} {SCRIPTED} --model {{model}} --port {{port}} --enable-lora "
        f"--max-lora-rank {{lora_rank}} --seed {{seed}} --record {events}"
    )
    served = two_rounds(
        tiny_model,
        tmp_path,
        "vllm-adapters",
        *merge,
        "backend.name=openai",
        "backend.server=vllm",
        "backend.lora=true",
        f"backend.launch={launch}",
        "backend.concurrency=4",
    )
    assert (hf / "round_2" / "eval.jsonl").is_file(), "the run stopped before round 2"
    for k in (0, 1, 2):
        for name in ["eval_attempts.jsonl", "eval.jsonl"] + (["attempts.jsonl", "sft.jsonl"] if k else []):
            assert read_jsonl(served / f"round_{k}" / name) == read_jsonl(hf / f"round_{k}" / name), (k, name)
    for k in (1, 2):
        folder = served / f"round_{k}" / "model"
        assert not (folder / "config.json").exists()  # the adapter alone
        config = json.loads((folder / "adapter_config.json").read_text())
        assert config["r"] == 8 * k  # round 2: round 1's adapter and its own, stacked
        assert config["base_model_name_or_path"] == str(tiny_model)
        assert (folder / "adapter_model.safetensors").read_bytes() == (
            hf / f"round_{k}" / "model" / "adapter_model.safetensors"
        ).read_bytes()
    seen = [json.loads(line) for line in events.read_text().splitlines()]
    assert len({e["pid"] for e in seen}) == 1  # one server, on the base model, for the whole run
    loads = [e["name"] for e in seen if e["event"] == "load"]
    assert [n.split("-")[0] for n in loads] == ["round_1", "round_2"]
    asked = {e["model"] for e in seen if e["event"] == "request"}
    assert asked == {str(tiny_model), *loads}
    assert [p.name for p in (served / "logs").glob("server-*.log")] == ["server-round_0-eval.log"]
    assert not processes.alive(seen[0]["pid"]) and not processes.serving(str(tiny_model))
