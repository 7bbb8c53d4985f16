#!/usr/bin/env bash
# Distributed training with torchrun: tools/dist_train.sh CONFIG NUM_PROCS [train.py args...]
# Works on GPUs (nccl) and on CPU-only machines (gloo, one process per NUM_PROCS).
# Env: PYTHON (interpreter, default .venv/bin/python), NNODES, NODE_RANK, MASTER_ADDR, PORT.
set -euo pipefail
CONFIG=$1
NPROCS=$2
shift 2
source "$(dirname "$0")/_launch_env.sh"
launch_torchrun "$NPROCS" train.py "$CONFIG" --launcher pytorch "$@"
