#!/usr/bin/env bash
# Method benchmark (tools/benchmark_methods.py): every PETL method and baseline on the same
# upstream backbone, data, heads and budget, 3 seeds, lr chosen on the validation split,
# metrics on a held-out test rendering; tables, CSV/JSON and the Δm-vs-parameters plot.
#
# Usage:
#   benchmarks/methods.sh [--preset quick|full] [--out DIR] [tools/benchmark_methods.py args]
#
#   quick  <= 15 min on 2 idle cores (every row, short schedule)
#   full   <= 90 min on 2 idle cores (estimate: docs/benchmarks.md)
#
# Results go to benchmarks/results/<YYYY-MM-DD>_<machine>/methods_<preset>/ (benchmark.json,
# .csv, .md, delta_m_vs_params.png, every job's result JSON, machine.json, command.txt with the
# wall time); data, checkpoints and logs to work_dirs/benchmark_methods/<preset>/. An interrupted
# run resumes when the same command is given again with the same --out (printed at the start).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"  # ROOT, PY, machine_slug, write_machine_json
PRESET=quick
OUT=""
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) PRESET="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
cd "$ROOT"
# this checkout's mtdense (not another one installed in the environment)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
# one OpenMP thread per process: two training processes share the two cores
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
if [ -z "$OUT" ]; then
  SLUG=$(machine_slug cpu)
  OUT="benchmarks/results/$(date +%F)_${SLUG}/methods_${PRESET}"
fi
WORK="work_dirs/benchmark_methods/${PRESET}"
mkdir -p "$OUT"
write_machine_json cpu "$OUT/machine.json"
CMD=("$PY" tools/benchmark_methods.py --preset "$PRESET" --out "$OUT" --work-dir "$WORK" "${ARGS[@]}")
echo "resume with: benchmarks/methods.sh --preset $PRESET --out $OUT ${ARGS[*]}"
t0=$SECONDS
rc=0
"${CMD[@]}" || rc=$?
echo "${CMD[*]#"$ROOT"/}" >> "$OUT/command.txt"
echo "# $((SECONDS - t0)) s wall, exit code $rc, $(date -Iseconds)" >> "$OUT/command.txt"
exit "$rc"
