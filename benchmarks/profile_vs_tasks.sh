#!/usr/bin/env bash
# Standard cost-versus-number-of-tasks comparison (Swin-T; VMT, VMT-Lite, per-task Adapter,
# per-task LoRA, MTLoRA, multi-task full FT) with tools/profile_tasks.py.
#
# Usage:
#   benchmarks/profile_vs_tasks.sh [--device cpu|cuda] [--preset full|cpu] [--options-study]
#                                  [--out DIR]
#
# Presets:
#   full  (default on cuda) all six configs, T = 1 2 4 8 16, 448 px, batch 8, inference and
#         training, plus the same at 224 px.
#   cpu   (default on cpu; ~7 min on 2 idle cores) what a small CPU can afford:
#           count_448         FLOPs/params only, all six configs, 448 px, T = 1 16
#           infer_448         VMT, VMT-Lite and full FT (same heads, no adapter) inference
#                             at 448 px, T = 1 2 4 8 (+ backbone alone)
#           infer_448_cached  the same with --cpu-alloc cached (glibc keeps large blocks)
#           infer_128         all six configs, inference, 128 px, T = 1 2 4 8
#           train_128         VMT, VMT-Lite, full FT, training step, 128 px, T = 1 4
#           conv_128          MobileNetV2 Modulation Adapters and depthwise sharing (+ gate),
#                             inference and training, 128 px, T = 1 2 4 8
#   --options-study  adds VMT T = 4 inference at 128 px with --channels-last / --bf16 /
#                    --compile (one run each, for comparison with the plain run).
#
# Results go to benchmarks/results/<YYYY-MM-DD>_<device>/<run>/profile.{json,csv,png};
# machine.json and commands.txt are written next to them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python
DEVICE=cpu
PRESET=""
OPTIONS_STUDY=0
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --preset) PRESET="$2"; shift 2 ;;
    --options-study) OPTIONS_STUDY=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "profile_vs_tasks.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$PRESET" ]; then
  case "$DEVICE" in cuda*) PRESET=full ;; *) PRESET=cpu ;; esac
fi
case "$PRESET" in full|cpu) ;; *) echo "profile_vs_tasks.sh: --preset must be full or cpu" >&2; exit 2 ;; esac

cd "$ROOT"
if [ -z "$OUT" ]; then
  SLUG=$("$PY" - "$DEVICE" <<'EOF'
import re, sys, torch
dev = sys.argv[1]
if dev.startswith('cuda'):
    name = torch.cuda.get_device_name(torch.device(dev).index or 0)
else:
    name = 'cpu'
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.lower().startswith('model name'):
                name = 'cpu-' + line.split(':', 1)[1].strip()
                break
print(re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-'))
EOF
)
  OUT="benchmarks/results/$(date +%F)_${SLUG}"
fi
mkdir -p "$OUT"
"$PY" - "$DEVICE" "$OUT/machine.json" <<'EOF'
import json, sys
import mtdense  # noqa: F401
from mtdense.analysis import machine_info
json.dump(machine_info(sys.argv[1]), open(sys.argv[2], 'w'), indent=1)
EOF
: > "$OUT/commands.txt"

M=configs/_base_/models
ALL="$M/swin_t_mmseg_vmt.py $M/swin_t_mmseg_vmt_lite.py $M/swin_t_mmseg_per_task_adapter.py \
$M/swin_t_mmseg_per_task_lora.py $M/swin_t_mmseg_mtlora.py $M/swin_t_mmseg_full_ft.py"
ALL_LABELS="VMT VMT-Lite PerTaskAdapter PerTaskLoRA MTLoRA FullFT"

run() {  # run NAME ARGS...
  local name="$1"; shift
  echo "${PY#"$ROOT"/} tools/profile_tasks.py $* --device $DEVICE --out $OUT/$name" >> "$OUT/commands.txt"
  local t0=$SECONDS
  local rc=0
  mkdir -p "$OUT/$name"
  # full stderr to a log; progress lines to the terminal
  "$PY" tools/profile_tasks.py "$@" --device "$DEVICE" --out "$OUT/$name" \
    2> >(tee "$OUT/$name/stderr.log" | grep --line-buffered -E '^\[profile_tasks\]|Error' >&2) \
    || rc=$?
  echo "# $name: $((SECONDS - t0)) s, exit code $rc" >> "$OUT/commands.txt"
  if [ "$rc" = 0 ]; then
    rm -f "$OUT/$name/stderr.log"  # kept only when the run failed
  else
    echo "profile_vs_tasks.sh: run $name exited with $rc (see $OUT/$name/stderr.log)" >&2
  fi
}

if [ "$PRESET" = full ]; then
  for SIZE in 448 224; do
    # shellcheck disable=SC2086
    run "both_${SIZE}" $ALL --labels $ALL_LABELS --num-tasks 1 2 4 8 16 --img-size "$SIZE" \
      --batch-size 8 --mode both --warmup 5 --repeats 30
  done
else
  # shellcheck disable=SC2086
  run count_448 $ALL --labels $ALL_LABELS --num-tasks 1 16 --img-size 448 --mode count
  for ALLOC in system cached; do
    SUFFIX=""; [ "$ALLOC" = system ] || SUFFIX="_$ALLOC"
    run "infer_448$SUFFIX" "$M/swin_t_mmseg_vmt.py" "$M/swin_t_mmseg_vmt_lite.py" \
      "$M/swin_t_mmseg_full_ft.py" --labels VMT VMT-Lite FullFT --num-tasks 1 2 4 8 \
      --img-size 448 --mode infer --warmup 2 --repeats 10 --max-seconds 10 --no-flops \
      --cpu-alloc "$ALLOC"
  done
  # shellcheck disable=SC2086
  run infer_128 $ALL --labels $ALL_LABELS --num-tasks 1 2 4 8 --img-size 128 --mode infer \
    --warmup 2 --repeats 10 --max-seconds 4
  run train_128 "$M/swin_t_mmseg_vmt.py" "$M/swin_t_mmseg_vmt_lite.py" "$M/swin_t_mmseg_full_ft.py" \
    --labels VMT VMT-Lite FullFT --num-tasks 1 4 --img-size 128 --mode train --warmup 1 \
    --repeats 5 --max-seconds 6 --no-flops
  run conv_128 "$M/mobilenetv2_modulation.py" "$M/mobilenetv2_depthwise_sharing.py" \
    --labels Modulation DepthwiseSharing --num-tasks 1 2 4 8 --img-size 128 --mode both \
    --warmup 2 --repeats 10 --max-seconds 4
fi

if [ "$OPTIONS_STUDY" = 1 ]; then
  for OPT in plain channels-last bf16 compile; do
    FLAG=(); [ "$OPT" = plain ] || FLAG=("--$OPT")
    run "options_${OPT}" "$M/swin_t_mmseg_vmt.py" --labels VMT --num-tasks 4 --img-size 128 \
      --mode infer --warmup 2 --repeats 8 --no-flops --no-backbone-alone "${FLAG[@]}"
  done
fi
echo "results in $OUT"
