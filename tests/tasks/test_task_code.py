"""HumanEval and MBPP loaders on the real files, and errors that name the file, line (or item) and field."""

from __future__ import annotations

import gzip
import json

import pytest

from secondtry.config import TaskConfig
from secondtry.tasks.code import load_humaneval, load_mbpp
from secondtry.tasks.io import TaskDataError


def humaneval(path, **kw):
    return load_humaneval(TaskConfig(name="humaneval", path=str(path), **{"split": "test", **kw}), 42)


def mbpp(path, **kw):
    return load_mbpp(TaskConfig(name="mbpp", path=str(path), **{"split": "test", **kw}), 42)


def test_humaneval(data_dir):
    probs = humaneval(data_dir / "humaneval" / "HumanEval.jsonl.gz")
    assert len(probs) == 164 and probs[0].id == "HumanEval/0" and len({p.id for p in probs}) == 164
    p = probs[0]
    assert p.meta == {
        "entry_point": "has_close_elements",
        "code_prompt": p.solution[: len(p.meta["code_prompt"])],
    }
    assert f"```python\n{p.meta['code_prompt'].strip()}\n```" in p.prompt
    assert p.prompt.endswith("in one ```python code block.")
    assert p.answer.lstrip().startswith("METADATA") and "def check(candidate)" in p.answer
    assert p.solution.startswith("from typing import List") and "return False" in p.solution


def test_humaneval_has_only_a_test_split(data_dir):
    with pytest.raises(TaskDataError, match=r"only a test split \(got split: train\); set split: test"):
        humaneval(data_dir / "humaneval" / "HumanEval.jsonl.gz", split="train")


def test_instruction_override_limit_and_shuffle(data_dir):
    probs = humaneval(
        data_dir / "humaneval" / "HumanEval.jsonl.gz", instruction="Answer in Python.", limit=5, shuffle=True
    )
    assert len(probs) == 5 and all(p.prompt.endswith("```\n\nAnswer in Python.") for p in probs)
    assert [p.id for p in probs] != [f"HumanEval/{i}" for i in range(5)]


@pytest.mark.parametrize(
    "split, n, first, last",
    [("test", 500, 11, 510), ("train", 374, 601, 974), ("validation", 90, 511, 600), ("prompt", 10, 1, 10)],
)
def test_mbpp_splits_are_task_id_ranges(data_dir, split, n, first, last):
    probs = mbpp(data_dir / "mbpp" / "mbpp.jsonl", split=split)
    ids = [int(p.id) for p in probs]
    assert len(probs) == n and (min(ids), max(ids)) == (first, last)


def test_mbpp_problem(data_dir):
    probs = {p.id: p for p in mbpp(data_dir / "mbpp" / "mbpp.jsonl")}
    p = probs["11"]
    assert p.prompt.startswith("Write a python function to remove first and last occurrence")
    assert "Your code should pass these tests:\n\n```python\nassert remove_Occ(" in p.prompt
    assert p.answer.count("assert ") == 3 and p.solution.startswith("def remove_Occ")
    assert probs["367"].meta["test_setup"] and probs["367"].answer.startswith(
        probs["367"].meta["test_setup"].strip()
    )


def test_sanitized_mbpp(data_dir):
    path = data_dir / "mbpp" / "sanitized-mbpp.json"
    sizes = {split: len(mbpp(path, split=split)) for split in ("test", "train", "validation", "prompt")}
    assert sizes == {"test": 257, "train": 120, "validation": 43, "prompt": 7}
    with_imports = [p for p in mbpp(path) if p.meta["test_imports"]]
    assert with_imports and all(p.answer.startswith(p.meta["test_imports"][0]) for p in with_imports)
    limited = mbpp(path, limit=3, shuffle=True)
    assert len(limited) == 3 and all(11 <= int(p.id) <= 510 for p in limited)


def test_unknown_mbpp_split(tmp_path):
    with pytest.raises(
        TaskDataError, match="unknown MBPP split 'dev'; valid: prompt, test, validation, train"
    ):
        mbpp(tmp_path / "x.jsonl", split="dev")


