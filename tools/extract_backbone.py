"""Extract a trained model's backbone in its library's keys: ``mtdense extract-backbone`` (mtdense/cli/extract_backbone.py).

This script is a thin wrapper kept for mmseg's ``python tools/<tool>.py`` convention.
"""
import sys

from mtdense.cli.extract_backbone import *  # noqa: F401,F403  (the tool's functions, for scripts and tests)
from mtdense.cli.extract_backbone import main

if __name__ == '__main__':
    code = main()
    sys.exit(code if isinstance(code, int) else 0)
