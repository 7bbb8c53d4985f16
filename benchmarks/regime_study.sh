#!/usr/bin/env bash
# Regime study (docs/regime_study.md): why does VMT recover so little of the decoder-only ->
# single-task-FT gap at this scale? Six benchmark presets, all with the full preset's data and
# seeds and at least its lr grid:
#
#   regime_levers    one lever of VMT per row (bottleneck width, adapter scale, KEM type, tap
#                    blocks, trainable norms) with single-task FT, decoder-only and VMT, on the
#                    full preset's upstream; in its own work folder (its upstream and reference
#                    rows train again: runs are deterministic, so they repeat the full run's).
#   regime_upstream  single-task FT, decoder-only, VMT and VMT with 2x bottlenecks on a broad
#                    upstream: its own rendering (other layouts and lighting, 3x the scenes)
#                    and 3x the upstream iterations.
#   regime_upstream_lrs  regime_upstream with the lr grid widened to 1e-4 .. 3e-2 (reuses
#                    regime_upstream's jobs: only the new grid points train).
#   regime_iters     single-task FT, decoder-only and VMT with twice the iterations (400).
#   regime_iters_800 the same with four times the iterations (800).
#   regime_lr_split  the heads' lr apart from the backbone side's: single-task FT with its
#                    backbones at 0.1x the heads' lr (the Δm reference), VMT's adapters at 0.3x
#                    and 3x, next to the reference rows, lr grid 1e-3 .. 3e-2; in the full
#                    preset's work folder, reusing methods_full's identical jobs.
#
# Usage:
#   benchmarks/regime_study.sh [--only levers|upstream|upstream_lrs|iters|iters_800|lr_split]
#
# Results: benchmarks/results/<date>_<machine>/regime_<part>/ (the same files
# as methods.sh). Re-running the same command resumes each one.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"  # ROOT, PY, machine_slug
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --only) ONLY="$2"; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "regime_study.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
cd "$ROOT"
BASE="benchmarks/results/$(date +%F)_$(machine_slug cpu)"
case "$ONLY" in
  ""|levers|upstream|upstream_lrs|iters|iters_800|lr_split) ;;
  *) echo "regime_study.sh: --only $ONLY: expected levers, upstream, upstream_lrs, iters," \
          "iters_800 or lr_split" >&2
     exit 2 ;;
esac
if [ -z "$ONLY" ] || [ "$ONLY" = levers ]; then
  "$ROOT/benchmarks/methods.sh" --preset regime_levers --out "$BASE/regime_levers"
fi
if [ -z "$ONLY" ] || [ "$ONLY" = upstream ]; then
  "$ROOT/benchmarks/methods.sh" --preset regime_upstream --out "$BASE/regime_upstream"
fi
if [ -z "$ONLY" ] || [ "$ONLY" = upstream_lrs ]; then
  if [ ! -f "$BASE/regime_upstream/benchmark.json" ]; then
    echo "regime_study.sh: $BASE/regime_upstream/benchmark.json not found: run --only upstream" \
         "first" >&2
    exit 2
  fi
  "$ROOT/benchmarks/methods.sh" --preset regime_upstream_lrs --out "$BASE/regime_upstream_lrs" \
    --work-dir work_dirs/benchmark_methods/regime_upstream --reuse-from "$BASE/regime_upstream"
fi
if [ -z "$ONLY" ] || [ "$ONLY" = iters ]; then
  "$ROOT/benchmarks/methods.sh" --preset regime_iters --out "$BASE/regime_iters"
fi
if [ -z "$ONLY" ] || [ "$ONLY" = iters_800 ]; then
  "$ROOT/benchmarks/methods.sh" --preset regime_iters_800 --out "$BASE/regime_iters_800"
fi
if [ -z "$ONLY" ] || [ "$ONLY" = lr_split ]; then
  FULL=$(ls -d benchmarks/results/*/methods_full 2>/dev/null | sort | tail -1)
  if [ -z "$FULL" ] || [ ! -f "$FULL/benchmark.json" ]; then
    echo "regime_study.sh: no benchmarks/results/*/methods_full/benchmark.json: run" \
         "benchmarks/methods.sh --preset full first" >&2
    exit 2
  fi
  "$ROOT/benchmarks/methods.sh" --preset regime_lr_split --out "$BASE/regime_lr_split" \
    --work-dir work_dirs/benchmark_methods/full --reuse-from "$FULL"
fi
