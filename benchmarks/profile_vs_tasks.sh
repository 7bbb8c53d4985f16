#!/usr/bin/env bash
# Standard cost-versus-number-of-tasks comparison on CPU (Swin-T; VMT, VMT-Lite, per-task
# Adapter, per-task LoRA, MTLoRA, multi-task full FT) with `mtdense profile`
# (mtdense/cli/profile_tasks.py): every run times its points in interleaved rounds (shuffled order each round) and reports same-round
# paired ratios with 95 % bootstrap intervals. On a GPU use benchmarks/gpu_preset.sh.
#
# Usage:
#   benchmarks/profile_vs_tasks.sh [--runs "NAME ..."] [--repeats N] [--options-study]
#                                  [--out DIR]
#
# Runs (all by default; one thread, batch 1, fp32, default glibc allocator unless named):
#   count_448           FLOPs / parameters of all six configs, 448 px, T = 1 16 (nothing timed)
#   predict_448         VMT, VMT-Lite, full FT (+ backbone alone): the full predict path
#                       (preprocessing, heads, upsampling to the original size, post-processing),
#                       448 px, T = 1 2 4 8; peak memory of each point alone in a fresh process
#   tensor_448          the same with mode='tensor' (backbone + heads + upsampling)
#   predict_448_cached  VMT and full FT, T = 1 8, predict, --cpu-alloc cached (glibc keeps blocks)
#   infer_128           all six configs, mode='tensor', 128 px, T = 1 2 4 8, with FLOPs
#   train_128           VMT, VMT-Lite, full FT, training step (fused AdamW), 128 px,
#                       T = 1 2 4 8; peak memory per point alone
#   train_128_loop      VMT, T = 1 8, the per-parameter AdamW loop (torch's CPU default)
#   train_128_cached    VMT, T = 1 8, fused AdamW, --cpu-alloc cached
#   conv_128            MobileNetV2 Modulation Adapters and depthwise sharing, both modes,
#                       128 px, T = 1 2 4 8
#   --options-study     VMT T = 4 inference at 128 px, plain / --channels-last / --bf16 /
#                       --compile (each a run of its own)
#
# Results: benchmarks/results/<YYYY-MM-DD>_<cpu>/<run>/profile.{json,csv,png} and
# profile_ratios.csv; machine.json and commands.txt (each command, its duration, exit code
# and the load average before and after) next to them. The machine's load is part of every
# result: read docs/profiling.md before comparing runs made at different times.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"  # ROOT, PY, machine_slug, write_machine_json
ALL_RUNS="count_448 predict_448 tensor_448 predict_448_cached infer_128 train_128 train_128_loop \
train_128_cached conv_128"
RUNS="$ALL_RUNS"
REPEATS=""
OPTIONS_STUDY=0
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --repeats) REPEATS="$2"; shift 2 ;;
    --options-study) OPTIONS_STUDY=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --device) [ "$2" = cpu ] || { echo "profile_vs_tasks.sh: this is the CPU preset; on a GPU" \
      "run benchmarks/gpu_preset.sh" >&2; exit 2; }; shift 2 ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "profile_vs_tasks.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for r in $RUNS; do
  case " $ALL_RUNS " in *" $r "*) ;; *) echo "profile_vs_tasks.sh: unknown run '$r'" >&2; exit 2 ;; esac
done

cd "$ROOT"
if [ -z "$OUT" ]; then
  OUT="benchmarks/results/$(date +%F)_$(machine_slug cpu)"
fi
mkdir -p "$OUT"
write_machine_json cpu "$OUT/machine.json"
touch "$OUT/commands.txt"

M=configs/_base_/models
ALL="$M/swin_t_mmseg_vmt.py $M/swin_t_mmseg_vmt_lite.py $M/swin_t_mmseg_per_task_adapter.py \
$M/swin_t_mmseg_per_task_lora.py $M/swin_t_mmseg_mtlora.py $M/swin_t_mmseg_full_ft.py"
ALL_LABELS="VMT VMT-Lite PerTaskAdapter PerTaskLoRA MTLoRA FullFT"
THREE="$M/swin_t_mmseg_vmt.py $M/swin_t_mmseg_vmt_lite.py $M/swin_t_mmseg_full_ft.py"
THREE_LABELS="VMT VMT-Lite FullFT"
load() { cut -d' ' -f1-3 /proc/loadavg; }

