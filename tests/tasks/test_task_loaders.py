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
    f.write_text(
        "\n".join(json.dumps({"uid": f"q{i}", "q": f"{i}+1?", "a": i + 1, "src": "x"}) for i in range(3))
    )
    probs = load("jsonl", f, columns={"id": "uid", "question": "q", "answer": "a"})
    assert [(p.id, p.prompt, p.answer) for p in probs][1] == ("q1", "1+1?", "2")
    assert probs[0].meta == {"src": "x"}
    with pytest.raises(TaskDataError, match="unknown columns role"):
        load("jsonl", f, columns={"qq": "q"})


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"problem": "x", "answer": "1"}\n{"problem": "y", "answer": \n', r"bad\.jsonl:2: malformed JSON"),
        (b'{"problem": "x", "answer": "1"}\n{"problem": "y"}\n', r"bad\.jsonl:2: no 'answer' field"),
        (b'{"problem": "", "answer": "1"}\n', r"bad\.jsonl:1: field 'problem' is empty"),
        (b'{"problem": "x", "answer": "1"}\n\xff\xfe\n', r"bad\.jsonl:2: not UTF-8"),
        (b"[1, 2]\n", r"bad\.jsonl:1: expected a JSON object"),
        (
            b'{"problem": "x", "answer": "1", "unique_id": "a"}\n{"problem": "y", "answer": "2", "unique_id": "a"}\n',
            r"bad\.jsonl:2: duplicate id 'a' \(first seen at .*bad\.jsonl:1\)",
        ),
        (b"", r"no problems loaded"),
    ],
)
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
    f.write_text(
        "".join(
            json.dumps({"problem": p, "answer": "1", "unique_id": i}) + "\n"
            for p, i in (("x", "a"), ("y", "a"), ("z", "b"))
        )
    )
    probs = load("math", f, on_bad_row="skip")
    assert [(p.id, p.prompt.split("\n")[0]) for p in probs] == [("a", "x"), ("b", "z")] and probs.skipped == 1
    assert "dup.jsonl:2: duplicate id 'a' (first seen at" in probs.skip_reasons[0]


# ------------------------------------------------------------------ hub ids, local overrides, bad lines


class FakeHub:
    """`datasets.load_dataset` for a hub id, offline: records each call, returns the rows given a split."""

    def __init__(self, splits):
        self.splits, self.calls = splits, []

    def __call__(self, path, name=None, split=None, **kw):
        import datasets

        self.calls.append((path, name, split))
        if split is None:
            return datasets.DatasetDict(
                {s: datasets.Dataset.from_list(rows) for s, rows in self.splits.items()}
            )
        if split not in self.splits:
            raise ValueError(f"Unknown split {split!r}")
        return datasets.Dataset.from_list(self.splits[split])


def gsm8k_rows(data_dir, n=5):
    return [json.loads(line) for line in (data_dir / "gsm8k" / "test.jsonl").read_text().splitlines()[:n]]


def test_a_hub_id_goes_to_datasets_with_its_subset_and_split(monkeypatch, data_dir):
    import datasets

    hub = FakeHub({"test": gsm8k_rows(data_dir)})
    monkeypatch.setattr(datasets, "load_dataset", hub)
    probs = load("gsm8k", "openai/gsm8k", subset="main", split="test")
    assert hub.calls == [("openai/gsm8k", "main", "test")]
    assert len(probs) == 5 and probs[0].answer == "18" and probs[0].id == "gsm8k-test-0"
    offline = r"offline\? .*secondtry data openai/gsm8k --subset main --to DIR"
    with pytest.raises(
        TaskDataError, match=r"openai/gsm8k: could not load subset 'main' split 'train' .*" + offline
    ):
        load("gsm8k", "openai/gsm8k", subset="main", split="train")


def test_the_public_datasets_column_layouts_load(monkeypatch):
    """Rows as the hub copies the shipped configs name give them (their dataset cards' features)."""
    import datasets

    math500 = {
        "problem": "What is $1+1$?",
        "solution": "It is $\\boxed{2}$.",
        "answer": "2",
        "subject": "Algebra",
        "level": 1,
        "unique_id": "test/algebra/1.json",
    }
    mbpp = {
        "task_id": 601,
        "text": "Write a function f that returns 1.",
        "code": "def f():\n    return 1",
        "test_list": ["assert f() == 1"],
        "test_setup_code": "",
        "challenge_test_list": [],
    }
    humaneval = {
        "task_id": "HumanEval/0",
        "prompt": 'def f():\n    """One."""\n',
        "canonical_solution": "    return 1\n",
        "entry_point": "f",
        "test": "def check(candidate):\n    assert candidate() == 1\n",
    }
    cases = (("math", math500, "test"), ("mbpp", mbpp, "train"), ("humaneval", humaneval, "test"))
    for name, row, split in cases:
        monkeypatch.setattr(datasets, "load_dataset", FakeHub({split: [row]}))
        [p] = load(name, "owner/data", split=split)
        assert p.id in ("test/algebra/1.json", "601", "HumanEval/0") and p.answer, name
        assert p.meta.get("level") == 1 if name == "math" else True


