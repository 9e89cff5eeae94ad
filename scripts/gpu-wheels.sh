#!/usr/bin/env bash
# Download the wheels of requirements/gpu.txt into .whl/ for a GPU machine that cannot reach PyPI
# (Python 3.12, x86-64 Linux). There: pip install --no-index --no-deps --target DIR .whl/*.whl
# and put DIR and src/ on PYTHONPATH (docs/training.md).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -v '^#' requirements/gpu.txt | grep . > /tmp/secondtry-gpu-pins.txt
pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
  -d .whl -r /tmp/secondtry-gpu-pins.txt
