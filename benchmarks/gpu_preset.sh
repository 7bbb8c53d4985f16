#!/usr/bin/env bash
# The standard comparison on a GPU (mtdense/analysis/gpu_preset.py): the six Swin-T configs
# (VMT, VMT-Lite, per-task Adapter, per-task LoRA, MTLoRA, multi-task full FT), T = 1 2 4 8 16,
# 448 px, inference and training step, at batch 1 and 32, fp32 and bf16 autocast; interleaved
# rounds with CUDA-synchronised timing, peak CUDA memory per point, machine info.
#
# Usage:
#   benchmarks/gpu_preset.sh [--dry-run] [--quick] [--device cuda:N] [--out DIR]
#                            [--sizes 448 224] [--batches 1 32] [--dtypes fp32 bf16]
#                            [--num-tasks 1 2 4 8 16] [--repeats N] [--max-seconds S]
#
#   --dry-run  check every config and setting and write plan.json + machine.json, measure
#              nothing (works without a GPU and says so: "CUDA is not available ...")
#   --quick    T = 1 4 16, 10 rounds: for a short device lease
#
# Results: benchmarks/results/<YYYY-MM-DD>_<gpu name>/<run>/profile.{json,csv,png},
# profile_ratios.csv, summary.md; machine.json, plan.json, commands.txt beside them.
# Without CUDA (and without --dry-run) it exits with code 2 before measuring anything.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"  # ROOT, PY
case "${1:-}" in -h|--help) sed -n '2,19p' "$0"; exit 0 ;; esac
cd "$ROOT"
exec "$PY" -m mtdense.analysis.gpu_preset "$@"
