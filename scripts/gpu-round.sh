#!/usr/bin/env bash
# `secondtry bench round` for issue-sized GPU calls: the reference round (Qwen3-1.7B architecture, random
# bf16 weights) at the config's full 500 SFT steps, its generation rate beside the engine's own in the same
# process. From the repository root on a GPU machine that cannot reach PyPI, with the wheels of
# scripts/gpu-wheels.sh in .whl/ and MATH's train.jsonl / test.jsonl in DATA (default data-math/):
#
#     scripts/gpu-round.sh [TRAIN] [OUT] [DATA] [MODEL] [STEPS]
#
# TRAIN training problems (default 4096 on an H200, 2048 on an H100 so that the call ends within 10 minutes),
# the record and log into OUT (default $OUT or benchmarks/results).
set -uo pipefail
cd "$(dirname "$0")/.."
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
default_train=4096; [[ "$gpu" == *H100* ]] && default_train=2048
train=${1:-$default_train}; out=${2:-${OUT:-benchmarks/results}}; data=${3:-data-math}; model=${4:-qwen3-1.7b}
steps=${5:-0}
[ -d /tmp/site ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm,power.draw,temperature.gpu --format=csv
# the GPU's clocks, load, memory, power and throttle reasons every 2 s: a slow stage can be matched to them
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,utilization.gpu,memory.used,power.draw,temperature.gpu,\
clocks_throttle_reasons.active --format=csv -lms 2000 > "$out/gpu-monitor-$model.csv" 2>&1 &
monitor=$!
trap 'kill $monitor 2>/dev/null' EXIT
python3 -m secondtry.cli bench round --train-data "$data/train.jsonl" --test-data "$data/test.jsonl" \
  --train "$train" --eval 500 --model "$model" --steps "$steps" --work "/tmp/br-$model" --out "$out" \
  2>&1 | tee "$out/round-$model.log"
