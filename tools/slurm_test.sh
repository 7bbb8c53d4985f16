#!/usr/bin/env bash
# Slurm testing: tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args...]
# Env: GPUS (total, default 8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS, PYTHON.
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
shift 4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
source "$(dirname "$0")/_launch_env.sh"
srun -p "${PARTITION}" --job-name="${JOB_NAME}" --gres=gpu:"${GPUS_PER_NODE}" \
  --ntasks="${GPUS}" --ntasks-per-node="${GPUS_PER_NODE}" --cpus-per-task="${CPUS_PER_TASK:-5}" \
  --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
  "$PY" -u "$REPO/tools/test.py" "${CONFIG}" "${CHECKPOINT}" --launcher=slurm "$@"
