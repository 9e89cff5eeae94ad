"""A generation that ran to max_new_tokens has no ending: it is judged incorrect without being read, the
verdict records why, and it is never trained on, even where its text holds the right answer."""

from pathlib import Path

import pytest

from secondtry.backends import BACKENDS
from secondtry.config import load_config
from secondtry.loop import run
from secondtry.store import read_json, read_jsonl
from secondtry.tasks.synthetic import solve
from secondtry.types import Completion

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny-cpu.yaml"


class ScriptedSampler:
    """First attempts are wrong; a retry is the right worked solution, cut at the length limit for even-numbered
    problems and ended (EOS) for the others. Evaluation attempts are wrong."""

    def __init__(self, model_path, cfg, log) -> None:
        self.cfg = cfg

    def render(self, messages) -> str:
        return "\n".join(m.content for m in messages)

    def generate(self, conversations, params, n=1, seed=0, progress=None, keys=None):
        out = []
        for conv, key in zip(conversations, keys):
            retry = len(conv) > 1
            operands, ops = _parse(conv[0].content)
            right = solve(operands, ops)
            cut = retry and int(key.rsplit("-", 1)[-1]) % 2 == 0
            text = right if retry else "0+0=0|Answer: 999"
            out.append([Completion(text, 20, "length" if cut else "stop")] * n)
            if progress and not retry:
                progress(1)
        return out

    def close(self) -> None:
        pass


def _parse(prompt: str):
    import re

    expr = prompt.split()[0] if " " in prompt else prompt
    tokens = re.findall(r"\d+|[+-]", expr)
    return [int(t) for t in tokens[::2]], tokens[1::2]


@pytest.mark.parametrize("judge_text", [False, True])
def test_a_cut_generation_holding_the_right_answer_is_never_trained_on(
    tiny_model, tmp_path, monkeypatch, judge_text
):
    monkeypatch.setitem(BACKENDS, "hf", ScriptedSampler)
    cfg = load_config(
        CONFIG,
        [
            f"model.path={tiny_model}",
            f"run_dir={tmp_path}",
            "stopping.max_rounds=1",
            "conditions.retries=1",
            "training.steps=2",
            "eval_task.options.count=8",
            f"verifier.judge_cut_text={str(judge_text).lower()}",
        ],
    )
    run(cfg)
    folder = cfg.run_path / "round_1"
    retries = [a for a in read_jsonl(folder / "attempts.jsonl") if a["kind"] == "retry"]
    cut = [a for a in retries if a["finish_reason"] == "length"]
    ended = [a for a in retries if a["finish_reason"] == "stop"]
    assert cut and ended
    for a in cut:
        assert a["completion"] == solve(
            *_parse(a["messages"][0]["content"])
        )  # the right worked answer is there
        assert a["verdict"]["details"]["finish_reason"] == "length"
        if judge_text:  # the option reads the text, as if it had ended
            assert a["verdict"]["correct"] is True
        else:
            assert a["verdict"]["correct"] is False and a["verdict"]["reason"] == "cut at length"
    assert all(a["verdict"]["correct"] is True for a in ended)
    kept = {e["problem_id"] for e in read_jsonl(folder / "sft.jsonl")}
    assert kept == {a["problem_id"] for a in ended}  # never the cut ones, whatever their verdict
    figures = read_json(folder / "round.json")["figures"]["train"]
    assert figures["examples"]["rejected"]["cut"] == len(cut) and figures["cut"] == len(cut)
    assert figures["retry_solved"] == len(ended) + (len(cut) if judge_text else 0)
