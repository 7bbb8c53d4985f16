# Sourced by the dist_* / slurm_* launchers: the repository root and the Python to use.
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
