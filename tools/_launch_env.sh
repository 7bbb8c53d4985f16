# Sourced by the dist_* / slurm_* launchers: the repository root, the Python to use and the
# torchrun / srun command lines the launchers share (launch_torchrun, launch_srun).
# Paths given to the launchers (configs, checkpoints, --work-dir, data roots in configs) are
# resolved from the caller's working directory, like tools/train.py itself: the launchers do
# not change directory.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# PYTHON: the interpreter of the mtdense environment; default the checkout's .venv, else
# python3 from PATH. It must import torch and mtdense.
PY=${PYTHON:-$( [ -x "$REPO/.venv/bin/python" ] && echo "$REPO/.venv/bin/python" || command -v python3 || true )}
if [ -z "$PY" ] || ! PYTHONPATH="$REPO:${PYTHONPATH:-}" "$PY" -c "import torch, mtdense" >/dev/null 2>&1; then
  echo "$(basename "$0"): the Python '${PY:-<none>}' cannot import torch and mtdense; run" \
       "'bash tools/setup_env.sh' (creates $REPO/.venv) or set PYTHON=/path/to/python of an" \
       "environment with mtdense installed" >&2
  exit 1
fi
export PYTHONPATH="$REPO:${PYTHONPATH:-}"

# launch_torchrun NPROCS TOOL ARGS...: tools/TOOL under torchrun, NPROCS processes on this node
# (NNODES, NODE_RANK, MASTER_ADDR, PORT from the environment).
launch_torchrun() {
  local nprocs=$1 tool=$2
  shift 2
  "$PY" -m torch.distributed.run --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --nproc_per_node="$nprocs" \
    --master_port="${PORT:-29500}" \
    "$REPO/tools/$tool" "$@"
}

# launch_srun PARTITION JOB_NAME TOOL ARGS...: tools/TOOL as a Slurm job step, one task per GPU
# (GPUS total, default 8; GPUS_PER_NODE 8; CPUS_PER_TASK 5; SRUN_ARGS word-split into srun's).
launch_srun() {
  local partition=$1 job_name=$2 tool=$3
  shift 3
  local gpus=${GPUS:-8} gpus_per_node=${GPUS_PER_NODE:-8}
  srun -p "${partition}" --job-name="${job_name}" --gres=gpu:"${gpus_per_node}" \
    --ntasks="${gpus}" --ntasks-per-node="${gpus_per_node}" --cpus-per-task="${CPUS_PER_TASK:-5}" \
    --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
    "$PY" -u "$REPO/tools/$tool" "$@"
}
