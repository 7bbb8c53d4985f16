#!/usr/bin/env bash
# Distributed testing with torchrun: tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py args...]
# Works on GPUs (nccl) and on CPU-only machines (gloo, one process per NUM_PROCS).
# Env: PYTHON (interpreter, default .venv/bin/python), NNODES, NODE_RANK, MASTER_ADDR, PORT.
set -euo pipefail
CONFIG=$1
CHECKPOINT=$2
NPROCS=$3
shift 3
source "$(dirname "$0")/_launch_env.sh"
launch_torchrun "$NPROCS" test.py "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