run() {  # run NAME ARGS...
  local name="$1"; shift
  case " $RUNS " in *" $name "*) ;; *) [ "${name#options_}" != "$name" ] || return 0 ;; esac
  local reps=()
  [ -z "$REPEATS" ] || reps=(--repeats "$REPEATS")
  echo "${PY#"$ROOT"/} -m mtdense.cli profile $* ${reps[*]} --threads 1 --out $OUT/$name" \
    >> "$OUT/commands.txt"
  local t0=$SECONDS rc=0 l0
  l0=$(load)
  mkdir -p "$OUT/$name"
  # full stderr to a log; progress lines to the terminal
  "$PY" -m mtdense.cli profile "$@" "${reps[@]}" --threads 1 --out "$OUT/$name" \
    > "$OUT/$name/summary.md" \
    2> >(tee "$OUT/$name/stderr.log" | grep --line-buffered -E '^\[profile_tasks\] (round|memory|built)|Error' >&2) \
    || rc=$?
  echo "# $name: $((SECONDS - t0)) s, exit code $rc, load before $l0, after $(load)" >> "$OUT/commands.txt"
  if [ "$rc" = 0 ]; then
    rm -f "$OUT/$name/stderr.log"  # kept only when the run failed
  else
    echo "profile_vs_tasks.sh: run $name exited with $rc (see $OUT/$name/stderr.log)" >&2
  fi
}

# shellcheck disable=SC2086
run count_448 $ALL --labels $ALL_LABELS --num-tasks 1 16 --img-size 448 --mode count
# shellcheck disable=SC2086
run predict_448 $THREE --labels $THREE_LABELS --num-tasks 1 2 4 8 --img-size 448 --mode infer \
  --infer-forward predict --warmup 2 --repeats 12 --no-flops
# shellcheck disable=SC2086
run tensor_448 $THREE --labels $THREE_LABELS --num-tasks 1 2 4 8 --img-size 448 --mode infer \
  --warmup 2 --repeats 12 --no-flops --memory off
run predict_448_cached "$M/swin_t_mmseg_vmt.py" "$M/swin_t_mmseg_full_ft.py" --labels VMT FullFT \
  --num-tasks 1 8 --img-size 448 --mode infer --infer-forward predict --warmup 2 --repeats 12 \
  --no-flops --memory off --cpu-alloc cached
# shellcheck disable=SC2086
run infer_128 $ALL --labels $ALL_LABELS --num-tasks 1 2 4 8 --img-size 128 --mode infer \
  --warmup 2 --repeats 15 --memory off
# shellcheck disable=SC2086
run train_128 $THREE --labels $THREE_LABELS --num-tasks 1 2 4 8 --img-size 128 --mode train \
  --warmup 2 --repeats 20 --no-flops
run train_128_loop "$M/swin_t_mmseg_vmt.py" --labels VMT --num-tasks 1 8 --img-size 128 \
  --mode train --warmup 2 --repeats 20 --no-flops --no-backbone-alone --memory off --optimizer loop
run train_128_cached "$M/swin_t_mmseg_vmt.py" --labels VMT --num-tasks 1 8 --img-size 128 \
  --mode train --warmup 2 --repeats 20 --no-flops --no-backbone-alone --memory off \
  --cpu-alloc cached
run conv_128 "$M/mobilenetv2_modulation.py" "$M/mobilenetv2_depthwise_sharing.py" \
  --labels Modulation DepthwiseSharing --num-tasks 1 2 4 8 --img-size 128 --mode both \
  --warmup 2 --repeats 15 --memory off

if [ "$OPTIONS_STUDY" = 1 ]; then
  for OPT in plain channels-last bf16 compile; do
    FLAG=(); [ "$OPT" = plain ] || FLAG=("--$OPT")
    run "options_${OPT}" "$M/swin_t_mmseg_vmt.py" --labels VMT --num-tasks 4 --img-size 128 \
      --mode infer --warmup 2 --repeats 8 --no-flops --no-backbone-alone --memory off "${FLAG[@]}"
  done
fi
echo "results in $OUT"
