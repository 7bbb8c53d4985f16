#!/usr/bin/env bash
# Slurm training: tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [train.py args...]
# Env: GPUS (total, default 8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS, PYTHON.
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=${4:-work_dirs/${JOB_NAME}}
shift $(( $# >= 4 ? 4 : 3 ))
source "$(dirname "$0")/_launch_env.sh"
launch_srun "${PARTITION}" "${JOB_NAME}" train.py "${CONFIG}" --work-dir="${WORK_DIR}" --launcher=slurm "$@"
