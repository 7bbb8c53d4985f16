#!/usr/bin/env bash
# The main job on the embedded default data (README quickstart):
#   1. install the pinned environment into .venv (first run only),
#   2. render the synthetic multi-task scenes,
#   3. write browse panels (image + every task map) for a few samples.
# Outputs go to work_dirs/demo (override with DEMO_DIR=...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
PY=.venv/bin/python
DEMO_DIR=${DEMO_DIR:-work_dirs/demo}
DATA=${DATA:-data/synthetic}
NUM=${NUM:-600}
mkdir -p "$DEMO_DIR"

echo "== 1. synthetic scenes -> $DATA"
$PY tools/make_synthetic.py --num "$NUM" --size 96 128 --seed 0 --out "$DATA" --workers 2

echo "== 2. browse panels -> $DEMO_DIR/browse"
$PY tools/browse_dataset.py configs/_base_/datasets/synthetic.py --data-root "$DATA" \
    --split train --num 6 --out "$DEMO_DIR/browse"

echo "done: $DEMO_DIR"
