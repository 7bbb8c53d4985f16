"""Run a trained multi-task model on images and write colourised prediction panels: ``mtdense infer`` (mtdense/cli/infer.py).

This script is a thin wrapper kept for mmseg's ``python tools/<tool>.py`` convention.
"""
import sys

from mtdense.cli.infer import *  # noqa: F401,F403  (the tool's functions, for scripts and tests)
from mtdense.cli.infer import main

if __name__ == '__main__':
    code = main()
    sys.exit(code if isinstance(code, int) else 0)
