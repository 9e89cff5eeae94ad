"""Draw the labelled verifier set (see SOURCES.md) from git checkouts of its two public sources.

    python tests/data/build_labelled.py --gsm8k GIT_DIR --skythought GIT_DIR --out DIR

GIT_DIR is a clone (or bare repository) of github.com/openai/grade-school-math and of
github.com/NovaSky-AI/SkyThought; files are read at the commits named below with `git show`,
so the draw is the same on any machine. Writes DIR/gsm8k-gpt3.jsonl.gz and
DIR/math500-skythought.jsonl.gz: one row per completion, in the form `secondtry verify` reads
({"id", "source", "model", "prompt", "answer", "completion", "label"}).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import subprocess
from pathlib import Path

GSM8K_COMMIT = "3101c7d5072418e28b9008a6636bde82a006892c"
GSM8K_FILE = "grade_school_math/data/example_model_solutions.jsonl"
GSM8K_MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
SKY_COMMIT = "505894edef18789853841ad6d199956f048aeb5f"
SKY_DIR = "skythought/Qwen2.5-Math/evaluation/outputs"
SKY_MODELS = ("Qwen/Qwen2.5-14B-Instruct", "Qwen/Qwen2.5-Math-7B", "google/gemma-2-27b-it")
SKY_FILE = "math500_eval/math500/test_qwen25-math-cot_-1_seed0_t0.0_s0_e-1.jsonl"
PER_SOURCE = 600
SEED = 20261206


def _show(git_dir: Path, commit: str, path: str) -> list[dict]:
    text = subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def gsm8k(git_dir: Path) -> list[dict]:
    """Every (problem, model) of OpenAI's GPT-3 GSM8K solutions with the release's own `is_correct`."""
    rows = []
    for i, r in enumerate(_show(git_dir, GSM8K_COMMIT, GSM8K_FILE)):
        gold = r["ground_truth"].rsplit("A:", 1)[1].strip()
        for model in GSM8K_MODELS:
            rows.append(
                {
                    "id": f"gsm8k-{i}-{model}",
                    "source": "gsm8k-gpt3",
                    "model": f"gpt3-{model}",
                    "prompt": r["question"],
                    "answer": gold,
                    "completion": r[model]["solution"],
                    "label": bool(r[model]["is_correct"]),
                }
            )
    return rows


def skythought(git_dir: Path) -> list[dict]:
    """Every MATH-500 completion of three models, with the Qwen2.5-Math harness's `score`."""
    rows = []
    for model in SKY_MODELS:
        for r in _show(git_dir, SKY_COMMIT, f"{SKY_DIR}/{model}/{SKY_FILE}"):
            rows.append(
                {
                    "id": f"math500-{r['idx']}-{model.split('/')[1]}",
                    "source": "math500-skythought",
                    "model": model,
                    "prompt": r["question"],
                    "answer": r["answer"],
                    "completion": r["code"][0],
                    "label": bool(r["score"][0]),
                }
            )
    return rows


def draw(rows: list[dict], n: int, seed: int, keep_unboxed: bool) -> list[dict]:
    """`n` rows at random, in file order; with `keep_unboxed`, every completion that boxes nothing among them
    (the rarer formats where most completions box their answer)."""
    rng = random.Random(seed)
    unboxed = [i for i, r in enumerate(rows) if "\\boxed" not in r["completion"]] if keep_unboxed else []
    rest = sorted(set(range(len(rows))) - set(unboxed))
    keep = unboxed[:n] + rng.sample(rest, max(0, n - len(unboxed)))
    return [rows[i] for i in sorted(keep)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gsm8k", type=Path, required=True, help="git dir of openai/grade-school-math")
    ap.add_argument("--skythought", type=Path, required=True, help="git dir of NovaSky-AI/SkyThought")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows, keep_unboxed in (
        ("gsm8k-gpt3", gsm8k(args.gsm8k), False),
        ("math500-skythought", skythought(args.skythought), True),
    ):
        picked = draw(rows, PER_SOURCE, SEED, keep_unboxed)
        with gzip.open(args.out / f"{name}.jsonl.gz", "wt", encoding="utf-8") as f:
            for r in picked:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        n_right = sum(r["label"] for r in picked)
        print(f"{name}: {len(picked)} of {len(rows)} rows, {n_right} labelled correct")


if __name__ == "__main__":
    main()
