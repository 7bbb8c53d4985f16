#!/usr/bin/env bash
# Distributed training with torchrun: tools/dist_train.sh CONFIG NUM_PROCS [train.py args...]
# Works on GPUs (nccl) and on CPU-only machines (gloo, one process per NUM_PROCS).
# Env: PYTHON (interpreter, default .venv/bin/python), NNODES, NODE_RANK, MASTER_ADDR, PORT.
set -euo pipefail
CONFIG=$1
NPROCS=$2
shift 2
source "$(dirname "$0")/_launch_env.sh"
"$PY" -m torch.distributed.run --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --nproc_per_node="$NPROCS" \
  --master_port="${PORT:-29500}" \
  "$REPO/tools/train.py" "$CONFIG" --launcher pytorch "$@"
