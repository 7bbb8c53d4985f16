#!/usr/bin/env bash
# DDP exit stress test: N runs of 2-process CPU training (tools/dist_train.sh, torchrun + gloo)
# with a checkpoint save and the distributed validation at the end, as the demo configs do.
# Every run must exit with status 0; the script lists the ones that did not (with the
# lines of their log that say why) and exits 1 if there was any.
#
#   bash benchmarks/ddp_stress.sh [N=20] [extra tools/train.py args...]
#
# Env: PYTHON (interpreter, as the launchers), CONFIG (default: the tiny test config),
#      NPROC (2), ITERS (3), WORKERS (dataloader workers per process, persistent; 2 as in
#      configs/_base_/datasets/synthetic.py), DATA (synthetic data root; 8 tiny scenes are
#      made when absent), OUT (logs and work dirs; default work_dirs/ddp_stress/<timestamp>),
#      PORT (first master port; run i uses PORT + i).
# Each run gets TORCH_SHOW_CPP_STACKTRACES=1 and PYTHONFAULTHANDLER=1, so an abort prints the
# C++ and Python stacks of every thread into its log.
set -uo pipefail
N=${1:-20}
[ $# -gt 0 ] && shift
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/tools/_launch_env.sh"   # sets PY (checked: imports torch and mtdense)
CONFIG=${CONFIG:-$REPO/configs/tests/tiny_vmt_synthetic.py}
NPROC=${NPROC:-2}
ITERS=${ITERS:-3}
WORKERS=${WORKERS:-2}
OUT=${OUT:-work_dirs/ddp_stress/$(date +%Y%m%d_%H%M%S)}
PORT=${PORT:-29700}
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
DATA=${DATA:-$OUT/data}
if [ ! -f "$DATA/meta.json" ]; then
  "$PY" "$REPO/tools/make_synthetic.py" --num 8 --size 48 64 --seed 0 --out "$DATA" --quiet \
    > "$OUT/make_data.log" 2>&1 \
    || { echo "ddp_stress: could not make $DATA (see $OUT/make_data.log)" >&2; exit 2; }
fi
persistent=$([ "$WORKERS" -gt 0 ] && echo True || echo False)
opts=()
for split in train val test; do
  opts+=("${split}_dataloader.dataset.data_root=$DATA" "${split}_dataloader.num_workers=$WORKERS"
         "${split}_dataloader.persistent_workers=$persistent")
done
opts+=("train_cfg.max_iters=$ITERS" "train_cfg.val_interval=$ITERS"
       "default_hooks.checkpoint.interval=$ITERS" "default_hooks.checkpoint.max_keep_ckpts=1")

echo "ddp_stress: $N runs of $NPROC-process training ($(basename "$CONFIG"), $ITERS iterations," \
     "validation, $WORKERS workers per process) on $(hostname), $(nproc) CPUs; logs in $OUT"
failed=()
start=$(date +%s)
for i in $(seq 1 "$N"); do
  work="$OUT/run_$i"
  log="$OUT/run_$i.log"
  t0=$(date +%s)
  TORCH_SHOW_CPP_STACKTRACES=1 PYTHONFAULTHANDLER=1 PORT=$((PORT + i)) PYTHON="$PY" \
    bash "$REPO/tools/dist_train.sh" "$CONFIG" "$NPROC" --work-dir "$work" \
    --cfg-options "${opts[@]}" "$@" > "$log" 2>&1
  rc=$?
  ok=1
  [ $rc -eq 0 ] || ok=0
  # a finished run validated (rank 0 logs the metrics) and saved the last checkpoint
  grep -q 'Iter(val)' "$log" || ok=0
  [ -f "$work/iter_$ITERS.pth" ] || ok=0
  if [ $ok -eq 1 ]; then
    echo "run $i/$N: ok ($(( $(date +%s) - t0 )) s)"
  else
    failed+=("$i")
    echo "run $i/$N: FAILED (exit status $rc, log $log)"
    grep -n -E 'terminate called|Fatal Python error|exitcode|Signal|Error|Traceback' "$log" \
      | head -20 | sed 's/^/    /'
  fi
done
echo "ddp_stress: $((N - ${#failed[@]}))/$N runs succeeded, ${#failed[@]} failed" \
     "($(( $(date +%s) - start )) s)${failed:+; failed runs: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