@pytest.mark.parametrize(
    "name, split, hub_id",
    [
        ("math", "train", "nlile/hendrycks-MATH-benchmark"),
        ("math", "test", "HuggingFaceH4/MATH-500"),
        ("gsm8k", "train", "openai/gsm8k and its subset to main"),
        ("mbpp", "validation", "google-research-datasets/mbpp"),
        ("humaneval", "test", "openai/openai_humaneval"),
    ],
)
def test_a_missing_local_file_names_its_public_source_and_the_override(tmp_path, name, split, hub_id):
    with pytest.raises(TaskDataError) as e:
        load(name, tmp_path / "data" / "train.jsonl", split=split)
    text = str(e.value)
    assert "task data not found" in text
    assert f"Its {split} split is public on the hub: set the task's path to {hub_id}" in text
    assert "secondtry data " in text and f"DIR/{split}.jsonl" in text


def test_a_hub_id_is_checked_for_form_without_the_network():
    from secondtry.tasks.io import is_hub_id

    assert is_hub_id(TaskConfig(name="gsm8k", path="openai/gsm8k"))
    assert is_hub_id(TaskConfig(name="mbpp", path="mbpp"))
    assert not is_hub_id(TaskConfig(name="synthetic"))
    with pytest.raises(TaskDataError, match="neither a local file nor a hub id"):
        is_hub_id(TaskConfig(name="gsm8k", path="openai/gsm8k/main/extra"))
    with pytest.raises(TaskDataError, match="task data not found: data/x.jsonl"):
        is_hub_id(TaskConfig(name="gsm8k", path="data/x.jsonl"))


def test_a_malformed_line_is_a_bad_row_that_skip_skips_and_the_message_shows_where(tmp_path):
    f = tmp_path / "some.jsonl"
    f.write_text(
        '{"problem": "x", "answer": "1"}\n{"problem": "y", "answer": \n'
        '{"problem": "z", "answer": "3"}\nnot json at all\n'
    )
    probs = load("math", f, on_bad_row="skip")
    assert [p.answer for p in probs] == ["1", "3"] and probs.skipped == 2
    assert (
        "some.jsonl:2: malformed JSON (Expecting value at the end of the line: "
        '\'{"problem": "y", "answer": ⟪end⟫\')' in probs.skip_reasons[0]
    )
    assert (
        "some.jsonl:4: malformed JSON (Expecting value at character 1: '⟪here⟫not json at all')"
        in probs.skip_reasons[1]
    )
    with pytest.raises(TaskDataError, match="set on_bad_row: skip on this task"):
        load("math", f)


def test_a_byte_order_mark_is_read_and_a_git_lfs_pointer_or_a_pretty_printed_file_is_named(tmp_path):
    f = tmp_path / "bom.jsonl"
    f.write_bytes(b'\xef\xbb\xbf{"problem": "x", "answer": "1"}\n')
    assert load("math", f)[0].answer == "1"
    lfs = tmp_path / "lfs.jsonl"
    lfs.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n")
    with pytest.raises(TaskDataError, match="a Git LFS pointer, not the data itself; fetch the file"):
        load("math", lfs)
    pretty = tmp_path / "pretty.jsonl"
    pretty.write_text('{\n  "problem": "x",\n  "answer": "1"\n}\n')
    with pytest.raises(TaskDataError, match="one JSON document spread over lines; JSON Lines needs one"):
        load("math", pretty)


def test_materialise_writes_each_split_as_jsonl_the_loaders_read(monkeypatch, tmp_path, data_dir):
    import datasets

    from secondtry.tasks.io import materialise

    rows = gsm8k_rows(data_dir, 8)
    hub = FakeHub({"train": rows[:5], "test": rows[5:]})
    monkeypatch.setattr(datasets, "load_dataset", hub)
    written = materialise("openai/gsm8k", tmp_path / "gsm8k", subset="main")
    assert hub.calls == [("openai/gsm8k", "main", None)]
    assert {s: n for s, (_, n) in written.items()} == {"train": 5, "test": 3}
    offline = load("gsm8k", written["test"][0], split="test")
    local = load("gsm8k", data_dir / "gsm8k" / "test.jsonl")
    assert [p.answer for p in offline] == [p.answer for p in local[5:8]]
    only = materialise("openai/gsm8k", tmp_path / "one", subset="main", splits=["test"])
    assert list(only) == ["test"] and hub.calls[-1] == ("openai/gsm8k", "main", "test")
    copied = materialise(str(data_dir / "gsm8k" / "test.jsonl"), tmp_path / "local")  # a local file: copied
    assert copied["test"][1] == 1319 and len(load("gsm8k", copied["test"][0], split="test")) == 1319
    with pytest.raises(TaskDataError, match="no such file or folder"):
        materialise(str(tmp_path / "nope.jsonl"), tmp_path / "x")
