import json

import pytest

from secondtry.config import TaskConfig
from secondtry.tasks import TASKS, TaskDataError


def load(name, path, **kw):
    return TASKS[name](TaskConfig(name=name, path=str(path), **kw), 42)


def test_math_loads_math500_and_train(data_dir):
    test = load("math", data_dir / "math" / "test.jsonl")
    assert len(test) == 500 and len({p.id for p in test}) == 500
    p = test[0]
    assert p.id == "test/precalculus/807.json" or p.id.startswith("test/")
    assert p.prompt.endswith("\\boxed{}.") and p.answer and p.meta["subject"]
    train = load("math", data_dir / "math" / "train.jsonl", on_bad_row="skip")
    assert len(train) == 12000 - 2 and train.skipped == 2  # two rows have an empty \boxed{}
    with pytest.raises(TaskDataError, match=r"train\.jsonl:\d+: field 'answer' is empty"):
        load("math", data_dir / "math" / "train.jsonl")


def test_gsm8k_final_answer_and_limit_shuffle(data_dir):
    test = load("gsm8k", data_dir / "gsm8k" / "test.jsonl")
    assert len(test) == 1319 and test[0].answer == "18" and "####" not in test[0].solution
    a = load("gsm8k", data_dir / "gsm8k" / "test.jsonl", limit=10, shuffle=True)
    b = load("gsm8k", data_dir / "gsm8k" / "test.jsonl", limit=10, shuffle=True)
    assert [p.id for p in a] == [p.id for p in b] != [p.id for p in test[:10]]


def test_jsonl_with_a_column_mapping(tmp_path):
    f = tmp_path / "qa.jsonl"
    f.write_text("\n".join(json.dumps({"uid": f"q{i}", "q": f"{i}+1?", "a": i + 1, "src": "x"}) for i in range(3)))
    probs = load("jsonl", f, columns={"id": "uid", "question": "q", "answer": "a"})
    assert [(p.id, p.prompt, p.answer) for p in probs][1] == ("q1", "1+1?", "2")
    assert probs[0].meta == {"src": "x"}
    with pytest.raises(TaskDataError, match="unknown columns role"):
        load("jsonl", f, columns={"qq": "q"})


@pytest.mark.parametrize("content, message", [
    (b'{"problem": "x", "answer": "1"}\n{"problem": "y", "answer": \n', r"bad\.jsonl:2: malformed JSON"),
    (b'{"problem": "x", "answer": "1"}\n{"problem": "y"}\n', r"bad\.jsonl:2: no 'answer' field"),
    (b'{"problem": "", "answer": "1"}\n', r"bad\.jsonl:1: field 'problem' is empty"),
    (b'{"problem": "x", "answer": "1"}\n\xff\xfe\n', r"bad\.jsonl:2: not UTF-8"),
    (b'[1, 2]\n', r"bad\.jsonl:1: expected a JSON object"),
    (b'{"problem": "x", "answer": "1", "unique_id": "a"}\n{"problem": "y", "answer": "2", "unique_id": "a"}\n',
     r"bad\.jsonl:2: duplicate id 'a' \(first seen at .*bad\.jsonl:1\)"),
    (b'', r"no problems loaded"),
])
def test_bad_rows_name_file_and_line(tmp_path, content, message):
    f = tmp_path / "bad.jsonl"
    f.write_bytes(content)
    with pytest.raises(TaskDataError, match=message):
        load("math", f)


def test_skip_mode_counts_bad_rows(tmp_path):
    f = tmp_path / "some.jsonl"
    f.write_text('{"problem": "x", "answer": "1"}\n{"problem": "y"}\n{"problem": "z", "answer": "3"}\n')
    probs = load("math", f, on_bad_row="skip")
    assert len(probs) == 2 and probs.skipped == 1 and "some.jsonl:2" in probs.skip_reasons[0]


def test_missing_file_is_named(tmp_path):
    with pytest.raises(TaskDataError, match="task data not found: .*nope.jsonl"):
        load("math", tmp_path / "nope.jsonl")


def test_a_dataset_folder_loads_through_datasets(tmp_path, data_dir):
    """The `datasets` path (hub ids) exercised offline on a local parquet folder."""
    import datasets

    rows = [json.loads(line) for line in (data_dir / "gsm8k" / "test.jsonl").read_text().splitlines()[:20]]
    folder = tmp_path / "gsm8k_parquet"
    folder.mkdir()
    datasets.Dataset.from_list(rows).to_parquet(str(folder / "test-00000.parquet"))
    probs = load("gsm8k", folder, split="test")  # `datasets` names the split after the file name
    assert len(probs) == 20 and probs[0].answer == "18"
    with pytest.raises(TaskDataError, match="could not load split 'nope'"):
        load("gsm8k", folder, split="nope")


def test_skip_mode_keeps_the_first_row_of_a_duplicate_id(tmp_path):
    f = tmp_path / "dup.jsonl"
    f.write_text("".join(json.dumps({"problem": p, "answer": "1", "unique_id": i}) + "\n"
                         for p, i in (("x", "a"), ("y", "a"), ("z", "b"))))
    probs = load("math", f, on_bad_row="skip")
    assert [(p.id, p.prompt.split("\n")[0]) for p in probs] == [("a", "x"), ("b", "z")] and probs.skipped == 1
    assert "dup.jsonl:2: duplicate id 'a' (first seen at" in probs.skip_reasons[0]
