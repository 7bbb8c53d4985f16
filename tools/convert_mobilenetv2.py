"""Convert the torchvision ImageNet MobileNetV2 weights to timm keys: ``mtdense convert-mobilenetv2`` (mtdense/cli/convert_mobilenetv2.py).

This script is a thin wrapper kept for mmseg's ``python tools/<tool>.py`` convention.
"""
import sys

from mtdense.cli.convert_mobilenetv2 import *  # noqa: F401,F403  (the tool's functions, for scripts and tests)
from mtdense.cli.convert_mobilenetv2 import main

if __name__ == '__main__':
    code = main()
    sys.exit(code if isinstance(code, int) else 0)