MBPP_ROW = {
    "task_id": 11,
    "text": "Add.",
    "code": "def add(a, b): return a + b",
    "test_list": ["assert add(1, 2) == 3"],
    "test_setup_code": "",
    "challenge_test_list": [],
}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"test_list": []}, r"bad\.jsonl:2: field 'test_list' should be a non-empty list"),
        ({"test_list": None}, r"bad\.jsonl:2: field 'test_list' should be a non-empty list"),
        ({"test_list": ["assert x", ""]}, r"bad\.jsonl:2: field 'test_list' holds an empty or non-text test"),
        ({"text": ""}, r"bad\.jsonl:2: field 'text' is empty"),
        ({"task_id": None}, r"bad\.jsonl:2: missing field 'task_id'"),
        ({"task_id": 11}, r"bad\.jsonl:2: duplicate id '11' \(first seen at .*bad\.jsonl:1\)"),
    ],
)
def test_bad_mbpp_rows_name_file_line_and_field(tmp_path, change, message):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps(MBPP_ROW) + "\n" + json.dumps({**MBPP_ROW, "task_id": 12, **change}) + "\n")
    with pytest.raises(TaskDataError, match=message):
        mbpp(f)


def test_mbpp_rows_outside_the_split_and_skip_mode(tmp_path):
    f = tmp_path / "m.jsonl"
    rows = [MBPP_ROW, {**MBPP_ROW, "task_id": 700}, {**MBPP_ROW, "task_id": 12, "test_list": []}]
    f.write_text("\n".join(json.dumps(r) for r in rows))
    probs = mbpp(f, on_bad_row="skip")
    assert [p.id for p in probs] == ["11"] and probs.skipped == 1 and "m.jsonl:3" in probs.skip_reasons[0]
    with pytest.raises(TaskDataError, match=r"no problems with task_id 511-600 \(the validation split\)"):
        mbpp(f, split="validation", on_bad_row="skip")


@pytest.mark.parametrize(
    "content, message",
    [
        (
            '[{"task_id": 11, "prompt": "Add.", "code": "", "test_list": ["assert 1"]}, 3]',
            r"bad\.json\[1\]: expected a JSON object, got int",
        ),
        (
            '[{"task_id": 11, "prompt": "Add.", "code": ""}]',
            r"bad\.json\[0\]: field 'test_list' should be a non-empty list",
        ),
        (
            '[{"task_id": 11, "prompt": "Add.", "test_list": ["assert 1"], "test_imports": "import math"}]',
            r"bad\.json\[0\]: field 'test_imports' should be a list of import lines",
        ),
        (
            '[{"task_id": 11,\n "prompt": "Add."\n "code": ""}]',
            r"bad\.json:3: malformed JSON \(Expecting ',' delimiter",
        ),
        ("[]", r"no problems loaded"),
    ],
)
def test_bad_json_array_names_the_item(tmp_path, content, message):
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(TaskDataError, match=message):
        mbpp(f)


def test_a_json_file_of_lines_still_reads_as_jsonl(tmp_path):
    f = tmp_path / "lines.json"
    f.write_text(json.dumps(MBPP_ROW) + "\n")
    assert [p.id for p in mbpp(f)] == ["11"]


HE_ROW = {
    "task_id": "HumanEval/0",
    "prompt": 'def f(x):\n    """Double."""\n',
    "entry_point": "f",
    "canonical_solution": "    return 2 * x\n",
    "test": "def check(candidate):\n    assert candidate(2) == 4\n",
}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"test": None}, r"bad\.jsonl\.gz:1: missing field 'test'"),
        ({"test": "assert True"}, r"bad\.jsonl\.gz:1: field 'test' defines no check\(candidate\) function"),
        ({"entry_point": " "}, r"bad\.jsonl\.gz:1: field 'entry_point' is empty"),
        ({"prompt": ["def f(x):"]}, r"bad\.jsonl\.gz:1: field 'prompt' should be text, got list"),
    ],
)
def test_bad_humaneval_rows(tmp_path, change, message):
    f = tmp_path / "bad.jsonl.gz"
    with gzip.open(f, "wt") as out:
        out.write(json.dumps({**HE_ROW, **change}) + "\n")
    with pytest.raises(TaskDataError, match=message):
        humaneval(f)
