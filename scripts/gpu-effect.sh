#!/usr/bin/env bash
# The effect at GPU scale, as benchmarks/results/effect-synthetic-gpu-* records it: configs/synthetic-gpu.yaml,
# 3 seeds x (iterative-retry-3, star-try-again, resampling, resampling-16), 12 processes on one GPU.
# On a GPU machine that cannot reach PyPI, from the repository root with the wheels of scripts/gpu-wheels.sh in
# .whl/: scripts/gpu-effect.sh [SECONDS] [OUT]. It stops after SECONDS (default 540) and resumes when run again;
# once every run has finished it packs their records (no weights) into OUT (default $OUT or .), one archive a
# condition, for benchmarks/effect_record.py.
set -uo pipefail
cd "$(dirname "$0")/.."
limit=${1:-540}
out=${2:-${OUT:-.}}
[ -d .site ] || python3 -m pip install -q --no-index --no-deps --target .site .whl/*.whl
export PYTHONPATH=$PWD/.site:$PWD/src HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
presets="iterative-retry-3 star-try-again resampling resampling-16"
args=(); for p in $presets; do args+=(--preset "$p"); done
timeout "$limit" python3 -m secondtry.cli run configs/synthetic-gpu.yaml --seeds 3 "${args[@]}" --jobs 12 \
  run_dir=runs/effect > runs-effect.log 2>&1
rc=$?
tail -n 40 runs-effect.log
done=$(ls runs/effect/*/summary.json 2>/dev/null | wc -l)
echo "exit $rc; finished runs: $done of 12"
if [ "$done" -eq 12 ]; then
  export XZ_OPT=-9T0
  for p in $presets; do
    tar -cJf "$out/effect-$p.tar.xz" --exclude='*/model' --exclude='*/improve_*' --exclude='*/.partial' \
        --exclude='*/logs' --exclude='*.safetensors' -C runs/effect $(cd runs/effect && ls -d synthetic-gpu-$p-seed*)
  done
  cp runs/effect/comparison.md runs-effect.log "$out"/ 2>/dev/null
  cp "$(ls -d ~/.cache/secondtry/toy/gpu-*/ | head -1)recipe.json" "$out/toy-gpu-recipe.json" 2>/dev/null
  ls -la "$out"
fi
