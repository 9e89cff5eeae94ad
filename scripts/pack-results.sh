#!/usr/bin/env bash
# Pack run directories' records and reports (no model weights, no partial chunks) into one archive, e.g. to bring
# a GPU machine's results back: scripts/pack-results.sh runs/ results.tar.gz (the suffix picks the
# compression: .tar.gz, .tar.xz)
set -euo pipefail
src=${1:?usage: pack-results.sh RUNS_FOLDER OUT.tar.gz}
out=${2:?usage: pack-results.sh RUNS_FOLDER OUT.tar.gz}
tar -caf "$out" --exclude='*/model' --exclude='*/model/*' --exclude='*/.partial' --exclude='*/.train*' \
    --exclude='*.safetensors' --exclude='*/logs' -C "$(dirname "$src")" "$(basename "$src")"
du -h "$out"
