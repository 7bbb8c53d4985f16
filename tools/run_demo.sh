#!/usr/bin/env bash
# The main job on the embedded default data (README quickstart), end to end on CPU:
#   1. install the pinned environment into .venv (first run only),
#   2. render the synthetic multi-task scenes and write browse panels,
#   3. "upstream": train a small Swin from scratch by full multi-task training on semseg + depth,
#   4. freeze that backbone and adapt it to all five tasks with VMT-Adapter; train the
#      single-task fine-tuning and decoder-only baselines on the same budget,
#   5. evaluate all of them, print the per-task table with Δm (vs single-task FT),
#      write prediction panels,
#   6. profile inference cost versus the number of tasks (VMT, per-task Adapter, full FT).
# Outputs: work_dirs/demo (DEMO_DIR=...). ITERS / UPSTREAM_ITERS / NUM shrink or grow the run.
set -euo pipefail
cd "$(dirname "$0")/.."
# One OpenMP thread per process (see tools/run_tests.sh).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
bash tools/setup_env.sh
PY=.venv/bin/python
DEMO_DIR=${DEMO_DIR:-work_dirs/demo}
DATA=${DATA:-data/synthetic}
NUM=${NUM:-600}
UPSTREAM_ITERS=${UPSTREAM_ITERS:-800}
ITERS=${ITERS:-500}
METHODS=${METHODS:-"vmt vmt_wide decoder_only single_task_ft"}
mkdir -p "$DEMO_DIR"
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*"; }
# "stage N/5" with an ETA from the share of the reference run (7 min, 2 idle cores) done when
# stage N starts: a rough guide, printed with "~"
SHARE=(0 0 4 30 90 92)
stage() {
  local n=$1 el=$(( $(date +%s) - start )) eta=""; shift
  [ "${SHARE[$n]}" -gt 0 ] && eta=", ~$(( el * (100 - SHARE[n]) / SHARE[n] )) s to go"
  echo "[stage $n/5, $el s$eta] $*"
}
# training with the Runner's own progress: the latest "Iter(train) [k/N]" of its log, every 20 s
train_logged() {
  local log=$1 name=$2; shift 2
  "$@" > "$log" 2>&1 & local pid=$!
  while kill -0 "$pid" 2> /dev/null; do
    sleep 20
    local it; it=$(grep -o 'Iter(train) \[ *[0-9]*/[0-9]*\]' "$log" | tail -1 | tr -d ' ' || true)
    [ -n "$it" ] && echo "    $name: ${it#Iter(train)}"
  done
  wait "$pid" || { echo "$name failed: see $log" >&2; return 1; }
}

stage 1 "synthetic scenes -> $DATA"
$PY tools/make_synthetic.py --num "$NUM" --size 96 128 --seed 0 --out "$DATA" --workers 2 --quiet
$PY tools/browse_dataset.py configs/_base_/datasets/synthetic.py --data-root "$DATA" \
    --split train --num 6 --out "$DEMO_DIR/browse" > /dev/null

sched() {  # iteration count + matching cosine schedule for a config
  local it=$1 warm=$(( $1 / 10 > 0 ? $1 / 10 : 1 ))
  echo "train_cfg.max_iters=$it train_cfg.val_interval=$((it + 1)) \
default_hooks.checkpoint.interval=$it param_scheduler.0.end=$warm \
param_scheduler.1.begin=$warm param_scheduler.1.end=$it \
train_dataloader.dataset.data_root=$DATA val_dataloader.dataset.data_root=$DATA \
test_dataloader.dataset.data_root=$DATA"
}

stage 2 "upstream backbone: full multi-task training on semseg + depth ($UPSTREAM_ITERS iters)"
train_logged "$DEMO_DIR/upstream.log" upstream $PY tools/train.py configs/demo/upstream_full_ft.py \
    --work-dir "$DEMO_DIR/upstream" --cfg-options $(sched "$UPSTREAM_ITERS")
$PY tools/extract_backbone.py "$DEMO_DIR/upstream/iter_$UPSTREAM_ITERS.pth" \
    --out "$DEMO_DIR/upstream_backbone.pth"

run_method() {  # train, test and count one method; results in $DEMO_DIR/$1
  local m=$1 ckpt_opt="model.backbone.checkpoint=$DEMO_DIR/upstream_backbone.pth" show=()
  stage 3 "$m on all five tasks, frozen upstream backbone ($ITERS iters)"
  train_logged "$DEMO_DIR/$m.log" "$m" $PY tools/train.py "configs/demo/$m.py" \
      --work-dir "$DEMO_DIR/$m" --cfg-options $ckpt_opt $(sched "$ITERS")
  [ "$m" = vmt ] && show=(--show-dir "$DEMO_DIR/panels_vmt" --show-num 6)
  $PY tools/test.py "configs/demo/$m.py" "$DEMO_DIR/$m/iter_$ITERS.pth" \
      --work-dir "$DEMO_DIR/$m" --metrics-out "$DEMO_DIR/$m/metrics.json" "${show[@]}" \
      --cfg-options $ckpt_opt $(sched "$ITERS") > "$DEMO_DIR/$m.test.log" 2>&1
  $PY tools/analyze_params.py "configs/demo/$m.py" --cfg-options $ckpt_opt --json - \
      2>/dev/null | $PY -c "import json,sys; print(json.load(sys.stdin)['trainable'])" \
      > "$DEMO_DIR/$m/trainable.txt"
  stamp "   $m finished"
}

# Each training process uses one OpenMP thread, so on 2 cores the slowest method
# (single-task FT: one backbone per task) runs beside the others instead of after them.
pids=()
if [[ " $METHODS " == *" single_task_ft "* ]]; then
  run_method single_task_ft & pids+=($!)
fi
for m in $METHODS; do
  [ "$m" = single_task_ft ] || run_method "$m"
done
for pid in "${pids[@]}"; do
  wait "$pid" || { echo "single_task_ft failed: see $DEMO_DIR/single_task_ft.log" >&2; exit 1; }
done

runs=()
params=()
for m in $METHODS; do
  params+=(--params "$m=$(cat "$DEMO_DIR/$m/trainable.txt")")
  [ "$m" = single_task_ft ] || runs+=(--run "$m=$DEMO_DIR/$m/metrics.json")
done

stage 4 "results (Δm vs single-task fine-tuning of the same upstream backbone)"
$PY tools/demo_report.py --baseline "single_task_ft=$DEMO_DIR/single_task_ft/metrics.json" \
    "${runs[@]}" "${params[@]}" --baselines-out "$DEMO_DIR/baselines_single_task.json" \
    --out "$DEMO_DIR/report.md"
stage 5 "cost versus the number of tasks (Swin-T, 128 px, T = 1 2 4; tools/profile_tasks.py)"
M=configs/_base_/models
$PY tools/profile_tasks.py "$M/swin_t_mmseg_vmt.py" "$M/swin_t_mmseg_per_task_adapter.py" \
    "$M/swin_t_mmseg_full_ft.py" --labels VMT PerTaskAdapter FullFT --num-tasks 1 2 4 \
    --img-size 128 --mode infer --warmup 1 --repeats 5 --max-seconds 3 \
    --out "$DEMO_DIR/profile" 2> "$DEMO_DIR/profile.log" | sed -n '/^| config/,/^$/p'
stamp "done: $DEMO_DIR (report.md, browse/, panels_vmt/, profile/, logs)"
