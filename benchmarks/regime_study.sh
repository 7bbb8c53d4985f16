#!/usr/bin/env bash
# Regime study (docs/regime_study.md): why does VMT recover so little of the decoder-only ->
# single-task-FT gap at this scale? Three benchmark presets, all with the full preset's data,
# lr grid and seeds:
#
#   regime_levers    one lever of VMT per row (bottleneck width, adapter scale, KEM type, tap
#                    blocks, trainable norms) on the full preset's upstream. It runs in the
#                    full preset's work folder and reuses the full run's identical jobs
#                    (--reuse-from: single-task FT, decoder-only, VMT are not trained again).
#   regime_upstream  single-task FT, decoder-only, VMT and VMT with 2x bottlenecks on a broad
#                    upstream: its own rendering (other layouts and lighting, 3x the scenes)
#                    and 3x the upstream iterations.
#   regime_upstream_lrs  regime_upstream with the lr grid widened to 1e-4 .. 3e-2 (reuses
#                    regime_upstream's jobs: only the new grid points train).
#   regime_iters     single-task FT, decoder-only and VMT with twice the iterations (400).
#
# Usage:
#   benchmarks/regime_study.sh [--full DIR] [--only levers|upstream|upstream_lrs|iters]
#
#   --full DIR   the finished full-preset folder (default: today's
#                benchmarks/results/<date>_<machine>/methods_full)
#
# Results: benchmarks/results/<date>_<machine>/regime_<part>/ (the same files
# as methods.sh). Re-running the same command resumes each one.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"  # ROOT, PY, machine_slug
FULL=""
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --full) FULL="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "regime_study.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
cd "$ROOT"
BASE="benchmarks/results/$(date +%F)_$(machine_slug cpu)"
FULL="${FULL:-$BASE/methods_full}"
case "$ONLY" in
  ""|levers|upstream|upstream_lrs|iters) ;;
  *) echo "regime_study.sh: --only $ONLY: expected levers, upstream, upstream_lrs or iters" >&2
     exit 2 ;;
esac
if [ -z "$ONLY" ] || [ "$ONLY" = levers ]; then
  if [ ! -f "$FULL/benchmark.json" ]; then
    echo "regime_study.sh: $FULL/benchmark.json not found: run benchmarks/methods.sh --preset full" \
         "first, or name its folder with --full" >&2
    exit 2
  fi
  "$ROOT/benchmarks/methods.sh" --preset regime_levers --out "$BASE/regime_levers" \
    --work-dir work_dirs/benchmark_methods/full --reuse-from "$FULL"
fi
if [ -z "$ONLY" ] || [ "$ONLY" = upstream ]; then
  "$ROOT/benchmarks/methods.sh" --preset regime_upstream --out "$BASE/regime_upstream"
fi
if [ -z "$ONLY" ] || [ "$ONLY" = upstream_lrs ]; then
  "$ROOT/benchmarks/methods.sh" --preset regime_upstream_lrs --out "$BASE/regime_upstream_lrs" \
    --work-dir work_dirs/benchmark_methods/regime_upstream --reuse-from "$BASE/regime_upstream"
fi
if [ -z "$ONLY" ] || [ "$ONLY" = iters ]; then
  "$ROOT/benchmarks/methods.sh" --preset regime_iters --out "$BASE/regime_iters"
fi
